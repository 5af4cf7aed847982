// export_dfloat11: a Hugging Face model directory (or a df11 directory) to
// DFloat11's layout, which `dfloat11` 0.5.0's DFloat11Model.from_pretrained
// loads. Units are planned from tensor names (plan_dfloat11_units), each unit
// is encoded on all threads (codec/dfloat11_encoder.h) and written as one
// file "<module with '.' -> '_'>.safetensors" with the unit's other tensors,
// as DFloat11's own compressor lays it out; the rest goes to model.safetensors.
#include "dfloat11_export.h"

#include "atomic_output_dir.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "dfloat11_encoder.h"
#include "file_io.h"
#include "input_entry.h"
#include "manifest.h"
#include "model_index.h"
#include "ops.h"
#include "parallel.h"
#include "st_file_writer.h"

namespace df11 {

namespace fs = std::filesystem;
using ordered_json = nlohmann::ordered_json;

std::string regex_escape(const std::string& s) {
  std::string r;
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') r += '\\';
    r += c;
  }
  return r;
}

namespace {

std::vector<std::string> split_dots(const std::string& s) {
  std::vector<std::string> parts;
  size_t a = 0;
  for (size_t b; (b = s.find('.', a)) != std::string::npos; a = b + 1) parts.push_back(s.substr(a, b - a));
  parts.push_back(s.substr(a));
  return parts;
}

std::string join(const std::vector<std::string>& p, size_t from, size_t to, const char* sep = ".") {
  std::string r;
  for (size_t i = from; i < to; ++i) r += (i > from ? sep : "") + p[i];
  return r;
}

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool is_block_container(const std::string& part) {
  return part == "layers" || part == "h" ||
         (part.size() >= 6 && part.compare(part.size() - 6, 6, "blocks") == 0);
}

// Where a tensor sits: inside block "<prefix>.<N>" (attr relative to it) or not.
struct Place {
  bool in_block = false;
  std::string prefix, index, attr;  // attr: module path inside the block, without ".weight"
};

Place place_of(const std::string& name) {
  Place pl;
  const auto parts = split_dots(name);
  // The outermost block: the first "<container>.<digits>" followed by at least one more component.
  for (size_t i = 0; i + 2 < parts.size(); ++i) {
    if (is_block_container(parts[i]) && all_digits(parts[i + 1])) {
      pl.in_block = true;
      pl.prefix = join(parts, 0, i + 1);
      pl.index = parts[i + 1];
      if (parts.back() == "weight" && i + 3 < parts.size()) pl.attr = join(parts, i + 2, parts.size() - 1);
      return pl;
    }
  }
  return pl;
}

bool is_2d_bf16(const ExportTensor& t) {
  return t.dtype == Dtype::BF16 && t.shape.size() == 2 && t.shape[0] > 0 && t.shape[1] > 0;
}

bool ends_with_component(const std::string& module, const std::string& last) {
  return module == last || (module.size() > last.size() &&
                            module.compare(module.size() - last.size() - 1, last.size() + 1, "." + last) == 0);
}

}  // namespace

