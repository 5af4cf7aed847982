// The test-support safetensors writer and the sample model generator.
#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "huffman.h"
#include "safetensors_writer.h"
#include "sample_model.h"
#include "test_util.h"

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct ParsedTensor {
  std::string dtype;
  std::vector<uint64_t> shape;
  uint64_t begin = 0, end = 0;
};

struct ParsedSt {
  uint64_t header_len = 0;
  json metadata;
  std::map<std::string, ParsedTensor> tensors;
  std::vector<std::string> order;  // in header order
  const uint8_t* data = nullptr;   // into the file bytes
  uint64_t data_size = 0;
};

uint64_t dtype_bytes(const std::string& d) {
  if (d == "BF16" || d == "F16") return 2;
  if (d == "F32") return 4;
  FAIL("unexpected dtype " << d);
  return 0;
}

// Parses and checks the structure: header JSON, dtype/shape vs. offsets,
// offsets contiguous from 0 and covering the whole data section.
ParsedSt parse_and_check(const std::vector<uint8_t>& f) {
  ParsedSt p;
  REQUIRE(f.size() >= 8);
  for (int i = 0; i < 8; ++i) p.header_len |= uint64_t(f[i]) << (8 * i);
  REQUIRE(p.header_len % 8 == 0);
  REQUIRE(8 + p.header_len <= f.size());
  const std::string header(reinterpret_cast<const char*>(f.data()) + 8, p.header_len);
  REQUIRE(header[0] == '{');
  json h;
  REQUIRE_NOTHROW(h = json::parse(header));
  REQUIRE(h.is_object());
  p.data = f.data() + 8 + p.header_len;
  p.data_size = f.size() - 8 - p.header_len;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  // nlohmann::json sorts keys; recover the header order from the text.
  std::vector<std::pair<size_t, std::string>> pos;
  for (auto it = h.begin(); it != h.end(); ++it) {
    if (it.key() == "__metadata__") {
      p.metadata = it.value();
      continue;
    }
    const json& t = it.value();
    ParsedTensor pt;
    pt.dtype = t.at("dtype").get<std::string>();
    pt.shape = t.at("shape").get<std::vector<uint64_t>>();
    const auto off = t.at("data_offsets").get<std::vector<uint64_t>>();
    REQUIRE(off.size() == 2);
    pt.begin = off[0];
    pt.end = off[1];
    uint64_t n = dtype_bytes(pt.dtype);
    for (uint64_t d : pt.shape) n *= d;
    INFO(it.key());
    REQUIRE(pt.end >= pt.begin);
    REQUIRE(pt.end - pt.begin == n);
    ranges.push_back({pt.begin, pt.end});
    pos.push_back({header.find(json(it.key()).dump() + ":"), it.key()});
    p.tensors[it.key()] = pt;
  }
  std::sort(pos.begin(), pos.end());
  for (const auto& x : pos) p.order.push_back(x.second);
  std::sort(ranges.begin(), ranges.end());
  uint64_t at = 0;
  for (const auto& r : ranges) {
    REQUIRE(r.first == at);
    at = r.second;
  }
  REQUIRE(at == p.data_size);
  return p;
}

double exponent_entropy(const ParsedSt& p, const std::string& name) {
  const ParsedTensor& t = p.tensors.at(name);
  const uint64_t n = (t.end - t.begin) / 2;
  std::vector<uint16_t> w(n);
  std::memcpy(w.data(), p.data + t.begin, n * 2);
  return df11::entropy_bits(df11::exponent_histogram(w.data(), n));
}

std::vector<uint8_t> f32_bytes(std::initializer_list<float> v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.begin(), b.size());
  return b;
}

}  // namespace

