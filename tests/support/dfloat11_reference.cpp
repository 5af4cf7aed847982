#include "dfloat11_reference.h"

#include <algorithm>

namespace df11test {

namespace {

uint64_t n_blocks(const Df11RefUnit& u) {
  const uint64_t per_block = uint64_t{u.threads_per_block} * 8;  // bytes_per_thread = 8
  return (u.encoded_exponent.size() + per_block - 1) / per_block;
}

uint32_t opos(const Df11RefUnit& u, uint64_t b) {
  // Missing trailing entries are N (format notes, section 5.3).
  if (4 * b + 4 > u.output_positions.size()) return static_cast<uint32_t>(u.sign_mantissa.size());
  uint32_t v = 0;
  for (int k = 3; k >= 0; --k) v = (v << 8) | u.output_positions[4 * b + k];
  return v;
}

// Bit i of a byte string, MSB-first; 0 past the end.
unsigned bit_at(const uint8_t* bytes, uint64_t size, uint64_t i) {
  if (i / 8 >= size) return 0;
  return (bytes[i / 8] >> (7 - i % 8)) & 1u;
}

uint32_t peek32(const uint8_t* bytes, uint64_t size, uint64_t pos) {
  uint32_t w = 0;
  for (int k = 0; k < 32; ++k) w = (w << 1) | bit_at(bytes, size, pos + k);
  return w;
}

// Section 4.4: table j is indexed with byte j of the 32-bit window.
uint8_t decode_one(const Df11RefUnit& u, uint32_t w, unsigned* len) {
  const uint64_t n_luts = u.luts.size() / 256;
  uint8_t d = u.luts[(w >> 24) & 0xFF];
  for (int depth = 1; depth < 4 && d >= 240; ++depth) {
    const unsigned row = 256u - d;
    d = row < n_luts ? u.luts[row * 256 + ((w >> (24 - 8 * depth)) & 0xFF)] : 0;
  }
  *len = u.luts[(n_luts - 1) * 256 + d];
  return d;
}

uint16_t combine(uint8_t e, uint8_t sm) {
  return static_cast<uint16_t>(((sm & 0x80u) << 8) | (unsigned(e) << 7) | (sm & 0x7Fu));
}

unsigned gap_of(const Df11RefUnit& u, uint64_t t) {
  unsigned g = 0;
  for (int k = 0; k < 5; ++k) g = (g << 1) | bit_at(u.gaps.data(), u.gaps.size(), 5 * t + k);
  return g;
}

}  // namespace

std::string df11_ref_decode_sequential(const Df11RefUnit& u, std::vector<uint16_t>* out) {
  if (u.luts.size() < 512 || u.luts.size() % 256) return "luts is not a multiple of 256 rows (at least 2)";
  const uint64_t n = u.sign_mantissa.size();
  out->assign(n, 0);
  uint64_t pos = 0;
  for (uint64_t i = 0; i < n; ++i) {
    unsigned len = 0;
    const uint8_t e = decode_one(u, peek32(u.encoded_exponent.data(), u.encoded_exponent.size(), pos), &len);
    if (len == 0) return "element " + std::to_string(i) + " decodes to symbol " + std::to_string(e) + " of length 0";
    (*out)[i] = combine(e, u.sign_mantissa[i]);
    pos += len;
  }
  if ((pos + 7) / 8 != u.encoded_exponent.size())
    return "stream ends at bit " + std::to_string(pos) + " but encoded_exponent has " +
           std::to_string(u.encoded_exponent.size()) + " bytes";
  return "";
}

std::string df11_ref_decode_blocks(const Df11RefUnit& u, std::vector<uint16_t>* out) {
  if (u.luts.size() < 512 || u.luts.size() % 256) return "luts is not a multiple of 256 rows (at least 2)";
  const uint64_t n = u.sign_mantissa.size(), nb = u.encoded_exponent.size();
  const uint64_t tpb = u.threads_per_block, blocks = n_blocks(u);
  if (u.gaps.size() < (5 * tpb * blocks + 7) / 8) return "gaps has fewer than 5 bits per thread";
  out->assign(n, 0);
  std::vector<uint8_t> written(n, 0);
  for (uint64_t b = 0; b < blocks; ++b) {
    std::vector<uint64_t> count(tpb, 0);
    std::vector<std::vector<uint8_t>> syms(tpb);
    for (uint64_t t = 0; t < tpb; ++t) {
      const uint64_t T = b * tpb + t;
      // The thread's 12-byte window; bytes past n_bytes read as 0.
      uint8_t win[12];
      for (int k = 0; k < 12; ++k) win[k] = 8 * T + k < nb ? u.encoded_exponent[8 * T + k] : 0;
      uint64_t pos = gap_of(u, T);
      while (pos < 64) {  // codes that start in the 64 owned bits
        unsigned len = 0;
        const uint8_t e = decode_one(u, peek32(win, 12, pos), &len);
        if (len == 0) return "thread " + std::to_string(T) + " decodes a symbol of length 0 (the kernel would hang)";
        syms[t].push_back(e);
        pos += len;
      }
      count[t] = syms[t].size();
    }
    const uint64_t first = opos(u, b), last = std::min<uint64_t>(opos(u, b + 1), n);
    if (first > n || last < first) return "output_positions not monotone at block " + std::to_string(b);
    uint64_t idx = first;  // exclusive scan seeded with output_positions[b]
    for (uint64_t t = 0; t < tpb; ++t) {
      for (uint64_t j = 0; j < count[t]; ++j, ++idx) {
        if (idx >= last) continue;  // the kernel's clamp: past this block's share or past N
        if (written[idx]) return "element " + std::to_string(idx) + " written twice (block " + std::to_string(b) + ")";
        written[idx] = 1;
        (*out)[idx] = combine(syms[t][j], u.sign_mantissa[idx]);
      }
    }
    if (idx < last) return "block " + std::to_string(b) + " decodes fewer codes than output_positions says";
  }
  for (uint64_t i = 0; i < n; ++i)
    if (!written[i]) return "element " + std::to_string(i) + " never written";
  return "";
}

std::string df11_ref_check_kernel_limits(const Df11RefUnit& u) {
  const uint64_t n_luts = u.luts.size() / 256;
  if (n_luts < 2 || u.luts.size() % 256) return "luts must have at least 2 rows of 256";
  if (n_luts - 2 > 16) return std::to_string(n_luts - 2) + " sub-tables (at most 16)";
  const uint8_t* lens = &u.luts[(n_luts - 1) * 256];
  for (unsigned s = 240; s < 256; ++s)
    if (lens[s]) return "symbol " + std::to_string(s) + " >= 240 has a code";
  for (uint64_t r = 0; r + 1 < n_luts; ++r)
    for (unsigned k = 0; k < 256; ++k) {
      const uint8_t v = u.luts[r * 256 + k];
      if (v >= 240) {
        if (256u - v >= n_luts - 1) return "row " + std::to_string(r) + " slot " + std::to_string(k) + " points past the tables";
      } else if (lens[v] == 0) {
        return "row " + std::to_string(r) + " slot " + std::to_string(k) + " decodes to symbol " + std::to_string(v) +
               " of length 0";
      }
    }
  const uint64_t blocks = n_blocks(u);
  if (u.output_positions.size() != 4 * (blocks + 1)) return "output_positions does not have B+1 entries";
  if (u.gaps.size() != (5 * uint64_t{u.threads_per_block} * blocks + 7) / 8) return "gaps does not have 5 bits per thread";
  uint64_t most = 0;
  for (uint64_t b = 0; b < blocks; ++b) most = std::max<uint64_t>(most, opos(u, b + 1) - opos(u, b));
  const uint64_t smem = uint64_t{u.threads_per_block} * 4 + 4 + 2 * most;
  if (smem > 49152) return "shared memory " + std::to_string(smem) + " bytes > 48 KiB";
  if (u.sign_mantissa.size() >= (uint64_t{1} << 31) || u.encoded_exponent.size() >= (uint64_t{1} << 31))
    return "2^31 elements or bytes or more";
  return "";
}

}  // namespace df11test