ExportPlan plan_dfloat11_units(const std::vector<ExportTensor>& tensors, bool tied) {
  ExportPlan plan;
  std::map<std::string, size_t> unit_of;  // module -> index in plan.units
  std::vector<std::vector<std::string>> attrs;
  std::vector<std::string> unit_prefix;   // "" for single-weight units
  std::vector<bool> used(tensors.size(), false);

  for (size_t i = 0; i < tensors.size(); ++i) {
    const ExportTensor& t = tensors[i];
    if (!is_2d_bf16(t)) continue;
    const Place pl = place_of(t.name);
    std::string module, attr, prefix;
    if (pl.in_block) {
      if (pl.attr.empty()) continue;  // e.g. a block's own 2-D parameter, not a sub-module's weight
      module = pl.prefix + "." + pl.index;
      attr = pl.attr;
      prefix = pl.prefix;
    } else {
      if (tied || t.name.size() < 8 || t.name.compare(t.name.size() - 7, 7, ".weight") != 0) continue;
      module = t.name.substr(0, t.name.size() - 7);
      if (!ends_with_component(module, "lm_head") && !ends_with_component(module, "embed_tokens")) continue;
    }
    auto it = unit_of.find(module);
    if (it == unit_of.end()) {
      it = unit_of.emplace(module, plan.units.size()).first;
      PlannedUnit u;
      u.module = module;
      plan.units.push_back(u);
      attrs.emplace_back();
      unit_prefix.push_back(prefix);
    }
    PlannedUnit& u = plan.units[it->second];
    u.weights.push_back(i);
    u.elements += t.shape[0] * t.shape[1];
    if (!attr.empty()) attrs[it->second].push_back(attr);
    used[i] = true;
  }

  // Patterns: one per single unit; per block prefix, one for all blocks when
  // their weight lists agree, else one per distinct list (DFloat11 applies a
  // pattern's list to every module it matches, so lists must agree).
  std::map<std::string, std::vector<std::vector<std::string>>> lists_of_prefix;
  for (size_t k = 0; k < plan.units.size(); ++k) {
    if (unit_prefix[k].empty()) continue;
    auto& lists = lists_of_prefix[unit_prefix[k]];
    if (std::find(lists.begin(), lists.end(), attrs[k]) == lists.end()) lists.push_back(attrs[k]);
  }
  std::set<std::string> emitted;
  for (size_t k = 0; k < plan.units.size(); ++k) {
    PlannedUnit& u = plan.units[k];
    if (unit_prefix[k].empty()) {
      u.pattern = regex_escape(u.module);
    } else if (lists_of_prefix[unit_prefix[k]].size() == 1) {
      u.pattern = regex_escape(unit_prefix[k]) + "\\.\\d+";
    } else {
      std::string alts;
      for (size_t j = 0; j < plan.units.size(); ++j)
        if (unit_prefix[j] == unit_prefix[k] && attrs[j] == attrs[k])
          alts += (alts.empty() ? "" : "|") + plan.units[j].module.substr(plan.units[j].module.rfind('.') + 1);
      u.pattern = regex_escape(unit_prefix[k]) + "\\.(?:" + alts + ")";
    }
    if (emitted.insert(u.pattern).second) plan.pattern_dict.emplace_back(u.pattern, attrs[k]);
  }

  // Files: "<module with '.' -> '_'>.safetensors", made unique if two modules collide.
  std::set<std::string> files = {kDf11RemainderFile};
  for (PlannedUnit& u : plan.units) {
    std::string base = u.module;
    std::replace(base.begin(), base.end(), '.', '_');
    std::string f = base + ".safetensors";
    for (int n = 2; !files.insert(f).second; ++n) f = base + "-" + std::to_string(n) + ".safetensors";
    u.file = f;
  }
  // Other tensors of a unit's module (norms, biases, non-BF16 linears) go to its file.
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (used[i]) continue;
    const std::string& name = tensors[i].name;
    size_t best = SIZE_MAX;
    for (size_t dot = name.find('.'); dot != std::string::npos; dot = name.find('.', dot + 1)) {
      const auto it = unit_of.find(name.substr(0, dot));
      if (it != unit_of.end()) best = it->second;
    }
    if (best != SIZE_MAX) plan.units[best].extras.push_back(i);
    else plan.remainder.push_back(i);
  }
  return plan;
}

namespace {




Status read_text(const std::string& path, std::string* text) {
  std::string why;  // read_regular_file: a FIFO is refused, not waited on
  if (!read_regular_file(path, text, &why)) return make_status(Error::Io, path, why);
  return Status::Ok();
}


// The weights of IN, from safetensors files (mapped) or .df11 containers (decoded).
class WeightSource {
 public:
  struct Entry {
    ExportTensor info;
    uint64_t size = 0;
    size_t file = 0;
    size_t index = 0;        // df11: index in Reader::tensors()
    uint64_t offset = 0;     // safetensors: file offset of the data
  };
  std::vector<Entry> entries;
  std::vector<std::string> labels;  // per file, for messages
  uint64_t original_bytes = 0;      // sizes of the original weight files

