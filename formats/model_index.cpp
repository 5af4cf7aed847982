// model.safetensors.index.json checks (docs/FORMAT.md section 7).
#include "model_index.h"

#include <filesystem>
#include <unordered_set>
#include <vector>

#include "file_io.h"  // read_regular_file
#include "safetensors_header.h"  // is_valid_utf8, parse_json_events, quote_name

namespace df11 {

namespace {

namespace fs = std::filesystem;

// An index file above this size is rejected rather than read (real ones are
// well under 10 MB even for models with 100k tensors).
constexpr uint64_t kMaxIndexSize = 100'000'000;

Status make_status(const std::string& label, Error code, const std::string& what) {
  Status s;
  s.code = code;
  s.message = label + ": " + what + " (" + error_name(code) + ")";
  return s;
}

// Root must be an object without duplicate keys; "weight_map" (depth 1) must
// be an object of strings without duplicate keys. Everything else is skipped.
class IndexHandler final : public JsonHandler {
 public:
  bool failed = false;
  std::string what;
  bool seen_weight_map = false;
  std::vector<std::string> shards;  // distinct values, in order of first appearance
  bool keep_tensors = false;
  std::vector<std::string> tensors;  // the keys, in order (with keep_tensors)

  void on_event(JsonEvent ev, std::string& text, uint64_t) override {
    if (ev == JsonEvent::EndObject || ev == JsonEvent::EndArray) {
      --depth_;
      if (depth_ == 1) in_map_ = false;
      return;
    }
    if (failed) {
      if (ev == JsonEvent::BeginObject || ev == JsonEvent::BeginArray) ++depth_;
      return;
    }
    if (ev == JsonEvent::Key) {
      if (depth_ == 1) {
        if (!root_keys_.insert(text).second) return fail("key " + quote_name(text) + " appears twice");
        cur_key_ = std::move(text);
      } else if (depth_ == 2 && in_map_) {
        if (!map_keys_.insert(text).second)
          return fail("weight_map names tensor " + quote_name(text) + " twice");
        if (keep_tensors) tensors.push_back(text);
        map_key_ = std::move(text);
      }
      return;
    }
    const bool opens = ev == JsonEvent::BeginObject || ev == JsonEvent::BeginArray;
    if (depth_ == 0) {
      if (ev != JsonEvent::BeginObject) fail("the index is not a JSON object");
    } else if (depth_ == 1 && cur_key_ == "weight_map") {
      if (ev == JsonEvent::BeginObject) {
        in_map_ = true;
        seen_weight_map = true;
      } else {
        fail("weight_map is not an object");
      }
    } else if (depth_ == 2 && in_map_) {
      if (ev != JsonEvent::String) {
        fail("weight_map value for tensor " + quote_name(map_key_) + " is not a string");
      } else if (shard_set_.insert(text).second) {
        shards.push_back(std::move(text));
      }
    }
    if (opens) ++depth_;
  }

 private:
  void fail(const std::string& w) {
    failed = true;
    what = w;
  }

