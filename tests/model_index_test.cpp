// model.safetensors.index.json checks: one test per rule of docs/FORMAT.md section 7.
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "df11.h"
#include "model_index.h"
#include "safetensors_writer.h"
#include "test_util.h"

using namespace df11;
namespace fs = std::filesystem;

namespace {

void write_text(const std::string& path, const std::string& text) {
  df11test::write_file(path, std::vector<uint8_t>(text.begin(), text.end()));
}

// A directory with two shards and, if `index` is not null, the given index text.
struct ModelDir {
  df11test::TempDir tmp;
  explicit ModelDir(const char* index) {
    write_text(tmp.path + "/model-00001-of-00002.safetensors", "x");
    write_text(tmp.path + "/model-00002-of-00002.safetensors", "y");
    if (index) write_text(tmp.path + "/model.safetensors.index.json", index);
  }
};

void expect(const std::string& index, Error want) {
  INFO("index: " << index);
  ModelDir d(index.c_str());
  const Status s = check_model_index(d.tmp.path);
  INFO(s.message);
  REQUIRE(error_name(s.code) == std::string(error_name(want)));
  const std::string label = (fs::path(d.tmp.path) / "model.safetensors.index.json").string();
  REQUIRE(s.message.rfind(label + ": ", 0) == 0);
  const std::string suffix = std::string(" (") + error_name(want) + ")";
  REQUIRE(s.message.compare(s.message.size() - suffix.size(), suffix.size(), suffix) == 0);
  REQUIRE(s.message.find('\n') == std::string::npos);
  // Asked for the tensor names too: the same verdict, and nothing handed out.
  std::vector<std::string> tensors = {"untouched"};
  REQUIRE(check_model_index(d.tmp.path, &tensors).message == s.message);
  REQUIRE(tensors == std::vector<std::string>{"untouched"});
  // read_model_index (a df11 directory's index): every rule but the shards' presence.
  const Status r = read_model_index(d.tmp.path, kModelIndexName, &tensors);
  if (want == Error::DirIndexMissingShard) {
    REQUIRE(r.ok());
  } else {
    REQUIRE(r.message == s.message);
    REQUIRE(tensors == std::vector<std::string>{"untouched"});
  }
}

std::string index_with(const std::string& shard) {
  return "{\"metadata\":{\"total_size\":2},\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\",\"b\":\"" +
         shard + "\"}}";
}

}  // namespace

TEST_CASE("model index: absent index is fine", "[index]") {
  ModelDir d(nullptr);
  REQUIRE(check_model_index(d.tmp.path).ok());
}

TEST_CASE("model index: a valid index passes", "[index]") {
  const std::string ok =
      "{\n  \"metadata\": {\"total_size\": 2, \"nested\": [1, {\"x\": null}]},\n"
      "  \"weight_map\": {\n"
      "    \"h.0.w\": \"model-00001-of-00002.safetensors\",\n"
      "    \"h.0.b\": \"model-00001-of-00002.safetensors\",\n"
      "    \"h.1.w\": \"model-00002-of-00002.safetensors\"\n  }\n}\n";
  ModelDir d(ok.c_str());
  const Status s = check_model_index(d.tmp.path);
  INFO(s.message);
  REQUIRE(s.ok());
  ModelDir e("{\"weight_map\":{}}");
  REQUIRE(check_model_index(e.tmp.path).ok());
  ModelDir f(index_with("model-00002-of-00002.safetensors").c_str());
  REQUIRE(check_model_index(f.tmp.path + "/").ok());  // a trailing slash on DIR is fine
}

TEST_CASE("model index: the weight_map's tensor names, in the index's order, from the one read", "[index]") {
  const std::string index =
      "{\"weight_map\":{\"h.1.w\":\"model-00002-of-00002.safetensors\",\"h.0.w\":\"model-00001-of-00002.safetensors\","
      "\"metadata\":\"model-00001-of-00002.safetensors\",\"h.0.b\":\"model-00001-of-00002.safetensors\"},"
      "\"metadata\":{\"weight_map\":{\"x\":\"y\"}}}";
  const std::vector<std::string> want = {"h.1.w", "h.0.w", "metadata", "h.0.b"};
  ModelDir d(index.c_str());
  std::vector<std::string> tensors = {"stale"};
  REQUIRE(check_model_index(d.tmp.path, &tensors).message == "");
  CHECK(tensors == want);
  tensors = {"stale"};
  REQUIRE(read_model_index(d.tmp.path, kModelIndexName, &tensors).message == "");
  CHECK(tensors == want);
  // Without an index: no names.
  ModelDir none(nullptr);
  tensors = {"stale"};
  REQUIRE(check_model_index(none.tmp.path, &tensors).ok());
  CHECK(tensors.empty());
  tensors = {"stale"};
  REQUIRE(read_model_index(none.tmp.path, kModelIndexName, &tensors).ok());
  CHECK(tensors.empty());
  // A df11 directory: the shards are stored under other names.
  fs::remove(d.tmp.path + "/model-00001-of-00002.safetensors");
  REQUIRE(check_model_index(d.tmp.path).code == Error::DirIndexMissingShard);
  tensors.clear();
  REQUIRE(read_model_index(d.tmp.path, kModelIndexName, &tensors).ok());
  CHECK(tensors == want);
  // ...and the index is read where the manifest says it is stored.
  fs::rename(d.tmp.path + "/model.safetensors.index.json", d.tmp.path + "/stored.json");
  tensors.clear();
  REQUIRE(read_model_index(d.tmp.path, "stored.json", &tensors).ok());
  CHECK(tensors == want);
}

