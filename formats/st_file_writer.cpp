#include "st_file_writer.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "file_io.h"

namespace df11 {

void sort_like_safetensors(std::vector<StOutTensor>& tensors) {
  std::stable_sort(tensors.begin(), tensors.end(), [](const StOutTensor& a, const StOutTensor& b) {
    const uint64_t sa = dtype_size(a.dtype), sb = dtype_size(b.dtype);
    if (sa != sb) return sa > sb;
    return a.name < b.name;
  });
}

Status write_safetensors_file(const std::string& path, const std::vector<StOutTensor>& tensors,
                              const std::string& metadata_json, bool overwrite, uint64_t* written) {
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata_json.empty()) h["__metadata__"] = nlohmann::ordered_json::parse(metadata_json);
  uint64_t offset = 0;
  for (const StOutTensor& t : tensors) {
    unsigned __int128 bits = dtype_bits(t.dtype);
    for (uint64_t d : t.shape) bits *= d;
    if (bits != static_cast<unsigned __int128>(t.size) * 8)
      return make_status(Error::Usage, path, "tensor " + quote_name(t.name) + ": size does not match dtype and shape");
    h[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.size}}};
    offset += t.size;
  }
  std::string json = h.dump();
  json.append((8 - json.size() % 8) % 8, ' ');
  uint8_t len[8];
  for (int k = 0; k < 8; ++k) len[k] = static_cast<uint8_t>(static_cast<uint64_t>(json.size()) >> (8 * k));
  AtomicOutputFile f;
  Status s = f.open(path, overwrite);
  if (s.ok()) s = f.write(len, 8);
  if (s.ok()) s = f.write(json.data(), json.size());
  for (const StOutTensor& t : tensors)
    if (s.ok() && t.size) s = f.write(t.data, t.size);
  if (s.ok()) s = f.commit();
  if (s.ok() && written) *written = 8 + json.size() + offset;
  return s;
}

}  // namespace df11
