// A realistic small Hugging Face style model directory for tests and demos:
// a Llama-like decoder in two safetensors shards with an index, the usual
// JSON side files, and a vision/ subfolder with its own model.safetensors.
#pragma once
#include <cstdint>
#include <string>

namespace df11test {

struct SampleOptions {
  uint64_t hidden = 512;
  uint64_t layers = 4;
  uint64_t intermediate = 1376;
  uint64_t vocab = 4096;
  uint64_t seed = 1;
  uint64_t heads = 0;     // 0: hidden / 64 when that divides, else 1
  uint64_t kv_heads = 0;  // 0: heads / 2 when heads is even, else heads
  unsigned threads = 0;   // for generating weights; 0: all cores (output is the same)
};

// Writes (creating dir if needed, overwriting files):
//   model-00001-of-00002.safetensors  embed_tokens + the first half of the layers
//   model-00002-of-00002.safetensors  the other layers + model.norm + lm_head
//   model.safetensors.index.json      metadata.total_size + weight_map
//   config.json, generation_config.json, tokenizer.json, tokenizer_config.json, README.md
//   vision/model.safetensors, vision/config.json
// Matrices are BF16 from df11::synthetic_weights; RMSNorm weights are F32
// 1 + 0.05 * N(0,1). Tensors in a file are ordered as the safetensors library
// saves them (wider dtypes first, then by name). Byte-identical for a given
// seed and sizes. Throws std::invalid_argument on inconsistent sizes.
void make_sample_model(const std::string& dir, const SampleOptions& o = SampleOptions());

// The smallest model the directory tests use (hidden 128, 2 layers,
// intermediate 256, vocab 512: well under a megabyte).
SampleOptions tiny_sample();

}  // namespace df11test
