#include "huffman.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

namespace df11 {

CodeLengths build_code_lengths(const Histogram& hist, uint32_t max_len) {
  CodeLengths len{};
  // Leaves sorted by weight; ties keep symbol order, so the result is
  // deterministic.
  std::array<uint8_t, 256> sym;
  size_t n = 0;
  for (int s = 0; s < 256; ++s)
    if (hist[s]) sym[n++] = static_cast<uint8_t>(s);
  if (n == 0) return len;
  if (n == 1) {
    len[sym[0]] = 1;
    return len;
  }
  if (max_len == 0) return len;  // no code of two symbols or more (the precondition)
  std::stable_sort(sym.begin(), sym.begin() + static_cast<std::ptrdiff_t>(n),
                   [&](uint8_t a, uint8_t b) { return hist[a] < hist[b]; });

  // Package-merge (Larmore & Hirschberg). List 1 is the leaves; list k + 1
  // merges the leaves with the packages of list k (its items paired in
  // order), leaves first on ties. The code is the first 2n - 2 items of the
  // last list, each package standing for the two items of the list below it
  // that it joined, and a leaf's length is the number of lists whose chosen
  // items include it. The leaves among the first m items of a list are the
  // first few sorted leaves and the packages among them the first few
  // packages, so only the leaf/package order of each list is kept, and the
  // lengths are counted list by list from the top: no tree of packages is
  // built or walked (a file of thousands of small tensors builds a code for
  // each, and the tree was a tenth of its compress).
  const size_t most = 2 * n;  // a list holds at most 2n - 1 items
  std::vector<uint64_t> weight(most), next(most);
  std::vector<uint8_t> is_leaf(static_cast<size_t>(max_len) * most);
  std::vector<size_t> size(max_len + 1);
  for (size_t i = 0; i < n; ++i) {
    weight[i] = hist[sym[i]];
    is_leaf[i] = 1;
  }
  size[1] = n;
  for (uint32_t k = 2; k <= max_len; ++k) {
    const size_t packages = size[k - 1] / 2;
    uint8_t* const leaf = &is_leaf[(k - 1) * most];
    size_t a = 0, b = 0, m = 0;
    while (a < n || b < packages) {
      const uint64_t pw = b < packages ? weight[2 * b] + weight[2 * b + 1] : 0;
      if (b == packages || (a < n && hist[sym[a]] <= pw)) {
        next[m] = hist[sym[a++]];
        leaf[m++] = 1;
      } else {
        next[m] = pw;
        leaf[m++] = 0;
        ++b;
      }
    }
    size[k] = m;
    weight.swap(next);
  }
  size_t chosen = 2 * n - 2;
  for (uint32_t k = max_len; k >= 1 && chosen > 0; --k) {
    const uint8_t* const leaf = &is_leaf[(k - 1) * most];
    chosen = std::min(chosen, size[k]);  // only short of 2n - 2 when max_len is too small for n
    size_t leaves = 0;
    for (size_t i = 0; i < chosen; ++i) leaves += leaf[i];
    for (size_t i = 0; i < leaves; ++i) ++len[sym[i]];
    chosen = 2 * (chosen - leaves);
  }
  return len;
}

Error validate_code_lengths(const CodeLengths& lengths) {
  uint64_t kraft = 0;  // in units of 2^-kMaxCodeLength
  int present = 0;
  for (int s = 0; s < 256; ++s) {
    const uint32_t l = lengths[s];
    if (l == 0) continue;
    if (l > kMaxCodeLength) return Error::Df11BadCodeLengths;
    kraft += uint64_t{1} << (kMaxCodeLength - l);
    ++present;
  }
  if (present == 0) return Error::Ok;  // caller checks that the stream is empty
  if (present == 1) {
    for (int s = 0; s < 256; ++s)
      if (lengths[s]) return lengths[s] == 1 ? Error::Ok : Error::Df11BadCodeLengths;
  }
  return kraft == (uint64_t{1} << kMaxCodeLength) ? Error::Ok : Error::Df11BadCodeLengths;
}

std::array<uint32_t, 256> canonical_codes(const CodeLengths& lengths) {
  std::array<uint32_t, 256> codes{};
  uint32_t bl_count[kMaxCodeLength + 2] = {};
  for (int s = 0; s < 256; ++s)
    if (lengths[s]) ++bl_count[lengths[s]];
  uint32_t next[kMaxCodeLength + 2] = {};
  uint32_t code = 0;
  for (uint32_t l = 1; l <= kMaxCodeLength; ++l) {
    code = (code + bl_count[l - 1]) << 1;
    next[l] = code;
  }
  for (int s = 0; s < 256; ++s)
    if (lengths[s]) codes[s] = next[lengths[s]]++;
  return codes;
}

void build_decode_lut(const CodeLengths& lengths, uint16_t lut[kLutSize]) {
  // A complete code fills every entry below; only the one-symbol code leaves
  // windows that start with no code (tables are built per tensor, and small
  // tensors are many).
  uint32_t kraft = 0;  // in units of 2^-kMaxCodeLength
  for (int s = 0; s < 256; ++s)
    if (lengths[s]) kraft += 1u << (kMaxCodeLength - lengths[s]);
  if (kraft != kLutSize)
    for (uint32_t i = 0; i < kLutSize; ++i) lut[i] = kLutInvalid | (kMaxCodeLength << 8);
  const auto codes = canonical_codes(lengths);
  for (int s = 0; s < 256; ++s) {
    const uint32_t l = lengths[s];
    if (!l) continue;
    const uint32_t first = codes[s] << (kMaxCodeLength - l);
    const uint32_t count = 1u << (kMaxCodeLength - l);
    const uint16_t entry = static_cast<uint16_t>(s | (l << 8));
    for (uint32_t i = 0; i < count; ++i) lut[first + i] = entry;
  }
}

namespace {
// Every window's codes at once, by ranges rather than window by window (the
// window-by-window walk, one dependent table load per code, was a quarter of
// verify's time on a file of thousands of small tensors, whose tables are
// built per tensor). A k-bit string that starts with code c of length l <= k
// lies in c's range of 2^(k-l) strings, and what follows c in it is the
// (k-l)-bit string at the same place in level k-l: level k is level k-l with
// c put in front, range by range, in loops over contiguous entries. Levels
// live at [2^k, 2^(k+1)); level 11 is the window table. A string that does
// not start with a whole code has no codes (zero entries).
//
// An entry's `cum` holds the total length after j codes in nibble j-1
// (j = 1..5), the last total repeated past its count, so a table of up to
// c codes reads its total from nibble c-1.
struct WindowCodes {
  uint64_t syms[2 * kLutSize];  // byte j: code j's symbol
  uint32_t cum[2 * kLutSize];
  uint8_t count[2 * kLutSize];  // up to 5

