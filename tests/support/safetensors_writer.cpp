#include "safetensors_writer.h"

#include <cstring>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace df11test {

std::vector<uint8_t> make_safetensors(const std::vector<StEntry>& tensors,
                                      const std::string& metadata_json, size_t header_pad_to) {
  // Built by hand so that the key order is exactly the given one.
  std::string header = "{";
  bool first = true;
  if (!metadata_json.empty()) {
    header += "\"__metadata__\":" + metadata_json;
    first = false;
  }
  uint64_t offset = 0;
  for (const StEntry& t : tensors) {
    if (!first) header += ",";
    first = false;
    nlohmann::json shape = nlohmann::json::array();
    for (uint64_t d : t.shape) shape.push_back(d);
    const uint64_t end = offset + t.bytes.size();
    header += nlohmann::json(t.name).dump() + ":{\"dtype\":" + nlohmann::json(t.dtype).dump() +
              ",\"shape\":" + shape.dump() + ",\"data_offsets\":[" + std::to_string(offset) + "," +
              std::to_string(end) + "]}";
    offset = end;
  }
  header += "}";
  if (header_pad_to > 1) {
    while (header.size() % header_pad_to != 0) header += ' ';
  }

  std::vector<uint8_t> out(8 + header.size() + offset);
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(n >> (8 * i));
  std::memcpy(out.data() + 8, header.data(), header.size());
  uint8_t* p = out.data() + 8 + header.size();
  for (const StEntry& t : tensors) {
    if (!t.bytes.empty()) std::memcpy(p, t.bytes.data(), t.bytes.size());
    p += t.bytes.size();
  }
  return out;
}

void write_safetensors(const std::string& path, const std::vector<StEntry>& tensors,
                       const std::string& metadata_json, size_t header_pad_to) {
  write_file(path, make_safetensors(tensors, metadata_json, header_pad_to));
}

}  // namespace df11test
