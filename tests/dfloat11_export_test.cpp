// df11 export --format dfloat11 (issue 13). Every exported directory is read
// back with the repo's safetensors parser and every DF11 unit is decoded by
// the reference decoder (tests/support/dfloat11_reference.h) two ways,
// sequentially and block by block as DFloat11's kernel walks it; both must
// give back the original weights bit for bit, and every other tensor must be
// there under its own name with its own bytes.
#include <catch2/catch.hpp>
#include <sys/wait.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "df11.h"
#include "dfloat11_export.h"
#include "dfloat11_reference.h"
#include "safetensors_header.h"
#include "safetensors_writer.h"
#include "sample_model.h"
#include "test_util.h"

namespace fs = std::filesystem;
using nlohmann::ordered_json;

namespace {

struct Tensor {
  std::string dtype;
  std::vector<uint64_t> shape;
  std::vector<uint8_t> bytes;
};

// Every tensor of the top-level *.safetensors files of `dir`, read with the repo's parser.
std::map<std::string, Tensor> read_dir_tensors(const std::string& dir) {
  std::map<std::string, Tensor> all;
  for (const auto& ent : fs::directory_iterator(dir)) {
    const std::string p = ent.path().string();
    if (ent.path().extension() != ".safetensors") continue;
    const auto file = df11test::read_file(p);
    df11::StHeader h;
    const df11::Status s = df11::parse_safetensors(file.data(), file.size(), p, &h);
    REQUIRE(s.message == "");
    for (const auto& t : h.tensors) {
      const uint8_t* d = file.data() + 8 + h.json_size + t.begin;
      INFO(t.name);
      REQUIRE(all.count(t.name) == 0);
      all[t.name] = {df11::dtype_name(t.dtype), t.shape, std::vector<uint8_t>(d, d + (t.end - t.begin))};
    }
  }
  return all;
}

ordered_json read_json(const std::string& path) {
  const auto b = df11test::read_file(path);
  return ordered_json::parse(b.begin(), b.end());
}

std::vector<uint16_t> as_u16(const std::vector<uint8_t>& b) {
  std::vector<uint16_t> v(b.size() / 2);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<uint16_t>(b[2 * i] | (b[2 * i + 1] << 8));
  return v;
}

uint64_t numel(const std::vector<uint64_t>& s) {
  uint64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

const std::vector<std::string> kFields = {"luts", "encoded_exponent", "sign_mantissa", "output_positions", "gaps",
                                          "split_positions"};

// Checks an exported directory against its input; returns the number of DF11 units.
size_t check_export(const std::string& in, const std::string& out) {
  const auto orig = read_dir_tensors(in);
  const auto got = read_dir_tensors(out);
  const ordered_json cfg = read_json(out + "/config.json");
  const ordered_json in_cfg = read_json(in + "/config.json");
  // config.json = the original plus dfloat11_config.
  ordered_json rest = cfg;
  rest.erase("dfloat11_config");
  CHECK(rest == in_cfg);
  const ordered_json& dc = cfg["dfloat11_config"];
  CHECK(dc["threads_per_block"] == ordered_json::array({512}));
  CHECK(dc["bytes_per_thread"] == 8);
  CHECK(dc["version"].is_string());
  const ordered_json& pd = dc["pattern_dict"];

  std::set<std::string> covered, df11_names;
  size_t units = 0;
  for (const auto& [name, t] : got) {
    const std::string suffix = ".encoded_exponent";
    if (name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
    const std::string P = name.substr(0, name.size() - suffix.size());
    INFO("unit " << P);
    ++units;
    for (const auto& f : kFields) {
      REQUIRE(got.count(P + "." + f) == 1);
      df11_names.insert(P + "." + f);
    }
    df11test::Df11RefUnit u;
    u.luts = got.at(P + ".luts").bytes;
    u.encoded_exponent = t.bytes;
    u.sign_mantissa = got.at(P + ".sign_mantissa").bytes;
    u.output_positions = got.at(P + ".output_positions").bytes;
    u.gaps = got.at(P + ".gaps").bytes;
    // Dtypes and shapes of section 3.1.
    const uint64_t B = (u.encoded_exponent.size() + 4095) / 4096;
    CHECK(got.at(P + ".luts").dtype == "U8");
    CHECK(got.at(P + ".luts").shape == std::vector<uint64_t>{u.luts.size() / 256, 256});
    CHECK(got.at(P + ".output_positions").shape == std::vector<uint64_t>{4 * (B + 1)});
    CHECK(got.at(P + ".gaps").shape == std::vector<uint64_t>{320 * B});
    CHECK(got.at(P + ".split_positions").dtype == "I64");
    CHECK(df11test::df11_ref_check_kernel_limits(u) == "");

    // The unit's weights, from the pattern that fullmatches P.
    std::vector<std::string> names;
    int matches = 0;
    for (const auto& [pattern, list] : pd.items()) {
      if (!std::regex_match(P, std::regex(pattern))) continue;
      ++matches;
      if (list.empty()) names.push_back(P + ".weight");
      for (const auto& a : list) names.push_back(P + "." + a.get<std::string>() + ".weight");
    }
    REQUIRE(matches == 1);
    const auto& sp = got.at(P + ".split_positions");
    REQUIRE(sp.shape == std::vector<uint64_t>{names.size() - 1});
    std::vector<uint16_t> seq, blk;
    REQUIRE(df11test::df11_ref_decode_sequential(u, &seq) == "");
    REQUIRE(df11test::df11_ref_decode_blocks(u, &blk) == "");
    CHECK(seq == blk);
    uint64_t at = 0;
    for (size_t k = 0; k < names.size(); ++k) {
      INFO(names[k]);
      REQUIRE(orig.count(names[k]) == 1);
      const Tensor& o = orig.at(names[k]);
      CHECK(o.dtype == "BF16");
      const uint64_t n = numel(o.shape);
      if (k > 0) {
        uint64_t split = 0;
        for (int b = 7; b >= 0; --b) split = (split << 8) | sp.bytes[8 * (k - 1) + b];
        CHECK(split == at);
      }
      REQUIRE(at + n <= seq.size());
      CHECK(std::vector<uint16_t>(seq.begin() + at, seq.begin() + at + n) == as_u16(o.bytes));
      CHECK(std::vector<uint16_t>(blk.begin() + at, blk.begin() + at + n) == as_u16(o.bytes));
      CHECK(got.count(names[k]) == 0);  // compressed weights are not also stored
      covered.insert(names[k]);
      at += n;
    }
    CHECK(at == seq.size());
  }
  // Everything else is there under its own name, dtype, shape and bytes.
  for (const auto& [name, o] : orig) {
    if (covered.count(name)) continue;
    INFO(name);
    REQUIRE(got.count(name) == 1);
    CHECK(got.at(name).dtype == o.dtype);
    CHECK(got.at(name).shape == o.shape);
    CHECK(got.at(name).bytes == o.bytes);
  }
  for (const auto& [name, t] : got) {
    INFO(name);
    CHECK((orig.count(name) == 1 || df11_names.count(name) == 1));
  }
  return units;
}

df11test::SampleOptions small_sample() {
  df11test::SampleOptions o;
  o.hidden = 256;
  o.layers = 3;
  o.intermediate = 688;
  o.vocab = 2048;
  o.threads = 2;
  return o;
}

df11test::StEntry bf16_entry(const std::string& name, std::vector<uint64_t> shape, std::vector<uint16_t> w) {
  df11test::StEntry e{name, "BF16", std::move(shape), std::vector<uint8_t>(w.size() * 2)};
  std::memcpy(e.bytes.data(), w.data(), e.bytes.size());
  return e;
}

// A tiny Llama-style directory: `layers` blocks of q/k/v/o, a norm, embed and lm_head.
void tiny_model(const std::string& dir, int layers, const ordered_json& extra_cfg = ordered_json::object(),
                uint16_t poison = 0, int poison_layer = -1) {
  fs::create_directories(dir);
  std::vector<df11test::StEntry> t;
  uint64_t seed = 1;
  t.push_back(bf16_entry("model.embed_tokens.weight", {64, 32}, df11test::gaussian_bf16(64 * 32, 0.02, seed++)));
  for (int l = 0; l < layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    for (const char* m : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"}) {
      auto w = df11test::gaussian_bf16(32 * 32, 0.02, seed++);
      if (l == poison_layer && std::string(m) == "self_attn.v_proj") w[5] = poison;
      t.push_back(bf16_entry(p + m + ".weight", {32, 32}, w));
    }
    t.push_back({p + "input_layernorm.weight", "F32", {32}, std::vector<uint8_t>(128, 0x3f)});
  }
  t.push_back({"model.norm.weight", "F32", {32}, std::vector<uint8_t>(128, 0x3f)});
  t.push_back(bf16_entry("lm_head.weight", {64, 32}, df11test::gaussian_bf16(64 * 32, 0.02, seed++)));
  df11test::write_safetensors(dir + "/model.safetensors", t, R"({"format":"pt"})");
  ordered_json cfg = {{"model_type", "llama"}, {"hidden_size", 32}, {"tie_word_embeddings", false}};
  cfg.update(extra_cfg);
  const std::string text = cfg.dump(2);
  df11test::write_file(dir + "/config.json", std::vector<uint8_t>(text.begin(), text.end()));
}

const df11::ExportUnit* unit(const df11::ExportReport& r, const std::string& module) {
  for (const auto& u : r.units)
    if (u.module == module) return &u;
  return nullptr;
}

}  // namespace

TEST_CASE("export dfloat11: a generated Llama-style model decodes bit for bit, both ways", "[export][dfloat11]") {
  df11test::TempDir t;
  const std::string in = t.path + "/llama", out = t.path + "/llama-DF11";
  df11test::make_sample_model(in, small_sample());
  df11::ExportOptions opt;
  opt.threads = 2;
  df11::ExportReport r;
  const df11::Status s = df11::export_dfloat11(in, out, opt, &r);
  REQUIRE(s.message == "");
  // 3 blocks + embed_tokens + lm_head, all compressed, nothing adjusted.
  CHECK(check_export(in, out) == 5);
  REQUIRE(r.units.size() == 5);
  for (const auto& u : r.units) {
    CHECK(u.compressed);
    CHECK(u.adjustments.empty());
    CHECK(u.stored_bytes < u.original_bytes * 0.72);  // ~11 bits of 16
  }
  // pattern_dict derived from the names, in the index's (weight_map) order.
  const ordered_json pd = read_json(out + "/config.json")["dfloat11_config"]["pattern_dict"];
  const ordered_json want = {{"lm_head", ordered_json::array()},
                             {"model\\.embed_tokens", ordered_json::array()},
                             {"model\\.layers\\.\\d+",
                              {"mlp.down_proj", "mlp.gate_proj", "mlp.up_proj", "self_attn.k_proj",
                               "self_attn.o_proj", "self_attn.q_proj", "self_attn.v_proj"}}};
  CHECK(pd == want);
  // DFloat11's file layout: one file per unit with the block's other tensors, the rest in model.safetensors.
  CHECK(fs::exists(out + "/model_layers_0.safetensors"));
  CHECK(fs::exists(out + "/lm_head.safetensors"));
  CHECK(fs::exists(out + "/model_embed_tokens.safetensors"));
  CHECK(fs::exists(out + "/model.safetensors"));
  // Other files byte-identical, the shard index not copied (the loader reads every *.safetensors).
  for (const char* f : {"generation_config.json", "tokenizer.json", "tokenizer_config.json", "README.md",
                        "vision/model.safetensors", "vision/config.json"}) {
    INFO(f);
    CHECK(df11test::read_file(out + "/" + f) == df11test::read_file(in + "/" + f));
  }
  CHECK_FALSE(fs::exists(out + "/model.safetensors.index.json"));
  CHECK(r.files_skipped.size() == 1);
  // No temporary left beside the output.
  CHECK(df11test::temporaries_in(t.path).empty());
}

TEST_CASE("export dfloat11: from a df11 directory gives the same files", "[export][dfloat11]") {
  df11test::TempDir t;
  const std::string in = t.path + "/m", packed = t.path + "/m.df11", a = t.path + "/a", b = t.path + "/b";
  df11test::make_sample_model(in, small_sample());
  df11::Options copt;
  copt.threads = 2;
  df11::Report cr;
  REQUIRE(df11::compress(in, packed, copt, &cr).message == "");
  df11::ExportOptions opt;
  opt.threads = 2;
  df11::ExportReport ra, rb;
  REQUIRE(df11::export_dfloat11(in, a, opt, &ra).message == "");
  opt.threads = 1;  // and the thread count changes nothing
  REQUIRE(df11::export_dfloat11(packed, b, opt, &rb).message == "");
  std::set<std::string> fa, fb;
  for (const auto& e : fs::recursive_directory_iterator(a)) fa.insert(fs::relative(e.path(), a).string());
  for (const auto& e : fs::recursive_directory_iterator(b)) fb.insert(fs::relative(e.path(), b).string());
  CHECK(fa == fb);
  for (const auto& f : fa) {
    if (fs::is_directory(a + "/" + f)) continue;
    INFO(f);
    CHECK(df11test::read_file(a + "/" + f) == df11test::read_file(b + "/" + f));
  }
}

TEST_CASE("export dfloat11: units follow the index's weight_map order, from a directory and from its df11 form",
          "[export][dfloat11][index]") {
  df11test::TempDir t;
  const std::string in = t.path + "/m";
  tiny_model(in, 3);
  // Layers last to first, each with its weights in reverse name order: not the file's order.
  ordered_json map = ordered_json::object();
  for (int l = 2; l >= 0; --l)
    for (const char* m : {"self_attn.v_proj", "self_attn.q_proj", "self_attn.o_proj", "self_attn.k_proj",
                          "input_layernorm"})
      map["model.layers." + std::to_string(l) + "." + m + ".weight"] = "model.safetensors";
  for (const char* n : {"lm_head.weight", "model.norm.weight", "model.embed_tokens.weight"}) map[n] = "model.safetensors";
  const std::string text = ordered_json({{"metadata", {{"total_size", 1}}}, {"weight_map", map}}).dump();
  df11test::write_file(in + "/model.safetensors.index.json", std::vector<uint8_t>(text.begin(), text.end()));
  df11::Options copt;
  copt.threads = 2;
  REQUIRE(df11::compress(in, t.path + "/m.df11", copt, nullptr).message == "");
  auto modules = [&](const std::string& from, const std::string& to) {
    df11::ExportReport r;
    const df11::Status s = df11::export_dfloat11(from, to, df11::ExportOptions(), &r);
    REQUIRE(s.message == "");
    std::vector<std::string> m;
    for (const auto& u : r.units) m.push_back(u.module + ": " + u.weights.front());
    return m;
  };
  const std::vector<std::string> want = {
      "model.layers.2: model.layers.2.self_attn.v_proj.weight", "model.layers.1: model.layers.1.self_attn.v_proj.weight",
      "model.layers.0: model.layers.0.self_attn.v_proj.weight", "lm_head: lm_head.weight",
      "model.embed_tokens: model.embed_tokens.weight"};
  CHECK(modules(in, t.path + "/a") == want);
  CHECK(modules(t.path + "/m.df11", t.path + "/b") == want);
  fs::remove(in + "/model.safetensors.index.json");
  CHECK(modules(in, t.path + "/c") != want);  // the order came from the index
}

TEST_CASE("export dfloat11: a df11 container that is not its manifest entry's is refused", "[export][dfloat11]") {
  df11test::TempDir t;
  const std::string in = t.path + "/m", packed = t.path + "/m.df11", out = t.path + "/x";
  df11test::make_sample_model(in, small_sample());
  df11::Options copt;
  copt.threads = 2;
  REQUIRE(df11::compress(in, packed, copt, nullptr).message == "");
  df11::ExportOptions opt;
  opt.threads = 2;
  df11::ExportReport r;
  // `victim` replaced by another valid container, the manifest unchanged.
  auto refused = [&](const std::string& from, const std::string& victim) {
    fs::copy_file(packed + "/" + from, packed + "/" + victim, fs::copy_options::overwrite_existing);
    const df11::Status s = df11::export_dfloat11(packed, out, opt, &r);
    INFO(s.message);
    CHECK(s.code == df11::Error::VerifyMismatch);
    CHECK(s.message.find(victim) != std::string::npos);
  };
  SECTION("a weight shard (read by the exporter)") { refused("model-00002-of-00002.df11", "model-00001-of-00002.df11"); }
  SECTION("a container restored as a side file") { refused("model-00001-of-00002.df11", "vision/model.df11"); }
  SECTION("a container that the manifest does not list") {
    fs::copy_file(packed + "/model-00002-of-00002.df11", packed + "/stray.df11");
    const df11::Status s = df11::export_dfloat11(packed, out, opt, &r);
    INFO(s.message);
    CHECK(s.code == df11::Error::VerifyMismatch);
    CHECK(s.message.find("stray.df11: a container that the manifest does not list") != std::string::npos);
  }
  CHECK_FALSE(fs::exists(out));
}

TEST_CASE("export dfloat11 limit ExponentSymbol: the unit is stored uncompressed and the report says so", "[export][dfloat11]") {
  df11test::TempDir t;
  const std::string in = t.path + "/m", out = t.path + "/o";
  tiny_model(in, 3, ordered_json::object(), 0x7F80 /* +Inf */, 1);
  df11::ExportOptions opt;
  df11::ExportReport r;
  REQUIRE(df11::export_dfloat11(in, out, opt, &r).message == "");
  CHECK(check_export(in, out) == 4);  // layers 0 and 2, embed, lm_head
  const auto* u = unit(r, "model.layers.1");
  REQUIRE(u != nullptr);
  CHECK_FALSE(u->compressed);
  CHECK(u->limit == "ExponentSymbol");
  CHECK(u->detail.find("255") != std::string::npos);
  CHECK(unit(r, "model.layers.0")->compressed);
}

TEST_CASE("export dfloat11 limit Elements: a unit of 2^31 elements or more is stored uncompressed", "[export][dfloat11]") {
  // The planner works from names and shapes alone: a 65536 x 32768 lm_head is 2^31 elements.
  std::vector<df11::ExportTensor> ts = {{"lm_head.weight", df11::Dtype::BF16, {65536, 32768}},
                                        {"model.embed_tokens.weight", df11::Dtype::BF16, {65536, 32767}}};
  const df11::ExportPlan p = df11::plan_dfloat11_units(ts, false);
  REQUIRE(p.units.size() == 2);
  CHECK(p.units[0].elements == (uint64_t{1} << 31));
  CHECK(df11::ExportOptions().max_unit_elements == (uint64_t{1} << 31) - 1);
  CHECK(p.units[0].elements > df11::ExportOptions().max_unit_elements);
  CHECK(p.units[1].elements <= df11::ExportOptions().max_unit_elements);
  // And through the exporter, with the limit lowered to stand in for 2^31 - 1.
  df11test::TempDir t;
  const std::string in = t.path + "/m", out = t.path + "/o";
  tiny_model(in, 2);
  df11::ExportOptions opt;
  opt.max_unit_elements = 4 * 32 * 32 - 1;  // a block has 4096 elements, embed and lm_head 2048
  df11::ExportReport r;
  REQUIRE(df11::export_dfloat11(in, out, opt, &r).message == "");
  CHECK(check_export(in, out) == 2);
  for (const char* m : {"model.layers.0", "model.layers.1"}) {
    INFO(m);
    REQUIRE(unit(r, m) != nullptr);
    CHECK_FALSE(unit(r, m)->compressed);
    CHECK(unit(r, m)->limit == "Elements");
  }
  CHECK(unit(r, "lm_head")->compressed);
}

TEST_CASE("export dfloat11 limits SubTables and SharedMemory: handled by the code, and reported", "[export][dfloat11]") {
  df11test::TempDir t;
  const std::string in = t.path + "/m", out = t.path + "/o";
  fs::create_directories(in);
  std::vector<df11test::StEntry> ts;
  // Layer 0: one dominant exponent and 200 rare ones (72 sub-tables with an optimal code).
  std::vector<uint16_t> w0;
  for (int i = 0; i < 64 * 1024; ++i) w0.push_back(static_cast<uint16_t>((120 << 7) | (i & 0x807F)));
  for (int e = 10, k = 0; e < 210; ++e)
    if (e != 120)
      for (int j = 0; j < 40; ++j, ++k) w0[(k * 7919) % w0.size()] = static_cast<uint16_t>((e << 7) | (j & 0x7F));
  ts.push_back(bf16_entry("model.layers.0.mlp.up_proj.weight", {256, 256}, w0));
  // Layer 1: all weights equal (one exponent): 1-bit codes would put 32768 elements in a block.
  ts.push_back(bf16_entry("model.layers.1.mlp.up_proj.weight", {256, 256}, std::vector<uint16_t>(65536, 0x3C00)));
  df11test::write_safetensors(in + "/model.safetensors", ts);
  const std::string cfg = R"({"model_type": "llama", "tie_word_embeddings": true})";
  df11test::write_file(in + "/config.json", std::vector<uint8_t>(cfg.begin(), cfg.end()));
  df11::ExportOptions opt;
  df11::ExportReport r;
  REQUIRE(df11::export_dfloat11(in, out, opt, &r).message == "");
  CHECK(check_export(in, out) == 2);
  const auto* u0 = unit(r, "model.layers.0");
  const auto* u1 = unit(r, "model.layers.1");
  REQUIRE(u0 != nullptr);
  REQUIRE(u1 != nullptr);
  CHECK(u0->compressed);
  REQUIRE(u0->adjustments.size() == 1);
  CHECK(u0->adjustments[0].rfind("SubTables:", 0) == 0);
  CHECK(u0->n_luts <= 18);
  CHECK(u1->compressed);
  REQUIRE(u1->adjustments.size() == 1);
  CHECK(u1->adjustments[0].rfind("SharedMemory:", 0) == 0);
  CHECK(u1->shared_mem_bytes <= 49152);
}

TEST_CASE("export dfloat11: tied embeddings stay uncompressed; blocks with different lists get their own patterns",
          "[export][dfloat11]") {
  SECTION("tied") {
    df11test::TempDir t;
    tiny_model(t.path + "/m", 2, {{"tie_word_embeddings", true}});
    df11::ExportReport r;
    REQUIRE(df11::export_dfloat11(t.path + "/m", t.path + "/o", df11::ExportOptions(), &r).message == "");
    CHECK(check_export(t.path + "/m", t.path + "/o") == 2);
    CHECK(r.pattern_dict.size() == 1);
    CHECK(unit(r, "lm_head") == nullptr);
    CHECK(unit(r, "model.embed_tokens") == nullptr);
  }
  SECTION("per-block lists") {
    df11test::TempDir t;
    const std::string in = t.path + "/m";
    fs::create_directories(in);
    std::vector<df11test::StEntry> ts;
    for (int l = 0; l < 3; ++l) {
      const std::string p = "transformer_blocks." + std::to_string(l) + ".";
      ts.push_back(bf16_entry(p + "attn.to_q.weight", {16, 16}, df11test::gaussian_bf16(256, 0.02, l)));
      if (l != 1) ts.push_back(bf16_entry(p + "ff.net.2.weight", {16, 16}, df11test::gaussian_bf16(256, 0.02, 9 + l)));
      ts.push_back(bf16_entry(p + "ff.net.2.bias", {16}, df11test::gaussian_bf16(16, 0.02, 20 + l)));
    }
    df11test::write_safetensors(in + "/diffusion_pytorch_model.safetensors", ts);
    const std::string cfg = R"({"_class_name": "FluxTransformer2DModel"})";
    df11test::write_file(in + "/config.json", std::vector<uint8_t>(cfg.begin(), cfg.end()));
    df11::ExportReport r;
    REQUIRE(df11::export_dfloat11(in, t.path + "/o", df11::ExportOptions(), &r).message == "");
    CHECK(check_export(in, t.path + "/o") == 3);
    REQUIRE(r.pattern_dict.size() == 2);
    CHECK(r.pattern_dict[0].first == "transformer_blocks\\.(?:0|2)");
    CHECK(r.pattern_dict[0].second == std::vector<std::string>{"attn.to_q", "ff.net.2"});
    CHECK(r.pattern_dict[1].first == "transformer_blocks\\.(?:1)");
    CHECK(r.pattern_dict[1].second == std::vector<std::string>{"attn.to_q"});
  }
}

TEST_CASE("export dfloat11: invalid input gets a named error and leaves nothing", "[export][dfloat11]") {
  df11test::TempDir t;
  const std::string in = t.path + "/m", out = t.path + "/o";
  tiny_model(in, 1);
  auto no_output = [&] {
    CHECK_FALSE(fs::exists(out));
    CHECK(df11test::temporaries_in(t.path).empty());
  };
  SECTION("ExportConfigInvalid: no config.json") {
    fs::remove(in + "/config.json");
    const df11::Status s = df11::export_dfloat11(in, out, df11::ExportOptions(), nullptr);
    CHECK(s.code == df11::Error::ExportConfigInvalid);
    CHECK(s.message.find("config.json") != std::string::npos);
    CHECK(s.message.find("(ExportConfigInvalid)") != std::string::npos);
    CHECK(df11::exit_code(s.code) == 3);
    no_output();
  }
  SECTION("ExportConfigInvalid: not a JSON object") {
    df11test::write_file(in + "/config.json", {'[', '1', ']'});
    CHECK(df11::export_dfloat11(in, out, df11::ExportOptions(), nullptr).code == df11::Error::ExportConfigInvalid);
    no_output();
  }
  SECTION("ExportAlreadyDf11") {
    df11::ExportOptions o;
    REQUIRE(df11::export_dfloat11(in, out, o, nullptr).ok());
    const df11::Status s = df11::export_dfloat11(out, t.path + "/again", o, nullptr);
    CHECK(s.code == df11::Error::ExportAlreadyDf11);
    CHECK(s.message.find("(ExportAlreadyDf11)") != std::string::npos);
    CHECK_FALSE(fs::exists(t.path + "/again"));
  }
  SECTION("ExportDuplicateTensor") {
    df11test::write_safetensors(in + "/extra.safetensors",
                                {bf16_entry("lm_head.weight", {4, 4}, df11test::gaussian_bf16(16, 0.02, 1))});
    const df11::Status s = df11::export_dfloat11(in, out, df11::ExportOptions(), nullptr);
    CHECK(s.code == df11::Error::ExportDuplicateTensor);
    CHECK(s.message.find("'lm_head.weight'") != std::string::npos);
    no_output();
  }
  SECTION("the model index's rules, as compress's") {
    const std::string index = R"({"weight_map":{"lm_head.weight":"model-00002-of-00002.safetensors"}})";
    df11test::write_file(in + "/model.safetensors.index.json", std::vector<uint8_t>(index.begin(), index.end()));
    const df11::Status s = df11::export_dfloat11(in, out, df11::ExportOptions(), nullptr);
    CHECK(s.code == df11::Error::DirIndexMissingShard);
    CHECK(s.message.rfind(in + "/model.safetensors.index.json: shard 'model-00002-of-00002.safetensors'", 0) == 0);
    no_output();
    const std::string twice = R"({"weight_map":{"a":"model.safetensors","a":"model.safetensors"}})";
    df11test::write_file(in + "/model.safetensors.index.json", std::vector<uint8_t>(twice.begin(), twice.end()));
    CHECK(df11::export_dfloat11(in, out, df11::ExportOptions(), nullptr).code == df11::Error::DirIndexInvalid);
    no_output();
  }
  SECTION("OutputExists without -f; with it, an earlier export is replaced, a folder holding more is not") {
    fs::create_directories(out);
    df11test::write_file(out + "/keep", {'x'});
    df11::ExportOptions o;
    CHECK(df11::export_dfloat11(in, out, o, nullptr).code == df11::Error::OutputExists);
    CHECK(fs::exists(out + "/keep"));
    o.overwrite = true;
    CHECK(df11::export_dfloat11(in, out, o, nullptr).code == df11::Error::OutputExists);
    CHECK(fs::exists(out + "/keep"));
    fs::remove(out + "/keep");
    CHECK(df11::export_dfloat11(in, out, o, nullptr).ok());  // into the empty folder
    CHECK(df11::export_dfloat11(in, out, o, nullptr).ok());  // over the earlier export
    CHECK(fs::exists(out + "/config.json"));
  }
  SECTION("Usage: the output may not replace the input, even with -f") {
    df11::ExportOptions o;
    o.overwrite = true;
    CHECK(df11::export_dfloat11(in, in, o, nullptr).code == df11::Error::Usage);
    CHECK(df11::export_dfloat11(in, t.path, o, nullptr).code == df11::Error::Usage);
    CHECK(fs::exists(in + "/model.safetensors"));
  }
  SECTION("input safetensors invalid: the parser's rule") {
    auto b = df11test::read_file(in + "/model.safetensors");
    b.resize(b.size() - 1);
    df11test::write_file(in + "/model.safetensors", b);
    const df11::Status s = df11::export_dfloat11(in, out, df11::ExportOptions(), nullptr);
    CHECK(s.code == df11::Error::StOffsetsOutOfBounds);
    no_output();
  }
}

namespace {

using Run = df11test::CliRun;

Run df11_cli(const std::string& args, const std::string& dir) { return df11test::run_df11(args, dir); }

}  // namespace

TEST_CASE("cli: df11 export --format dfloat11, --json, and its errors", "[export][dfloat11][cli]") {
  if (!fs::exists(std::string(DF11_BINARY_DIR) + "/df11")) {
    WARN("skipped: df11 binary not built");
    return;
  }
  df11test::TempDir t;
  tiny_model(t.path + "/m", 2, ordered_json::object(), 0x7F80, 0);
  Run r = df11_cli("export --format dfloat11 m -o o --json", t.path);
  REQUIRE(r.code == 0);
  const ordered_json j = ordered_json::parse(r.out);
  CHECK(j["ok"] == true);
  CHECK(j["units_compressed"] == 3);
  CHECK(j["units_uncompressed"] == 1);
  bool named = false;
  for (const auto& u : j["units"])
    if (u["module"] == "model.layers.0") named = u["compressed"] == false && u["limit"] == "ExponentSymbol";
  CHECK(named);
  // Human output names the uncompressed unit and its limit.
  r = df11_cli("export m -o o2", t.path);
  CHECK(r.code == 0);
  CHECK(r.err.find("model.layers.0: stored uncompressed (ExponentSymbol") != std::string::npos);
  // Existing output: exit 3, one line, nothing touched.
  r = df11_cli("export m -o o", t.path);
  CHECK(r.code == 3);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK(r.err.find("(OutputExists)") != std::string::npos);
  // Unknown format: usage, exit 2.
  r = df11_cli("export --format gguf m -o o3", t.path);
  CHECK(r.code == 2);
  CHECK_FALSE(fs::exists(t.path + "/o3"));
}
