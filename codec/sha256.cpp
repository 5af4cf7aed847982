#include "sha256.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace df11 {

namespace {

EVP_MD_CTX* ctx_of(void* p) { return static_cast<EVP_MD_CTX*>(p); }

// EVP failures mean a broken libcrypto (allocation failure, bad build): a
// wrong digest would be worse than stopping.
void check(int ok, const char* what) {
  if (ok != 1) {
    std::fprintf(stderr, "df11: libcrypto %s failed\n", what);
    std::abort();
  }
}

}  // namespace

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  check(ctx_ != nullptr, "EVP_MD_CTX_new");
  reset();
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_of(ctx_)); }

void Sha256::reset() { check(EVP_DigestInit_ex(ctx_of(ctx_), EVP_sha256(), nullptr), "EVP_DigestInit_ex"); }

void Sha256::update(const void* data, uint64_t size) {
  if (size == 0) return;  // data may be null
  const uint8_t* p = static_cast<const uint8_t*>(data);
  // size_t pieces: keeps 64-bit sizes exact on any platform.
  constexpr uint64_t kMax = uint64_t{1} << 30;
  while (size > 0) {
    const uint64_t n = std::min(size, kMax);
    check(EVP_DigestUpdate(ctx_of(ctx_), p, static_cast<size_t>(n)), "EVP_DigestUpdate");
    p += n;
    size -= n;
  }
}

std::array<uint8_t, 32> Sha256::digest() {
  std::array<uint8_t, 32> out{};
  unsigned int len = 0;
  check(EVP_DigestFinal_ex(ctx_of(ctx_), out.data(), &len), "EVP_DigestFinal_ex");
  check(len == out.size(), "SHA-256 digest length");
  reset();
  return out;
}

std::string sha256_hex(const void* data, uint64_t size) {
  Sha256 h;
  h.update(data, size);
  return to_hex(h.digest());
}

std::string to_hex(const std::array<uint8_t, 32>& d) {
  static const char* digits = "0123456789abcdef";
  std::string s(64, '0');
  for (size_t i = 0; i < d.size(); ++i) {
    s[2 * i] = digits[d[i] >> 4];
    s[2 * i + 1] = digits[d[i] & 15];
  }
  return s;
}

}  // namespace df11