  explicit WindowCodes(const uint16_t lut[kLutSize]) {
    struct Code {
      uint8_t sym, len;
      uint32_t code;
    };
    Code codes[256];
    int n_codes = 0;
    for (uint32_t i = 0; i < kLutSize;) {  // a code of length l spans 2^(11-l) windows
      const uint16_t e = lut[i];
      if (e & kLutInvalid) { ++i; continue; }
      const uint32_t len = (e >> 8) & 0xFu;
      codes[n_codes++] = Code{static_cast<uint8_t>(e), static_cast<uint8_t>(len), i >> (kLutBits - len)};
      i += 1u << (kLutBits - len);
    }
    std::memset(syms, 0, sizeof syms);
    std::memset(cum, 0, sizeof cum);
    std::memset(count, 0, sizeof count);
    for (uint32_t k = 1; k <= kLutBits; ++k) {
      for (int c = 0; c < n_codes; ++c) {
        const uint32_t len = codes[c].len;
        if (len > k) continue;
        const uint32_t n = 1u << (k - len);
        const uint64_t* rs = syms + n;  // level k - len
        const uint32_t* rc = cum + n;
        const uint8_t* rn = count + n;
        uint64_t* ds = syms + (1u << k) + (codes[c].code << (k - len));
        uint32_t* dc = cum + (1u << k) + (codes[c].code << (k - len));
        uint8_t* dn = count + (1u << k) + (codes[c].code << (k - len));
        const uint64_t sym = codes[c].sym;
        const uint32_t add = len * 0x11111u;  // len into every nibble (each stays <= 11)
        for (uint32_t q = 0; q < n; ++q) {
          ds[q] = (sym | (rs[q] << 8)) & 0xFFFFFFFFFFull;  // a sixth code falls off
          dc[q] = (len | ((rc[q] + add) << 4)) & 0xFFFFFu;
          dn[q] = static_cast<uint8_t>(rn[q] < 5 ? rn[q] + 1 : 5);
        }
      }
    }
  }
  const uint64_t* window_syms() const { return syms + kLutSize; }
  const uint32_t* window_cum() const { return cum + kLutSize; }
  const uint8_t* window_count() const { return count + kLutSize; }
};
}  // namespace

// A window that does not start with a code: its byte, count 1, length
// kMaxCodeLength, as in the uint16 table.
void build_multi_lut(const uint16_t lut[kLutSize], uint32_t multi[kLutSize]) {
  const std::unique_ptr<WindowCodes> w(new WindowCodes(lut));
  for (uint32_t i = 0; i < kLutSize; ++i) {
    if (lut[i] & kLutInvalid) {
      multi[i] = kMultiInvalid | (lut[i] & 0xFFu) | (kMaxCodeLength << 24) | (1u << 28);
      continue;
    }
    const uint32_t count = std::min<uint32_t>(w->window_count()[i], 3);
    const uint32_t total = (w->window_cum()[i] >> 8) & 0xF;  // nibble 2: after up to three codes
    multi[i] = static_cast<uint32_t>(w->window_syms()[i] & 0xFFFFFFu) | (total << 24) | (count << 28);
  }
}

void build_multi_lut64(const uint16_t lut[kLutSize], uint64_t multi[kLutSize]) {
  const std::unique_ptr<WindowCodes> w(new WindowCodes(lut));
  for (uint32_t i = 0; i < kLutSize; ++i) {
    if (lut[i] & kLutInvalid) {
      multi[i] = kMultiInvalid64 | (lut[i] & 0xFFu) | (uint64_t{kMaxCodeLength} << 40) | (uint64_t{1} << 44);
      continue;
    }
    const uint64_t total = (w->window_cum()[i] >> 16) & 0xF;  // nibble 4: after up to five codes
    multi[i] = w->window_syms()[i] | (total << 40) | (uint64_t{w->window_count()[i]} << 44);
  }
}

namespace {
// Four tables break the store-to-load dependency on repeated values.
template <typename T, typename Key>
Histogram histogram4(const T* v, uint64_t n, Key key) {
  uint64_t h[4][256] = {};
  uint64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    ++h[0][key(v[i])];
    ++h[1][key(v[i + 1])];
    ++h[2][key(v[i + 2])];
    ++h[3][key(v[i + 3])];
  }
  for (; i < n; ++i) ++h[0][key(v[i])];
  Histogram out{};
  for (int s = 0; s < 256; ++s) out[s] = h[0][s] + h[1][s] + h[2][s] + h[3][s];
  return out;
}
}  // namespace