  Status add_safetensors(const std::string& path, const std::string& label) {
    auto f = std::make_unique<MappedFile>();
    Status s = f->open(path);
    if (!s.ok()) return s;
    StHeader h;
    s = parse_safetensors(f->data(), f->size(), label, &h);
    if (!s.ok()) return s;
    for (size_t i = 0; i < h.tensors.size(); ++i) {
      const StTensor& t = h.tensors[i];
      entries.push_back({{t.name, t.dtype, t.shape}, t.end - t.begin, maps_.size(), i, 8 + h.json_size + t.begin});
    }
    original_bytes += f->size();
    maps_.push_back(std::move(f));
    readers_.emplace_back();
    labels.push_back(label);
    return Status::Ok();
  }

  Status add_df11(const std::string& path, const std::string& label, const ManifestEntry& entry) {
    std::unique_ptr<Reader> r;
    Status s = Reader::open(path, &r);
    if (!s.ok()) return s;
    s = check_container(*r, entry, path);
    if (!s.ok()) return s;
    const auto& ts = r->tensors();
    for (size_t i = 0; i < ts.size(); ++i) {
      Dtype d;
      if (!dtype_from_name(ts[i].dtype, &d))
        return make_status(Error::StUnknownDtype, label, "tensor " + quote_name(ts[i].name) + " has dtype " + ts[i].dtype);
      entries.push_back({{ts[i].name, d, ts[i].shape}, ts[i].orig_size, maps_.size(), i, 0});
    }
    original_bytes += entry.size;
    maps_.emplace_back();
    readers_.push_back(std::move(r));
    labels.push_back(label);
    return Status::Ok();
  }

  // The tensor's bytes: a view into the mapping, or decoded into *buf.
  Status bytes(const Entry& e, unsigned threads, std::vector<uint8_t>* buf, const uint8_t** data) const {
    if (maps_[e.file]) {
      *data = maps_[e.file]->data() + e.offset;
      return Status::Ok();
    }
    buf->resize(e.size);
    Status s = readers_[e.file]->decode_tensor(e.index, buf->data(), threads);
    *data = buf->data();
    return s;
  }

  // Copies the tensor into `out` (e.size bytes), on several threads.
  Status read_into(const Entry& e, unsigned threads, uint8_t* out) const {
    if (maps_[e.file]) {
      const uint8_t* src = maps_[e.file]->data() + e.offset;
      constexpr uint64_t kPiece = uint64_t{1} << 23;
      parallel_for((e.size + kPiece - 1) / kPiece, threads, [&](uint64_t k) {
        const uint64_t a = k * kPiece, n = std::min(kPiece, e.size - a);
        std::memcpy(out + a, src + a, n);
      });
      return Status::Ok();
    }
    return readers_[e.file]->decode_tensor(e.index, out, threads);
  }

  void release(const Entry& e) const {
    if (maps_[e.file]) maps_[e.file]->release(e.offset, e.size);
  }

