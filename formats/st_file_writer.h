// Writes a .safetensors file from tensors held in memory (export's output).
// Header as the safetensors library writes it: "__metadata__" first when
// given, tensors in the given order with contiguous data_offsets, the JSON
// padded with spaces to a multiple of 8 bytes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "df11.h"
#include "safetensors_header.h"

namespace df11 {

struct StOutTensor {
  std::string name;
  Dtype dtype = Dtype::U8;
  std::vector<uint64_t> shape;
  const uint8_t* data = nullptr;  // product(shape) * dtype_bits(dtype) / 8 bytes, valid until written
  uint64_t size = 0;
};

// Orders tensors as safetensors' save_file does (wider dtypes first, then by
// name), so that every tensor's data is aligned to its element size.
void sort_like_safetensors(std::vector<StOutTensor>& tensors);

// Writes `path` atomically (temp + rename); fails with OutputExists when it
// exists and !overwrite. metadata_json: a JSON object text, or "" for none.
// Returns the file's size in *written when given.
Status write_safetensors_file(const std::string& path, const std::vector<StOutTensor>& tensors,
                              const std::string& metadata_json, bool overwrite, uint64_t* written = nullptr);

}  // namespace df11
