#include "sample_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>

#include "safetensors_writer.h"
#include "synthetic.h"
#include "test_util.h"

namespace df11test {

namespace {

using ordered_json = nlohmann::ordered_json;

uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Seed of one tensor: depends on the model seed and the tensor name only.
uint64_t tensor_seed(uint64_t seed, const std::string& name) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
  for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ull;
  return mix64(h ^ mix64(seed));
}

struct Rng {
  uint64_t s;
  uint64_t next() { return mix64(s++); }
  double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * 0x1.0p-53; }
  double normal() { return std::sqrt(-2.0 * std::log(uniform())) * std::cos(6.283185307179586 * uniform()); }
};

struct Gen {
  uint64_t seed;
  unsigned threads;

  StEntry bf16(const std::string& name, std::vector<uint64_t> shape, double stddev) const {
    // Row = first dimension; a vector is one row.
    uint64_t rows = 1, cols = 1;
    if (shape.size() == 1) {
      cols = shape[0];
    } else if (shape.size() >= 2) {
      rows = shape[0];
      for (size_t i = 1; i < shape.size(); ++i) cols *= shape[i];
    }
    std::vector<uint16_t> w(rows * cols);
    df11::synthetic_weights(w.data(), rows, cols, tensor_seed(seed, name), stddev, threads);
    StEntry e{name, "BF16", std::move(shape), std::vector<uint8_t>(w.size() * 2)};
    for (size_t i = 0; i < w.size(); ++i) {
      e.bytes[2 * i] = static_cast<uint8_t>(w[i]);
      e.bytes[2 * i + 1] = static_cast<uint8_t>(w[i] >> 8);
    }
    return e;
  }

  // F32 vector: mean + stddev * N(0,1).
  StEntry f32(const std::string& name, uint64_t n, double mean, double stddev) const {
    Rng rng{tensor_seed(seed, name)};
    StEntry e{name, "F32", {n}, std::vector<uint8_t>(n * 4)};
    for (uint64_t i = 0; i < n; ++i) {
      const float f = static_cast<float>(mean + stddev * rng.normal());
      uint32_t u;
      std::memcpy(&u, &f, 4);
      for (int b = 0; b < 4; ++b) e.bytes[4 * i + b] = static_cast<uint8_t>(u >> (8 * b));
    }
    return e;
  }
};

size_t dtype_size(const std::string& dtype) { return dtype == "F32" ? 4 : 2; }

// The order safetensors' save_file uses: larger alignment first, then name.
void sort_like_safetensors(std::vector<StEntry>& v) {
  std::sort(v.begin(), v.end(), [](const StEntry& a, const StEntry& b) {
    const size_t sa = dtype_size(a.dtype), sb = dtype_size(b.dtype);
    if (sa != sb) return sa > sb;
    return a.name < b.name;
  });
}

void write_text(const std::string& path, const std::string& text) {
  write_file(path, std::vector<uint8_t>(text.begin(), text.end()));
}

void write_json(const std::string& path, const ordered_json& j) { write_text(path, j.dump(2) + "\n"); }

void add_layer(const Gen& g, std::vector<StEntry>& out, uint64_t i, uint64_t hidden, uint64_t kv_dim,
               uint64_t inter, uint64_t layers) {
  const std::string p = "model.layers." + std::to_string(i) + ".";
  const double out_std = 0.02 / std::sqrt(2.0 * static_cast<double>(layers));
  out.push_back(g.bf16(p + "self_attn.q_proj.weight", {hidden, hidden}, 0.03));
  out.push_back(g.bf16(p + "self_attn.k_proj.weight", {kv_dim, hidden}, 0.03));
  out.push_back(g.bf16(p + "self_attn.v_proj.weight", {kv_dim, hidden}, 0.015));
  out.push_back(g.bf16(p + "self_attn.o_proj.weight", {hidden, hidden}, out_std));
  out.push_back(g.bf16(p + "mlp.gate_proj.weight", {inter, hidden}, 0.02));
  out.push_back(g.bf16(p + "mlp.up_proj.weight", {inter, hidden}, 0.02));
  out.push_back(g.bf16(p + "mlp.down_proj.weight", {hidden, inter}, out_std));
  out.push_back(g.f32(p + "input_layernorm.weight", hidden, 1.0, 0.05));
  out.push_back(g.f32(p + "post_attention_layernorm.weight", hidden, 1.0, 0.05));
}