 private:
  std::vector<std::unique_ptr<MappedFile>> maps_;
  std::vector<std::unique_ptr<Reader>> readers_;
};

std::vector<uint8_t> le_bytes_u32(const std::vector<uint32_t>& v) {
  std::vector<uint8_t> b(4 * v.size());
  for (size_t i = 0; i < v.size(); ++i)
    for (int k = 0; k < 4; ++k) b[4 * i + k] = static_cast<uint8_t>(v[i] >> (8 * k));
  return b;
}

std::vector<uint8_t> le_bytes_i64(const std::vector<uint64_t>& v) {
  std::vector<uint8_t> b(8 * v.size());
  for (size_t i = 0; i < v.size(); ++i)
    for (int k = 0; k < 8; ++k) b[8 * i + k] = static_cast<uint8_t>(v[i] >> (8 * k));
  return b;
}

bool json_true(const ordered_json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_boolean() && it->get<bool>();
}

struct InputFiles {
  bool df11 = false;
  std::vector<std::string> weights;            // top-level weight files (relative)
  std::vector<ManifestEntry> weight_entries;   // df11: each weight file's manifest entry (size, tie)
  std::vector<std::string> copies;             // copied byte-identically (df11: stored under the same name)
  std::vector<ManifestEntry> restores;         // df11: .df11 files restored as they were (stored_as -> path)
  std::vector<std::string> dirs;
  std::vector<std::string> skipped;            // "path: reason"
  std::vector<std::string> index_order;        // tensor names in the index's weight_map order
};

bool top_level(const std::string& rel) { return rel.find('/') == std::string::npos; }

bool is_index_name(const std::string& rel) { return top_level(rel) && ends_with(rel, ".safetensors.index.json"); }

Status scan_input(const std::string& in, InputFiles* f) {
  std::error_code ec;
  if (fs::exists(in + "/" + kManifestName, ec)) {
    f->df11 = true;
    Manifest m;
    Status s = read_manifest(in, &m);
    if (!s.ok()) return s;
    // A shard the manifest lost is not exported silently.
    if (s = check_manifest_coverage(in, m, nullptr); !s.ok()) return s;
    f->dirs = m.directories;
    for (const auto& e : m.files) {
      // Stored files may be links (a df11 model in the Hugging Face cache), with the rules of decompress.
      s = check_input_file(in, e.stored_as);
      if (!s.ok()) return s;
      const bool compressed = e.stored_as != e.path;
      if (compressed && top_level(e.path) && ends_with(e.path, ".safetensors")) {
        f->weights.push_back(e.stored_as);
        f->weight_entries.push_back(e);
      } else if (is_index_name(e.path)) {
        // compress checked this index; here it only orders the units, so
        // one that no longer reads leaves them in file order, not an error.
        if (e.path == kModelIndexName) (void)read_model_index(in, e.stored_as, &f->index_order);
        f->skipped.push_back(e.path + ": the input's shard index; DFloat11's loader reads every *.safetensors");
      } else if (e.path == "config.json") {
        // rewritten
      } else if (compressed) {
        f->restores.push_back(e);
      } else {
        f->copies.push_back(e.path);
      }
    }
    return Status::Ok();
  }
  // The rules of compress: a Hugging Face cache snapshot (links into ../../blobs/) is read through.
  std::vector<std::string> files;
  std::set<std::string> links;
  Status s = scan_dir(in, &files, &f->dirs, &links);
  if (!s.ok()) return s;
  for (const auto& rel : files) {
    if (top_level(rel) && ends_with(rel, ".safetensors")) {
      f->weights.push_back(rel);
    } else if (is_index_name(rel)) {
      // As compress: model.safetensors.index.json is checked, other indexes are skipped unread.
      if (rel == kModelIndexName) {
        Status s = check_model_index(in, &f->index_order);
        if (!s.ok()) return s;
      }
      f->skipped.push_back(rel + ": the input's shard index; DFloat11's loader reads every *.safetensors");
    } else if (rel != "config.json") {
      f->copies.push_back(rel);
    }
  }
  return Status::Ok();
}

// Writes one unit's file: its DF11 tensors (or its weights as they are) and its extras.
struct UnitWriter {
  const WeightSource& src;
  const ExportOptions& opt;
  unsigned threads;