TEST_CASE("safetensors writer: header layout, order, padding and offsets", "[sample]") {
  using df11test::StEntry;
  const std::vector<StEntry> t = {
      {"zeta", "F32", {2}, f32_bytes({1.0f, 2.0f})},
      {"alpha \"quoted\"", "BF16", {1, 3}, {1, 2, 3, 4, 5, 6}},
      {"empty", "BF16", {0, 4}, {}},
  };
  const auto f = df11test::make_safetensors(t, R"({"format":"pt"})");
  const ParsedSt p = parse_and_check(f);
  CHECK(p.metadata == json{{"format", "pt"}});
  CHECK(p.order == std::vector<std::string>{"zeta", "alpha \"quoted\"", "empty"});
  CHECK(p.tensors.at("zeta").begin == 0);
  CHECK(p.tensors.at("alpha \"quoted\"").begin == 8);
  CHECK(p.tensors.at("empty").begin == 14);
  CHECK(p.tensors.at("empty").end == 14);
  CHECK(p.data[8] == 1);
  CHECK(p.data[13] == 6);
  CHECK(f.size() == 8 + p.header_len + 14);
  // Padding is spaces after the closing brace.
  const std::string header(reinterpret_cast<const char*>(f.data()) + 8, p.header_len);
  const size_t close = header.find_last_of('}');
  CHECK(header.find_first_not_of(' ', close + 1) == std::string::npos);

  // No metadata, padding to 64, and no padding at all.
  const auto f64 = df11test::make_safetensors(t, "", 64);
  uint64_t n64 = 0;
  for (int i = 0; i < 8; ++i) n64 |= uint64_t(f64[i]) << (8 * i);
  CHECK(n64 % 64 == 0);
  CHECK(std::string(reinterpret_cast<const char*>(f64.data()) + 8, n64).find("__metadata__") ==
        std::string::npos);
  const auto f1 = df11test::make_safetensors(t, "", 1);
  uint64_t n1 = 0;
  for (int i = 0; i < 8; ++i) n1 |= uint64_t(f1[i]) << (8 * i);
  CHECK(f1[8 + n1 - 1] == '}');
  CHECK(json::parse(std::string(reinterpret_cast<const char*>(f1.data()) + 8, n1)).size() == 3);

  df11test::TempDir dir;
  df11test::write_safetensors(dir.path + "/a.safetensors", t, R"({"format":"pt"})");
  CHECK(df11test::read_file(dir.path + "/a.safetensors") == f);
}