// Token strings: specials, the 256 byte tokens, then unique pieces made of
// two-letter syllables, every other one starting with the SentencePiece space.
std::string token_piece(uint64_t i) {
  static const char kCons[] = "bdfgklmnprst";
  static const char kVow[] = "aeiou";
  std::string s = (i & 1) ? "\xE2\x96\x81" : "";
  uint64_t v = i >> 1;
  do {
    const uint64_t syl = v % 60;
    s += kCons[syl / 5];
    s += kVow[syl % 5];
    v /= 60;
  } while (v > 0);
  return s;
}

ordered_json make_tokenizer(uint64_t vocab) {
  ordered_json vocab_map = ordered_json::object();
  const char* specials[] = {"<unk>", "<s>", "</s>"};
  uint64_t id = 0;
  for (const char* s : specials)
    if (id < vocab) vocab_map[s] = id++;
  for (int b = 0; b < 256 && id < vocab; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    vocab_map[buf] = id++;
  }
  for (uint64_t k = 0; id < vocab; ++k) vocab_map[token_piece(k)] = id++;

  ordered_json added = ordered_json::array();
  for (uint64_t i = 0; i < 3 && i < vocab; ++i)
    added.push_back({{"id", i}, {"content", specials[i]}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
  ordered_json t;
  t["version"] = "1.0";
  t["truncation"] = nullptr;
  t["padding"] = nullptr;
  t["added_tokens"] = added;
  t["normalizer"] = {{"type", "Sequence"},
                     {"normalizers",
                      {{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
                       {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}}}};
  t["pre_tokenizer"] = nullptr;
  t["post_processor"] = nullptr;
  t["decoder"] = {{"type", "ByteFallback"}};
  t["model"] = {{"type", "BPE"},          {"dropout", nullptr},  {"unk_token", "<unk>"},
                {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
                {"fuse_unk", true},       {"byte_fallback", true}, {"vocab", vocab_map},
                {"merges", ordered_json::array()}};
  return t;
}

void make_vision(const Gen& g, const std::string& dir) {
  const uint64_t vh = 256, patch = 14, image = 224, positions = (image / patch) * (image / patch) + 1;
  const std::string p = "vision_model.";
  std::vector<StEntry> t;
  t.push_back(g.bf16(p + "embeddings.patch_embedding.weight", {vh, 3, patch, patch}, 0.02));
  t.push_back(g.bf16(p + "embeddings.class_embedding", {vh}, 0.02));
  t.push_back(g.bf16(p + "embeddings.position_embedding.weight", {positions, vh}, 0.02));
  t.push_back(g.bf16(p + "encoder.layers.0.self_attn.qkv_proj.weight", {3 * vh, vh}, 0.03));
  t.push_back(g.f32(p + "encoder.layers.0.self_attn.qkv_proj.bias", 3 * vh, 0.0, 0.01));
  t.push_back(g.f32(p + "encoder.layers.0.layer_norm1.weight", vh, 1.0, 0.05));
  t.push_back(g.f32(p + "encoder.layers.0.layer_norm1.bias", vh, 0.0, 0.01));
  t.push_back(g.f32(p + "post_layernorm.weight", vh, 1.0, 0.05));
  sort_like_safetensors(t);
  std::filesystem::create_directories(dir);
  write_safetensors(dir + "/model.safetensors", t, R"({"format":"pt"})");

  ordered_json c;
  c["architectures"] = {"CLIPVisionModel"};
  c["model_type"] = "clip_vision_model";
  c["hidden_size"] = vh;
  c["intermediate_size"] = 4 * vh;
  c["num_hidden_layers"] = 1;
  c["num_attention_heads"] = 4;
  c["num_channels"] = 3;
  c["image_size"] = image;
  c["patch_size"] = patch;
  c["layer_norm_eps"] = 1e-5;
  c["torch_dtype"] = "bfloat16";
  write_json(dir + "/config.json", c);
}

}  // namespace

void make_sample_model(const std::string& dir, const SampleOptions& o) {
  if (o.hidden == 0 || o.intermediate == 0 || o.vocab == 0)
    throw std::invalid_argument("make_sample_model: hidden, intermediate and vocab must be positive");
  const uint64_t heads = o.heads ? o.heads : (o.hidden % 64 == 0 ? o.hidden / 64 : 1);
  const uint64_t kv_heads = o.kv_heads ? o.kv_heads : (heads % 2 == 0 ? heads / 2 : heads);
  if (o.hidden % heads != 0 || heads % kv_heads != 0)
    throw std::invalid_argument("make_sample_model: hidden must divide into heads, heads into kv_heads");
  const uint64_t head_dim = o.hidden / heads;
  const uint64_t kv_dim = kv_heads * head_dim;
  const unsigned threads = o.threads ? o.threads : std::max(1u, std::thread::hardware_concurrency());
  const Gen g{o.seed, threads};

  std::filesystem::create_directories(dir);
  const std::string shard_names[2] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
  std::vector<StEntry> shards[2];
  shards[0].push_back(g.bf16("model.embed_tokens.weight", {o.vocab, o.hidden}, 0.02));
  for (uint64_t i = 0; i < o.layers; ++i)
    add_layer(g, shards[i < o.layers / 2 ? 0 : 1], i, o.hidden, kv_dim, o.intermediate, o.layers);
  shards[1].push_back(g.f32("model.norm.weight", o.hidden, 1.0, 0.05));
  shards[1].push_back(g.bf16("lm_head.weight", {o.vocab, o.hidden}, 0.025));

  std::map<std::string, std::string> weight_map;  // sorted, as transformers writes it
  uint64_t total_size = 0;
  for (int s = 0; s < 2; ++s) {
    sort_like_safetensors(shards[s]);
    for (const StEntry& e : shards[s]) {
      weight_map[e.name] = shard_names[s];
      total_size += e.bytes.size();
    }
    write_safetensors(dir + "/" + shard_names[s], shards[s], R"({"format":"pt"})");
    shards[s].clear();
    shards[s].shrink_to_fit();
  }
  ordered_json index;
  index["metadata"] = {{"total_size", total_size}};
  index["weight_map"] = ordered_json::object();
  for (const auto& kv : weight_map) index["weight_map"][kv.first] = kv.second;
  write_json(dir + "/model.safetensors.index.json", index);

  ordered_json c;
  c["architectures"] = {"LlamaForCausalLM"};
  c["attention_bias"] = false;
  c["attention_dropout"] = 0.0;
  c["bos_token_id"] = 1;
  c["eos_token_id"] = 2;
  c["head_dim"] = head_dim;
  c["hidden_act"] = "silu";
  c["hidden_size"] = o.hidden;
  c["initializer_range"] = 0.02;
  c["intermediate_size"] = o.intermediate;
  c["max_position_embeddings"] = 2048;
  c["mlp_bias"] = false;
  c["model_type"] = "llama";
  c["num_attention_heads"] = heads;
  c["num_hidden_layers"] = o.layers;
  c["num_key_value_heads"] = kv_heads;
  c["pretraining_tp"] = 1;
  c["rms_norm_eps"] = 1e-05;
  c["rope_scaling"] = nullptr;
  c["rope_theta"] = 10000.0;
  c["tie_word_embeddings"] = false;
  c["torch_dtype"] = "bfloat16";
  c["transformers_version"] = "4.44.2";
  c["use_cache"] = true;
  c["vocab_size"] = o.vocab;
  write_json(dir + "/config.json", c);

  ordered_json gc;
  gc["_from_model_config"] = true;
  gc["bos_token_id"] = 1;
  gc["eos_token_id"] = 2;
  gc["do_sample"] = true;
  gc["temperature"] = 0.6;
  gc["top_p"] = 0.9;
  gc["transformers_version"] = "4.44.2";
  write_json(dir + "/generation_config.json", gc);

  write_json(dir + "/tokenizer.json", make_tokenizer(o.vocab));

  ordered_json tc;
  tc["add_bos_token"] = true;
  tc["add_eos_token"] = false;
  tc["bos_token"] = "<s>";
  tc["eos_token"] = "</s>";
  tc["unk_token"] = "<unk>";
  tc["pad_token"] = nullptr;
  tc["clean_up_tokenization_spaces"] = false;
  tc["legacy"] = false;
  tc["model_max_length"] = 2048;
  tc["tokenizer_class"] = "LlamaTokenizer";
  write_json(dir + "/tokenizer_config.json", tc);

  write_text(dir + "/README.md",
             "---\nlicense: apache-2.0\nlibrary_name: transformers\npipeline_tag: text-generation\n"
             "tags:\n- df11-sample\n---\n\n# df11 sample model\n\n"
             "A synthetic Llama-style checkpoint generated by df11's test suite (seed " +
                 std::to_string(o.seed) + ", hidden " + std::to_string(o.hidden) + ", " +
                 std::to_string(o.layers) + " layers, intermediate " + std::to_string(o.intermediate) +
                 ", vocab " + std::to_string(o.vocab) +
                 "). The weights are random with the statistics of trained BF16 matrices; "
                 "the model produces no meaningful text.\n\n"
                 "`vision/` holds a small CLIP-style vision tower in its own model.safetensors.\n");

  make_vision(g, dir + "/vision");
}

SampleOptions tiny_sample() {
  SampleOptions so;
  so.hidden = 128;
  so.layers = 2;
  so.intermediate = 256;
  so.vocab = 512;
  return so;
}

}  // namespace df11test