  Status write(const PlannedUnit& pu, const std::string& dir, ExportUnit* rep, uint64_t* file_bytes) const {
    rep->module = pu.module;
    rep->pattern = pu.pattern;
    rep->file = pu.file;
    rep->elements = pu.elements;
    for (size_t i : pu.weights) rep->weights.push_back(src.entries[i].info.name);
    rep->original_bytes = 2 * pu.elements;

    Df11Unit enc;
    std::vector<uint16_t> w;
    if (pu.elements > opt.max_unit_elements) {
      rep->limit = df11_limit_name(Df11Limit::Elements);
      rep->detail = std::to_string(pu.elements) + " elements, the kernel takes at most " + std::to_string(opt.max_unit_elements);
    } else {
      w.resize(pu.elements);
      uint64_t at = 0;
      for (size_t i : pu.weights) {
        const auto& e = src.entries[i];
        Status s = src.read_into(e, threads, reinterpret_cast<uint8_t*>(w.data() + at));
        if (!s.ok()) return s;
        src.release(e);
        at += e.size / 2;
      }
      std::string why;
      Df11EncodeParams p;
      p.max_elements = opt.max_unit_elements;
      const Df11Limit lim = encode_dfloat11(w.data(), w.size(), threads, &enc, &why, p);
      if (lim != Df11Limit::None) {
        rep->limit = df11_limit_name(lim);
        rep->detail = why;
      }
    }
    rep->compressed = rep->limit.empty();

    std::vector<StOutTensor> out;
    std::vector<std::vector<uint8_t>> keep;  // decoded or converted bytes, alive until written
    keep.reserve(pu.extras.size() + pu.weights.size() + 2);
    auto add_original = [&](size_t i) -> Status {
      const auto& e = src.entries[i];
      keep.emplace_back();
      const uint8_t* data = nullptr;
      Status s = src.bytes(e, threads, &keep.back(), &data);
      if (s.ok()) out.push_back({e.info.name, e.info.dtype, e.info.shape, data, e.size});
      return s;
    };
    uint64_t df11_bytes = 0;
    if (rep->compressed) {
      w.clear();
      w.shrink_to_fit();
      const std::string& P = pu.module;
      keep.push_back(le_bytes_u32(enc.output_positions));
      const std::vector<uint8_t>& opos = keep.back();
      std::vector<uint64_t> split;
      uint64_t acc = 0;
      for (size_t k = 0; k + 1 < pu.weights.size(); ++k) split.push_back(acc += src.entries[pu.weights[k]].size / 2);
      keep.push_back(le_bytes_i64(split));
      const std::vector<uint8_t>& splitb = keep.back();
      out.push_back({P + ".luts", Dtype::U8, {enc.n_luts, 256}, enc.luts.data(), enc.luts.size()});
      out.push_back({P + ".encoded_exponent", Dtype::U8, {enc.encoded_exponent.size()}, enc.encoded_exponent.data(),
                     enc.encoded_exponent.size()});
      out.push_back({P + ".sign_mantissa", Dtype::U8, {enc.sign_mantissa.size()}, enc.sign_mantissa.data(),
                     enc.sign_mantissa.size()});
      out.push_back({P + ".output_positions", Dtype::U8, {opos.size()}, opos.data(), opos.size()});
      out.push_back({P + ".gaps", Dtype::U8, {enc.gaps.size()}, enc.gaps.data(), enc.gaps.size()});
      out.push_back({P + ".split_positions", Dtype::I64, {split.size()}, splitb.data(), splitb.size()});
      for (const auto& t : out) df11_bytes += t.size;
      rep->adjustments = enc.adjustments;
      rep->n_luts = enc.n_luts;
      rep->max_code_length = enc.max_code_length;
      rep->shared_mem_bytes = enc.shared_mem_bytes;
    } else {
      w.clear();
      w.shrink_to_fit();
      for (size_t i : pu.weights) {
        Status s = add_original(i);
        if (!s.ok()) return s;
      }
    }
    rep->stored_bytes = rep->compressed ? df11_bytes : rep->original_bytes;
    for (size_t i : pu.extras) {
      Status s = add_original(i);
      if (!s.ok()) return s;
    }
    sort_like_safetensors(out);
    Status s = write_safetensors_file(dir + "/" + pu.file, out, "", false, file_bytes);
    for (size_t i : pu.extras) src.release(src.entries[i]);
    if (!rep->compressed)
      for (size_t i : pu.weights) src.release(src.entries[i]);
    return s;
  }
};

Status run_export(const std::string& in, const std::string& out, const ExportOptions& opt, ExportReport* rep) {
  std::error_code ec;
  if (opt.format != "dfloat11") return make_status(Error::Usage, out, "unknown export format '" + opt.format + "' (dfloat11)");
  if (out.empty()) return make_status(Error::Usage, in, "export needs an output directory (-o)");
  bool is_dir = false;
  if (Status s = stat_input(in, &is_dir); !s.ok()) return s;
  if (!is_dir) return make_status(Error::Usage, in, "export takes a model directory (or a df11 directory)");
  if (Status s = refuse_output_over_input(in, out); !s.ok()) return s;
  const unsigned threads = resolve_threads(opt.threads);

  InputFiles files;
  Status s = scan_input(in, &files);
  if (!s.ok()) return s;

  // config.json: the model's config, which DFloat11's loader hands to AutoConfig.
  const std::string cfg_path = in + "/config.json";
  std::string cfg_text;
  if (!fs::is_regular_file(cfg_path, ec))
    return make_status(Error::ExportConfigInvalid, cfg_path, "missing; DFloat11's loader builds the model from it");
  s = read_text(cfg_path, &cfg_text);
  if (!s.ok()) return s;
  ordered_json cfg;
  try {
    cfg = ordered_json::parse(cfg_text);
  } catch (const nlohmann::json::exception&) {
    return make_status(Error::ExportConfigInvalid, cfg_path, "not valid JSON");
  }
  if (!cfg.is_object()) return make_status(Error::ExportConfigInvalid, cfg_path, "not a JSON object");
  if (cfg.contains("dfloat11_config"))
    return make_status(Error::ExportAlreadyDf11, cfg_path, "already has dfloat11_config: the input is a DFloat11 model");

  WeightSource src;
  for (size_t k = 0; k < files.weights.size(); ++k) {
    const std::string path = in + "/" + files.weights[k];
    s = files.df11 ? src.add_df11(path, path, files.weight_entries[k]) : src.add_safetensors(path, path);
    if (!s.ok()) return s;
  }
  // The model's index order: weight_map order when there is an index, else file by file.
  std::map<std::string, size_t> by_name;
  for (size_t i = 0; i < src.entries.size(); ++i) {
    const auto& e = src.entries[i];
    if (!by_name.emplace(e.info.name, i).second)
      return make_status(Error::ExportDuplicateTensor, src.labels[e.file],
                         "tensor " + quote_name(e.info.name) + " is also in " + src.labels[src.entries[by_name[e.info.name]].file]);
    if (ends_with(e.info.name, ".encoded_exponent"))
      return make_status(Error::ExportAlreadyDf11, src.labels[e.file],
                         "tensor " + quote_name(e.info.name) + ": the input is a DFloat11 model");
  }
  std::vector<size_t> order;
  std::vector<bool> placed(src.entries.size(), false);
  for (const auto& name : files.index_order) {
    const auto it = by_name.find(name);
    if (it != by_name.end() && !placed[it->second]) {
      order.push_back(it->second);
      placed[it->second] = true;
    }
  }
  for (size_t i = 0; i < src.entries.size(); ++i)
    if (!placed[i]) order.push_back(i);
  std::vector<ExportTensor> infos;
  for (size_t i : order) infos.push_back(src.entries[i].info);

  bool has_lm_head = false;
  for (const auto& t : infos) has_lm_head |= ends_with_component(t.name, "lm_head.weight");
  const bool tied = json_true(cfg, "tie_word_embeddings") ||
                    (cfg.contains("text_config") && cfg["text_config"].is_object() &&
                     json_true(cfg["text_config"], "tie_word_embeddings")) ||
                    !has_lm_head;
  ExportPlan plan = plan_dfloat11_units(infos, tied);
  // Back from positions in `infos` to entries of `src`.
  for (auto& u : plan.units) {
    for (auto& i : u.weights) i = order[i];
    for (auto& i : u.extras) i = order[i];
  }
  for (auto& i : plan.remainder) i = order[i];

  AtomicOutputDir od;
  s = od.open(out, opt.overwrite);
  if (!s.ok()) return s;
  od.keep_modes_from(in);
  for (const auto& d : files.dirs)
    if (s = od.make_dir(d); !s.ok()) return s;

  uint64_t total = 0, done = 0;
  for (const auto& e : src.entries) total += e.size;
  const UnitWriter writer{src, opt, threads};
  for (const PlannedUnit& pu : plan.units) {
    if (interrupted()) return interrupted_status(in);
    ExportUnit ur;
    uint64_t bytes = 0;
    s = writer.write(pu, od.temp(), &ur, &bytes);
    if (!s.ok()) return s;
    rep->stored_bytes += bytes;
    rep->files_written.push_back(pu.file);
    for (size_t i : pu.weights) done += src.entries[i].size;
    for (size_t i : pu.extras) done += src.entries[i].size;
    if (opt.progress) opt.progress(done, total);
    rep->units.push_back(std::move(ur));
  }
  if (!plan.remainder.empty()) {
    std::vector<StOutTensor> rest;
    std::vector<std::vector<uint8_t>> keep(plan.remainder.size());
    for (size_t k = 0; k < plan.remainder.size(); ++k) {
      const auto& e = src.entries[plan.remainder[k]];
      const uint8_t* data = nullptr;
      s = src.bytes(e, threads, &keep[k], &data);
      if (!s.ok()) return s;
      rest.push_back({e.info.name, e.info.dtype, e.info.shape, data, e.size});
      done += e.size;
    }
    sort_like_safetensors(rest);
    uint64_t bytes = 0;
    s = write_safetensors_file(od.temp() + "/" + kDf11RemainderFile, rest, R"({"format":"pt"})", false, &bytes);
    if (!s.ok()) return s;
    rep->stored_bytes += bytes;
    rep->files_written.push_back(kDf11RemainderFile);
    if (opt.progress) opt.progress(done, total);
  }

  // config.json: the original plus dfloat11_config.
  ordered_json pd = ordered_json::object();
  for (const auto& [pattern, list] : plan.pattern_dict) pd[pattern] = list;
  cfg["dfloat11_config"] = {{"version", "0.5.0"},
                            {"threads_per_block", {kDf11ThreadsPerBlock}},
                            {"bytes_per_thread", kDf11BytesPerThread},
                            {"pattern_dict", pd}};
  {
    const std::string text = cfg.dump(2) + "\n";
    AtomicOutputFile cf;
    s = cf.open(od.temp() + "/config.json", false);
    if (s.ok()) s = cf.write(text.data(), text.size());
    if (s.ok()) s = cf.commit();
    if (!s.ok()) return s;
    rep->files_written.push_back("config.json");
  }
  for (const auto& rel : files.copies) {
    if (interrupted()) return interrupted_status(in);
    s = copy_file_atomic(in + "/" + rel, od.temp() + "/" + rel, false);
    if (!s.ok()) return s;
    rep->files_copied.push_back(rel);
  }
  for (const auto& r : files.restores) {
    if (interrupted()) return interrupted_status(in);
    Options o;
    o.threads = threads;
    FileReport fr;
    s = decompress_one(in + "/" + r.stored_as, od.temp() + "/" + r.path, o, &fr, nullptr, &r);
    if (!s.ok()) return s;
    rep->files_copied.push_back(r.path);
  }
  rep->pattern_dict = plan.pattern_dict;
  rep->files_skipped = files.skipped;
  rep->original_bytes = src.original_bytes;
  return od.commit();
}

}  // namespace

Status export_dfloat11(const std::string& in, const std::string& out, const ExportOptions& opt, ExportReport* report) {
  const auto t0 = std::chrono::steady_clock::now();
  ExportReport local;
  ExportReport* rep = report ? report : &local;
  *rep = ExportReport();
  const Status s = AtomicOutputDir::named_for_output(
      out_of_memory_as_status(in, [&] { return run_export(in, out, opt, rep); }), out);
  rep->seconds = seconds_since(t0);
  return s;
}

}  // namespace df11