  uint64_t depth_ = 0;
  std::unordered_set<std::string> root_keys_;
  std::string cur_key_;
  bool in_map_ = false;
  std::unordered_set<std::string> map_keys_;
  std::string map_key_;
  std::unordered_set<std::string> shard_set_;
};

// "" if `name` is a plain file name, else why not.
std::string bad_path_reason(const std::string& name) {
  if (name.empty()) return "is empty";
  if (name[0] == '/') return "is an absolute path";
  if (name.find('/') != std::string::npos) return "contains '/'";
  if (name.find('\\') != std::string::npos) return "contains '\\'";
  if (name.find("..") != std::string::npos) return "contains '..'";
  if (name.find('\0') != std::string::npos) return "contains a NUL character";
  return "";
}

// Each shard, a plain name already, is a regular file in `dir` [DirIndexMissingShard].
Status shards_present(const std::string& dir, const std::string& label, const std::vector<std::string>& shards) {
  std::error_code ec;
  for (const std::string& shard : shards) {
    const fs::file_status s = fs::status(fs::path(dir) / shard, ec);  // through links, as the index is
    if (s.type() == fs::file_type::regular) continue;
    std::string why;
    if (s.type() == fs::file_type::not_found)
      why = "does not exist";
    else if (ec)
      why = "cannot be examined: " + ec.message();
    else if (s.type() == fs::file_type::directory)
      why = "is a directory, not a regular file";
    else
      why = "is not a regular file";
    return make_status(label, Error::DirIndexMissingShard,
                       "shard " + quote_name(shard) + " named in weight_map " + why);
  }
  return Status::Ok();
}

// check_model_index, and read_model_index without `shards_on_disk`: the
// index DIR/NAME, its shards in DIR.
Status check(const std::string& dir, const std::string& name, std::vector<std::string>* tensors, bool shards_on_disk,
             std::vector<std::string>* shards) {
  const fs::path path = fs::path(dir) / name;
  const std::string label = path.string();
  std::error_code ec;
  // Links are followed (a Hugging Face cache snapshot is made of links into
  // ../../blobs/); the directory scan has already refused links that do not
  // resolve to a regular file, naming them.
  if (fs::symlink_status(path, ec).type() == fs::file_type::not_found) {
    if (tensors) tensors->clear();
    return Status::Ok();
  }
  const fs::file_status st = fs::status(path, ec);
  if (st.type() == fs::file_type::not_found) return make_status(label, Error::DirIndexInvalid, "is a dangling symbolic link");
  if (ec) return make_status(label, Error::DirIndexInvalid, "cannot be examined: " + ec.message());
  if (st.type() != fs::file_type::regular) return make_status(label, Error::DirIndexInvalid, "is not a regular file");

  // Read as a regular file only (a FIFO swapped in since the check above
  // is refused, not waited on), and at most kMaxIndexSize bytes.
  std::string text, why;
  if (!read_regular_file(label, &text, &why, kMaxIndexSize)) return make_status(label, Error::DirIndexInvalid, why);
  const auto* bytes = reinterpret_cast<const uint8_t*>(text.data());

  uint64_t bad = 0;
  if (!is_valid_utf8(bytes, text.size(), &bad))
    return make_status(label, Error::DirIndexInvalid, "is not valid UTF-8 (at byte " + std::to_string(bad) + ")");
  IndexHandler h;
  h.keep_tensors = tensors != nullptr;
  std::string err;
  if (!parse_json_events(bytes, text.size(), h, &err))
    return make_status(label, Error::DirIndexInvalid, "is not valid JSON: " + err);
  if (h.failed) return make_status(label, Error::DirIndexInvalid, h.what);
  if (!h.seen_weight_map) return make_status(label, Error::DirIndexInvalid, "has no weight_map");

  for (const std::string& shard : h.shards) {
    const std::string why = bad_path_reason(shard);
    if (!why.empty())
      return make_status(label, Error::DirIndexBadPath,
                         "weight_map names shard " + quote_name(shard) + ", which " + why);
  }
  if (shards_on_disk) {
    const Status present = shards_present(dir, label, h.shards);
    if (!present.ok()) return present;
  }
  if (tensors) *tensors = std::move(h.tensors);
  if (shards) *shards = std::move(h.shards);
  return Status::Ok();
}

// `check` without exceptions.
Status guarded_check(const std::string& dir, const std::string& name, std::vector<std::string>* tensors,
                     bool shards_on_disk, std::vector<std::string>* shards = nullptr) {
  try {
    return check(dir, name, tensors, shards_on_disk, shards);
  } catch (...) {  // std::bad_alloc, or a filesystem::path allocation failing
    Status s;
    s.code = Error::DirIndexInvalid;
    try {
      s.message = dir + "/" + name + ": out of memory while checking the index (DirIndexInvalid)";
    } catch (...) {
    }
    return s;
  }
}

}  // namespace

Status check_model_index(const std::string& dir, std::vector<std::string>* tensors) {
  return guarded_check(dir, kModelIndexName, tensors, true);
}

Status check_shard_index(const std::string& dir, const std::string& name) {
  return guarded_check(dir, name, nullptr, true);
}

Status read_model_index(const std::string& dir, const std::string& name, std::vector<std::string>* tensors) {
  return guarded_check(dir, name, tensors, false);
}

Status read_index_shards(const std::string& dir, const std::string& name, std::vector<std::string>* shards) {
  return guarded_check(dir, name, nullptr, false, shards);
}

}  // namespace df11
