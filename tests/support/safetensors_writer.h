// A tiny safetensors writer for tests and the sample-model generator.
// It writes exactly what it is given: no check that bytes match dtype and
// shape, so tests can also build malformed files on purpose.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace df11test {

struct StEntry {
  std::string name;
  std::string dtype;  // "BF16", "F32", ...
  std::vector<uint64_t> shape;
  std::vector<uint8_t> bytes;
};

// 8-byte little-endian header length, then the JSON header ("__metadata__"
// first when metadata_json is not empty, then the tensors in the given order
// with data_offsets contiguous in that order), padded with spaces to a
// multiple of header_pad_to (0 or 1: no padding), then the tensor data.
// metadata_json is a JSON object text, e.g. {"format":"pt"}.
std::vector<uint8_t> make_safetensors(const std::vector<StEntry>& tensors,
                                      const std::string& metadata_json = "",
                                      size_t header_pad_to = 8);

void write_safetensors(const std::string& path, const std::vector<StEntry>& tensors,
                       const std::string& metadata_json = "", size_t header_pad_to = 8);

}  // namespace df11test
