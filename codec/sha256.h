// SHA-256 (FIPS 180-4). Uses the x86 SHA extensions (SHA-NI) when the CPU has
// them, checked once at run time; a portable implementation otherwise.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace df11 {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, uint64_t size);
  // Finalizes and returns the digest; the object is then reset to the empty
  // state, ready to hash a new message.
  std::array<uint8_t, 32> digest();

 private:
  void reset();
  uint32_t state_[8];
  uint8_t buf_[64];
  uint64_t buf_len_;  // bytes held in buf_ (< 64)
  uint64_t total_;    // bytes hashed so far
};

// Lowercase hex digest of one buffer.
std::string sha256_hex(const void* data, uint64_t size);
// Lowercase hex of a digest.
std::string to_hex(const std::array<uint8_t, 32>& d);

namespace detail {
// Block functions: process `blocks` 64-byte blocks into state.
using Sha256Compress = void (*)(uint32_t state[8], const uint8_t* data, size_t blocks);
void sha256_compress_portable(uint32_t state[8], const uint8_t* data, size_t blocks);
// True when this build and CPU can use SHA-NI.
bool sha256_shani_available();
// The implementation Sha256 uses (SHA-NI when available).
Sha256Compress sha256_compress_selected();
// One-shot digests with a forced implementation, for tests and benchmarks.
// The SHA-NI one must only be called when sha256_shani_available().
std::array<uint8_t, 32> sha256_portable_for_test(const void* data, uint64_t size);
std::array<uint8_t, 32> sha256_shani_for_test(const void* data, uint64_t size);
}  // namespace detail

}  // namespace df11
