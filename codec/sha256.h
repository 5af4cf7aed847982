// SHA-256 from OpenSSL's libcrypto (EVP): audited, and it uses SHA-NI or the
// ARM SHA extensions where the CPU has them. A small RAII wrapper.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace df11 {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, uint64_t size);
  // Finalizes and returns the digest; the object is then reset to the empty
  // state, ready to hash a new message.
  std::array<uint8_t, 32> digest();

 private:
  void reset();
  void* ctx_;  // EVP_MD_CTX (kept out of this header)
};

// Lowercase hex digest of one buffer.
std::string sha256_hex(const void* data, uint64_t size);
// Lowercase hex of a digest.
std::string to_hex(const std::array<uint8_t, 32>& d);

}  // namespace df11