TEST_CASE("model index: DirIndexInvalid", "[index]") {
  const std::string bad[] = {
      "",
      "not json",
      "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\"}",  // unclosed
      "[]",
      "\"weight_map\"",
      "{}",                                                            // no weight_map
      "{\"metadata\":{}}",
      "{\"weight_map\":[]}",
      "{\"weight_map\":\"model-00001-of-00002.safetensors\"}",
      "{\"weight_map\":null}",
      "{\"weight_map\":{\"a\":1}}",
      "{\"weight_map\":{\"a\":[\"model-00001-of-00002.safetensors\"]}}",
      "{\"weight_map\":{\"a\":null}}",
      "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\",\"a\":\"model-00002-of-00002.safetensors\"}}",
      "{\"weight_map\":{},\"weight_map\":{}}",
      "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\xff\"}}",  // not UTF-8
  };
  for (const std::string& index : bad) expect(index, Error::DirIndexInvalid);

  {  // Over 100 MB (a sparse file): refused once the cap is passed, never parsed.
    df11test::TempDir big;
    const std::string idx = big.path + "/model.safetensors.index.json";
    write_text(idx, "{");
    fs::resize_file(idx, 100'000'001);
    const Status s = check_model_index(big.path);
    INFO(s.message);
    REQUIRE(s.code == Error::DirIndexInvalid);
    REQUIRE(s.message.find("is larger than 100000000 bytes") != std::string::npos);
  }

  // Unreadable: the index is a directory.
  df11test::TempDir d;
  fs::create_directory(d.path + "/model.safetensors.index.json");
  const Status s = check_model_index(d.path);
  INFO(s.message);
  REQUIRE(s.code == Error::DirIndexInvalid);
}

TEST_CASE("model index: DirIndexBadPath", "[index]") {
  const std::string bad[] = {
      "",
      "/etc/passwd",
      "sub/model-00001-of-00002.safetensors",
      "./model-00001-of-00002.safetensors",
      "..\\\\model.safetensors",  // JSON "\\" is one backslash
      "model\\\\x.safetensors",
      "..",
      "../model-00001-of-00002.safetensors",
      "model..safetensors",
      "model-00001-of-00002.safetensors\\u0000.txt",  // NUL would cut the path
  };
  for (const std::string& shard : bad) expect(index_with(shard), Error::DirIndexBadPath);
  // Bad paths are reported before missing shards.
  expect("{\"weight_map\":{\"a\":\"missing.safetensors\",\"b\":\"/abs\"}}", Error::DirIndexBadPath);
}

TEST_CASE("model index: DirIndexMissingShard", "[index]") {
  expect(index_with("model-00003-of-00003.safetensors"), Error::DirIndexMissingShard);
  expect(index_with("MODEL-00001-of-00002.safetensors"), Error::DirIndexMissingShard);
  expect(index_with("."), Error::DirIndexMissingShard);
  {  // a directory is not a shard
    ModelDir d(index_with("shard_dir").c_str());
    fs::create_directory(d.tmp.path + "/shard_dir");
    const Status s = check_model_index(d.tmp.path);
    INFO(s.message);
    REQUIRE(s.code == Error::DirIndexMissingShard);
  }
  {  // nor a dangling symlink
    ModelDir d(index_with("link.safetensors").c_str());
    fs::create_symlink("gone.safetensors", d.tmp.path + "/link.safetensors");
    const Status s = check_model_index(d.tmp.path);
    INFO(s.message);
    REQUIRE(s.code == Error::DirIndexMissingShard);
  }
  {  // but a symlink to a regular file is the shard (a Hugging Face cache snapshot)
    ModelDir d(index_with("link.safetensors").c_str());
    fs::create_symlink("model-00002-of-00002.safetensors", d.tmp.path + "/link.safetensors");
    const Status s = check_model_index(d.tmp.path);
    INFO(s.message);
    REQUIRE(s.ok());
  }
}

TEST_CASE("model index: compress checks every *.safetensors.index.json, diffusers' included", "[index]") {
  df11test::TempDir t;
  const std::string in = t.path + "/pipe", unet = in + "/unet";
  fs::create_directories(unet);
  write_text(unet + "/diffusion_pytorch_model.safetensors.index.json",
             "{\"weight_map\":{\"a\":\"diffusion_pytorch_model-00001-of-00002.safetensors\","
             "\"b\":\"diffusion_pytorch_model-00002-of-00002.safetensors\"}}");
  df11test::write_safetensors(unet + "/diffusion_pytorch_model-00001-of-00002.safetensors",
                              {{"a", "F32", {2}, std::vector<uint8_t>(8, 0)}});
  Options o;
  Status s = df11::compress(in, t.path + "/out", o, nullptr);
  INFO(s.message);
  CHECK(s.code == Error::DirIndexMissingShard);
  CHECK(s.message.find("unet/diffusion_pytorch_model.safetensors.index.json") != std::string::npos);
  CHECK_FALSE(fs::exists(t.path + "/out"));
  df11test::write_safetensors(unet + "/diffusion_pytorch_model-00002-of-00002.safetensors",
                              {{"b", "F32", {2}, std::vector<uint8_t>(8, 0)}});
  s = df11::compress(in, t.path + "/out", o, nullptr);
  INFO(s.message);
  CHECK(s.ok());
}