// Eight 32-bit tables fed from 64-bit loads (four weights each): exponents
// are few and repeat, and with four tables the same counter came back every
// fourth weight, a store-to-load chain; eight tables halve that and the
// 64-bit loads halve the loads: 1.3-1.4x histogram4 on a Xeon and an EPYC
// (PERFORMANCE.md, "Many cores, round 5"). Blocks of 2^31 weights keep the
// 32-bit counters exact.
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "exponent_histogram reads weights as little-endian 64-bit words"
#endif
Histogram exponent_histogram(const uint16_t* w, uint64_t n) {
  Histogram out{};
  constexpr uint64_t kBlock = uint64_t{1} << 31;
  for (uint64_t b = 0; b < n; b += kBlock) {
    const uint16_t* v = w + b;
    const uint64_t m = std::min(kBlock, n - b);
    uint32_t h[8][256] = {};
    uint64_t i = 0;
    for (; i + 8 <= m; i += 8) {
      uint64_t x, y;
      std::memcpy(&x, v + i, 8);  // little-endian: weight i in the low 16 bits
      std::memcpy(&y, v + i + 4, 8);
      ++h[0][(x >> 7) & 0xFF];
      ++h[1][(x >> 23) & 0xFF];
      ++h[2][(x >> 39) & 0xFF];
      ++h[3][(x >> 55) & 0xFF];
      ++h[4][(y >> 7) & 0xFF];
      ++h[5][(y >> 23) & 0xFF];
      ++h[6][(y >> 39) & 0xFF];
      ++h[7][(y >> 55) & 0xFF];
    }
    for (; i < m; ++i) ++h[0][(v[i] >> 7) & 0xFF];
    for (int s = 0; s < 256; ++s)
      for (int t = 0; t < 8; ++t) out[s] += h[t][s];
  }
  return out;
}

Histogram byte_histogram(const uint8_t* e, uint64_t n) {
  return histogram4(e, n, [](uint8_t x) { return x; });
}

double entropy_bits(const Histogram& hist) {
  uint64_t total = 0;
  for (uint64_t c : hist) total += c;
  if (total == 0) return 0.0;
  double h = 0.0;
  for (uint64_t c : hist)
    if (c) {
      const double p = static_cast<double>(c) / static_cast<double>(total);
      h -= p * std::log2(p);
    }
  return h;
}

}  // namespace df11
