// The container's original_xxh64 (docs/FORMAT.md §2): XXH64 over the original
// file's 8-byte header length and JSON, then every tensor's XXH64 (u64 LE) in
// data order. It ties the per-tensor checksums to the file as a whole (count,
// order, header bytes) without a second pass over the weights.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace df11 {

class FileDigest {
 public:
  FileDigest(const uint8_t* header, uint64_t header_size);  // the first 8 + N bytes
  ~FileDigest();
  FileDigest(const FileDigest&) = delete;
  FileDigest& operator=(const FileDigest&) = delete;
  void add_tensor(uint64_t tensor_xxh64);
  uint64_t digest() const;

 private:
  void* state_;                   // header bytes hashed so far
  std::vector<uint8_t> tensors_;  // tensor hashes, little-endian, hashed by digest()
};

// The digest as a manifest writes it: 16 lowercase hex digits.
std::string digest_hex(uint64_t digest);

}  // namespace df11
