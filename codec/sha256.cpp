// SHA-256 (FIPS 180-4): a portable block function and one built on the x86
// SHA extensions (sha256rnds2 / sha256msg1 / sha256msg2), picked at run time.
#include "sha256.h"

#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#define DF11_SHA256_HAVE_X86 1
#else
#define DF11_SHA256_HAVE_X86 0
#endif

namespace df11 {

namespace {

alignas(64) constexpr uint32_t kK[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

constexpr uint32_t kInit[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                               0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

inline uint32_t load_be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

inline void store_be32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 24);
  p[1] = uint8_t(v >> 16);
  p[2] = uint8_t(v >> 8);
  p[3] = uint8_t(v);
}

#if DF11_SHA256_HAVE_X86
// State layout used by the SHA extensions: ABEF and CDGH in two registers,
// with A / C in the highest lane.
__attribute__((target("sha,sse4.1"))) void compress_shani(uint32_t state[8], const uint8_t* data,
                                                           size_t blocks) {
  const __m128i kBswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
  __m128i dcba = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&state[0]));
  __m128i hgfe = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&state[4]));
  __m128i cdab = _mm_shuffle_epi32(dcba, 0xB1);
  __m128i efgh = _mm_shuffle_epi32(hgfe, 0x1B);
  __m128i abef = _mm_alignr_epi8(cdab, efgh, 8);
  __m128i cdgh = _mm_blend_epi16(efgh, cdab, 0xF0);

  for (; blocks > 0; --blocks, data += 64) {
    const __m128i abef_save = abef;
    const __m128i cdgh_save = cdgh;
    __m128i w[4];
    for (int i = 0; i < 4; ++i)
      w[i] = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(data + 16 * i)), kBswap);

    // 16 groups of 4 rounds. w[g & 3] holds W[4g .. 4g+3]; the schedule for
    // group g + 4 is computed from groups g .. g + 3.
#pragma GCC unroll 16
    for (int g = 0; g < 16; ++g) {
      __m128i cur = w[g & 3];
      if (g < 12) {
        __m128i next = _mm_sha256msg1_epu32(cur, w[(g + 1) & 3]);
        next = _mm_add_epi32(next, _mm_alignr_epi8(w[(g + 3) & 3], w[(g + 2) & 3], 4));
        w[g & 3] = _mm_sha256msg2_epu32(next, w[(g + 3) & 3]);
      }
      __m128i wk = _mm_add_epi32(cur, _mm_load_si128(reinterpret_cast<const __m128i*>(&kK[4 * g])));
      cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);
      wk = _mm_shuffle_epi32(wk, 0x0E);
      abef = _mm_sha256rnds2_epu32(abef, cdgh, wk);
    }
    abef = _mm_add_epi32(abef, abef_save);
    cdgh = _mm_add_epi32(cdgh, cdgh_save);
  }

  __m128i feba = _mm_shuffle_epi32(abef, 0x1B);
  __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);
  dcba = _mm_blend_epi16(feba, dchg, 0xF0);
  hgfe = _mm_alignr_epi8(dchg, feba, 8);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(&state[0]), dcba);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(&state[4]), hgfe);
}
#endif

// Hashing state shared by Sha256 and the forced-implementation one-shots.
struct Core {
  uint32_t* state;
  uint8_t* buf;
  uint64_t& buf_len;
  uint64_t& total;

  void update(detail::Sha256Compress fn, const uint8_t* p, uint64_t n) {
    if (n == 0) return;
    total += n;
    if (buf_len > 0) {
      const uint64_t take = n < 64 - buf_len ? n : 64 - buf_len;
      std::memcpy(buf + buf_len, p, take);
      buf_len += take;
      p += take;
      n -= take;
      if (buf_len < 64) return;
      fn(state, buf, 1);
      buf_len = 0;
    }
    if (n >= 64) {
      const uint64_t blocks = n / 64;
      fn(state, p, blocks);
      p += blocks * 64;
      n -= blocks * 64;
    }
    if (n > 0) {
      std::memcpy(buf, p, n);
      buf_len = n;
    }
  }