TEST_CASE("sample model: files, shard headers, index and weight statistics", "[sample]") {
  df11test::TempDir dir;
  const df11test::SampleOptions o;  // defaults: hidden 512, 4 layers
  df11test::make_sample_model(dir.path, o);

  const std::string s1 = "model-00001-of-00002.safetensors", s2 = "model-00002-of-00002.safetensors";
  for (const char* f : {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                        "model.safetensors.index.json", "config.json", "generation_config.json",
                        "tokenizer.json", "tokenizer_config.json", "README.md", "vision/model.safetensors",
                        "vision/config.json"}) {
    INFO(f);
    CHECK(fs::is_regular_file(dir.path + "/" + f));
    CHECK(fs::file_size(dir.path + "/" + f) > 0);
  }
  for (const char* f : {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                        "vision/config.json"}) {
    INFO(f);
    const auto b = df11test::read_file(dir.path + "/" + f);
    CHECK_NOTHROW(json::parse(b.begin(), b.end()));
  }

  const auto f1 = df11test::read_file(dir.path + "/" + s1);
  const auto f2 = df11test::read_file(dir.path + "/" + s2);
  const ParsedSt p1 = parse_and_check(f1);
  const ParsedSt p2 = parse_and_check(f2);
  CHECK(p1.metadata == json{{"format", "pt"}});
  CHECK(p2.metadata == json{{"format", "pt"}});

  // Index: weight_map covers exactly the tensors of the shards, with the right file.
  const auto ib = df11test::read_file(dir.path + "/model.safetensors.index.json");
  const json index = json::parse(ib.begin(), ib.end());
  const json& wm = index.at("weight_map");
  uint64_t total = 0;
  std::set<std::string> in_shards;
  for (const auto* p : {&p1, &p2}) {
    const std::string& file = p == &p1 ? s1 : s2;
    for (const auto& kv : p->tensors) {
      INFO(kv.first);
      CHECK(in_shards.insert(kv.first).second);
      REQUIRE(wm.contains(kv.first));
      CHECK(wm.at(kv.first).get<std::string>() == file);
      total += kv.second.end - kv.second.begin;
    }
  }
  CHECK(wm.size() == in_shards.size());
  CHECK(index.at("metadata").at("total_size").get<uint64_t>() == total);

  // Llama layout and config agree.
  const auto cb = df11test::read_file(dir.path + "/config.json");
  const json config = json::parse(cb.begin(), cb.end());
  CHECK(config.at("hidden_size").get<uint64_t>() == o.hidden);
  CHECK(config.at("num_hidden_layers").get<uint64_t>() == o.layers);
  CHECK(config.at("vocab_size").get<uint64_t>() == o.vocab);
  CHECK(in_shards.size() == 3 + 9 * o.layers);
  CHECK(p1.tensors.at("model.embed_tokens.weight").shape == std::vector<uint64_t>{o.vocab, o.hidden});
  CHECK(p2.tensors.at("lm_head.weight").shape == std::vector<uint64_t>{o.vocab, o.hidden});
  CHECK(p1.tensors.at("model.layers.0.mlp.down_proj.weight").shape ==
        std::vector<uint64_t>{o.hidden, o.intermediate});
  CHECK(p2.tensors.at("model.layers.3.mlp.gate_proj.weight").shape ==
        std::vector<uint64_t>{o.intermediate, o.hidden});
  CHECK(p2.tensors.at("model.norm.weight").dtype == "F32");
  CHECK(p1.tensors.at("model.layers.1.input_layernorm.weight").dtype == "F32");

  // Exponent entropy of every BF16 matrix, as in trained checkpoints.
  for (const auto* p : {&p1, &p2}) {
    for (const auto& kv : p->tensors) {
      if (kv.second.dtype != "BF16") continue;
      const double h = exponent_entropy(*p, kv.first);
      INFO(kv.first << " exponent entropy " << h);
      CHECK(h > 2.3);
      CHECK(h < 3.0);
    }
  }

  // RMSNorm weights near 1.
  {
    const ParsedTensor& t = p2.tensors.at("model.norm.weight");
    std::vector<float> v((t.end - t.begin) / 4);
    std::memcpy(v.data(), p2.data + t.begin, v.size() * 4);
    double mean = 0;
    for (float x : v) {
      CHECK(x > 0.7f);
      CHECK(x < 1.3f);
      mean += x;
    }
    mean /= static_cast<double>(v.size());
    CHECK(mean == Approx(1.0).margin(0.02));
  }

  // Vision tower: a few BF16 and F32 tensors, including a 4-D one.
  const auto vb = df11test::read_file(dir.path + "/vision/model.safetensors");
  const ParsedSt pv = parse_and_check(vb);
  int bf16 = 0, f32 = 0;
  for (const auto& kv : pv.tensors) (kv.second.dtype == "BF16" ? bf16 : f32)++;
  CHECK(bf16 >= 2);
  CHECK(f32 >= 2);
  CHECK(pv.tensors.at("vision_model.embeddings.patch_embedding.weight").shape.size() == 4);
}

TEST_CASE("sample model: deterministic for a seed", "[sample]") {
  df11test::SampleOptions o;
  o.hidden = 128;
  o.layers = 2;
  o.intermediate = 344;
  o.vocab = 512;
  df11test::TempDir a, b, c;
  df11test::make_sample_model(a.path, o);
  o.threads = 1;  // thread count must not matter
  df11test::make_sample_model(b.path, o);
  o.seed = 2;
  df11test::make_sample_model(c.path, o);
  for (const char* f : {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                        "model.safetensors.index.json", "config.json", "tokenizer.json",
                        "vision/model.safetensors"}) {
    INFO(f);
    CHECK(df11test::read_file(a.path + "/" + f) == df11test::read_file(b.path + "/" + f));
  }
  CHECK(df11test::read_file(a.path + "/model-00001-of-00002.safetensors") !=
        df11test::read_file(c.path + "/model-00001-of-00002.safetensors"));
  CHECK(df11test::read_file(a.path + "/vision/model.safetensors") !=
        df11test::read_file(c.path + "/vision/model.safetensors"));
  CHECK(df11test::read_file(a.path + "/model.safetensors.index.json") ==
        df11test::read_file(c.path + "/model.safetensors.index.json"));
}
