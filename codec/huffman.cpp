#include "huffman.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace df11 {

namespace {

struct Node {
  uint64_t weight;
  int32_t left;   // -1 for a leaf
  int32_t right;  // symbol for a leaf
};

}  // namespace

CodeLengths build_code_lengths(const Histogram& hist, uint32_t max_len) {
  CodeLengths len{};
  std::vector<Node> pool;
  std::vector<int32_t> leaves;
  for (int s = 0; s < 256; ++s)
    if (hist[s]) {
      leaves.push_back(static_cast<int32_t>(pool.size()));
      pool.push_back({hist[s], -1, s});
    }
  const size_t n = leaves.size();
  if (n == 0) return len;
  if (n == 1) {
    len[pool[leaves[0]].right] = 1;
    return len;
  }
  // Stable sort by weight: ties keep symbol order, so the result is deterministic.
  std::stable_sort(leaves.begin(), leaves.end(),
                   [&](int32_t a, int32_t b) { return pool[a].weight < pool[b].weight; });

  // Package-merge (Larmore & Hirschberg): max_len - 1 rounds of pairing the
  // previous list and merging the pairs with the leaves; leaves win ties.
  std::vector<int32_t> list = leaves;
  for (uint32_t round = 1; round < max_len; ++round) {
    std::vector<int32_t> packages;
    for (size_t i = 0; i + 1 < list.size(); i += 2) {
      packages.push_back(static_cast<int32_t>(pool.size()));
      pool.push_back({pool[list[i]].weight + pool[list[i + 1]].weight, list[i], list[i + 1]});
    }
    std::vector<int32_t> merged;
    merged.reserve(leaves.size() + packages.size());
    size_t a = 0, b = 0;
    while (a < leaves.size() || b < packages.size()) {
      if (b == packages.size() ||
          (a < leaves.size() && pool[leaves[a]].weight <= pool[packages[b]].weight))
        merged.push_back(leaves[a++]);
      else
        merged.push_back(packages[b++]);
    }
    list.swap(merged);
  }
  // Each appearance of a leaf among the first 2n-2 items adds one to its length.
  std::vector<int32_t> stack;
  for (size_t i = 0; i < 2 * n - 2; ++i) {
    stack.push_back(list[i]);
    while (!stack.empty()) {
      const Node& node = pool[stack.back()];
      stack.pop_back();
      if (node.left < 0) {
        ++len[node.right];
      } else {
        stack.push_back(node.left);
        stack.push_back(node.right);
      }
    }
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
// The codes that lie wholly inside window i, at most max_codes: their
// symbols (byte k: code k), total length and count. False when the window
// does not start with a code (then its byte, count 1, length kMaxCodeLength,
// as in the uint16 table).
bool window_codes(const uint16_t lut[kLutSize], uint32_t i, uint32_t max_codes, uint64_t* syms, uint32_t* total,
                  uint32_t* count) {
  const uint16_t e0 = lut[i];
  *syms = e0 & 0xFFu;
  *count = 1;
  if (e0 & kLutInvalid) {
    *total = kMaxCodeLength;
    return false;
  }
  *total = (e0 >> 8) & 0xFu;
  while (*count < max_codes && *total < kMaxCodeLength) {
    const uint16_t e = lut[(i << *total) & (kLutSize - 1)];  // later bits zero-filled
    const uint32_t len = (e >> 8) & 0xFu;
    if ((e & kLutInvalid) || len > kMaxCodeLength - *total) break;  // would need bits past the window
    *syms |= uint64_t{static_cast<uint8_t>(e)} << (8 * *count);
    *total += len;
    ++*count;
  }
  return true;
}
}  // namespace

void build_multi_lut(const uint16_t lut[kLutSize], uint32_t multi[kLutSize]) {
  for (uint32_t i = 0; i < kLutSize; ++i) {
    uint64_t syms;
    uint32_t total, count;
    const bool valid = window_codes(lut, i, 3, &syms, &total, &count);
    multi[i] = (valid ? 0 : kMultiInvalid) | static_cast<uint32_t>(syms) | (total << 24) | (count << 28);
  }
}

void build_multi_lut64(const uint16_t lut[kLutSize], uint64_t multi[kLutSize]) {
  for (uint32_t i = 0; i < kLutSize; ++i) {
    uint64_t syms;
    uint32_t total, count;
    const bool valid = window_codes(lut, i, 5, &syms, &total, &count);
    multi[i] = (valid ? 0 : kMultiInvalid64) | syms | (uint64_t{total} << 40) | (uint64_t{count} << 44);
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