  std::array<uint8_t, 32> finish(detail::Sha256Compress fn) {
    const uint64_t bits = total * 8;
    buf[buf_len++] = 0x80;
    if (buf_len > 56) {
      std::memset(buf + buf_len, 0, 64 - buf_len);
      fn(state, buf, 1);
      buf_len = 0;
    }
    std::memset(buf + buf_len, 0, 56 - buf_len);
    for (int i = 0; i < 8; ++i) buf[56 + i] = uint8_t(bits >> (56 - 8 * i));
    fn(state, buf, 1);
    std::array<uint8_t, 32> out;
    for (int i = 0; i < 8; ++i) store_be32(out.data() + 4 * i, state[i]);
    return out;
  }
};

std::array<uint8_t, 32> one_shot(detail::Sha256Compress fn, const void* data, uint64_t size) {
  uint32_t state[8];
  uint8_t buf[64];
  uint64_t buf_len = 0, total = 0;
  std::memcpy(state, kInit, sizeof(state));
  Core c{state, buf, buf_len, total};
  c.update(fn, static_cast<const uint8_t*>(data), size);
  return c.finish(fn);
}

}  // namespace

namespace detail {

void sha256_compress_portable(uint32_t state[8], const uint8_t* data, size_t blocks) {
  for (; blocks > 0; --blocks, data += 64) {
    uint32_t w[64];
    for (int i = 0; i < 16; ++i) w[i] = load_be32(data + 4 * i);
    for (int i = 16; i < 64; ++i) {
      const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    for (int i = 0; i < 64; ++i) {
      const uint32_t S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
      const uint32_t ch = (e & f) ^ (~e & g);
      const uint32_t t1 = h + S1 + ch + kK[i] + w[i];
      const uint32_t S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
      const uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
      const uint32_t t2 = S0 + maj;
      h = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
    state[5] += f;
    state[6] += g;
    state[7] += h;
  }
}

bool sha256_shani_available() {
#if DF11_SHA256_HAVE_X86
  static const bool ok = [] {
    // CPUID directly: clang 14 rejects __builtin_cpu_supports("sha").
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
    const bool sse = (c & bit_SSE4_1) && (c & bit_SSSE3);
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    return sse && (b & (1u << 29)) != 0;  // CPUID.(7,0):EBX bit 29 = SHA
  }();
  return ok;
#else
  return false;
#endif
}

Sha256Compress sha256_compress_selected() {
#if DF11_SHA256_HAVE_X86
  static const Sha256Compress fn = sha256_shani_available() ? &compress_shani : &sha256_compress_portable;
  return fn;
#else
  return &sha256_compress_portable;
#endif
}

std::array<uint8_t, 32> sha256_portable_for_test(const void* data, uint64_t size) {
  return one_shot(&sha256_compress_portable, data, size);
}

std::array<uint8_t, 32> sha256_shani_for_test(const void* data, uint64_t size) {
#if DF11_SHA256_HAVE_X86
  return one_shot(&compress_shani, data, size);
#else
  return one_shot(&sha256_compress_portable, data, size);
#endif
}

}  // namespace detail

Sha256::Sha256() { reset(); }

void Sha256::reset() {
  std::memcpy(state_, kInit, sizeof(state_));
  buf_len_ = 0;
  total_ = 0;
}

void Sha256::update(const void* data, uint64_t size) {
  if (size == 0) return;
  Core c{state_, buf_, buf_len_, total_};
  c.update(detail::sha256_compress_selected(), static_cast<const uint8_t*>(data), size);
}

std::array<uint8_t, 32> Sha256::digest() {
  Core c{state_, buf_, buf_len_, total_};
  const std::array<uint8_t, 32> out = c.finish(detail::sha256_compress_selected());
  reset();
  return out;
}

std::string to_hex(const std::array<uint8_t, 32>& d) {
  static const char kHex[] = "0123456789abcdef";
  std::string s(64, '0');
  for (int i = 0; i < 32; ++i) {
    s[2 * i] = kHex[d[i] >> 4];
    s[2 * i + 1] = kHex[d[i] & 15];
  }
  return s;
}

std::string sha256_hex(const void* data, uint64_t size) {
  Sha256 h;
  h.update(data, size);
  return to_hex(h.digest());
}

}  // namespace df11
