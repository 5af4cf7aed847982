// Length-limited canonical Huffman: limits that bind, optimality where they
// do not, determinism, and the validation rules for stored code lengths.
#include <catch2/catch.hpp>

#include <algorithm>
#include <queue>
#include <random>

#include "bf16_codec.h"
#include "huffman.h"

using namespace df11;

namespace {

uint64_t cost(const Histogram& h, const CodeLengths& l) {
  uint64_t c = 0;
  for (int s = 0; s < 256; ++s) c += h[s] * l[s];
  return c;
}

// Plain (unlimited) Huffman cost, for comparison.
uint64_t huffman_cost(const Histogram& h) {
  std::priority_queue<uint64_t, std::vector<uint64_t>, std::greater<>> q;
  for (uint64_t c : h)
    if (c) q.push(c);
  if (q.size() == 1) return q.top();
  uint64_t total = 0;
  while (q.size() > 1) {
    const uint64_t a = q.top(); q.pop();
    const uint64_t b = q.top(); q.pop();
    total += a + b;
    q.push(a + b);
  }
  return total;
}

uint32_t max_len(const CodeLengths& l) { return *std::max_element(l.begin(), l.end()); }

// The package-merge of the first releases, as the oracle: every package a
// node of a tree, the chosen items' trees walked to count each leaf.
// build_code_lengths counts the same items list by list without the tree,
// and must give the same lengths (not only the same cost: containers stay
// byte-identical).
CodeLengths package_merge_tree(const Histogram& hist, uint32_t max_len) {
  struct Node {
    uint64_t weight;
    int32_t left;   // -1 for a leaf
    int32_t right;  // symbol for a leaf
  };
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
  std::stable_sort(leaves.begin(), leaves.end(),
                   [&](int32_t a, int32_t b) { return pool[a].weight < pool[b].weight; });
  std::vector<int32_t> list = leaves;
  for (uint32_t round = 1; round < max_len; ++round) {
    std::vector<int32_t> packages;
    for (size_t i = 0; i + 1 < list.size(); i += 2) {
      packages.push_back(static_cast<int32_t>(pool.size()));
      pool.push_back({pool[list[i]].weight + pool[list[i + 1]].weight, list[i], list[i + 1]});
    }
    std::vector<int32_t> merged;
    size_t a = 0, b = 0;
    while (a < leaves.size() || b < packages.size()) {
      if (b == packages.size() || (a < leaves.size() && pool[leaves[a]].weight <= pool[packages[b]].weight))
        merged.push_back(leaves[a++]);
      else
        merged.push_back(packages[b++]);
    }
    list.swap(merged);
  }
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

}  // namespace

TEST_CASE("huffman: a code-length limit that binds", "[huffman]") {
  // Fibonacci counts force a 24-deep unlimited tree.
  Histogram h{};
  uint64_t a = 1, b = 1;
  for (int s = 0; s < 25; ++s) { h[100 + s] = a; const uint64_t c = a + b; a = b; b = c; }
  const CodeLengths l = build_code_lengths(h);
  REQUIRE(max_len(l) == kMaxCodeLength);
  REQUIRE(validate_code_lengths(l) == Error::Ok);
  // Limited cost can only be >= the unlimited optimum, and not by much here.
  REQUIRE(cost(h, l) >= huffman_cost(h));
  REQUIRE(cost(h, l) <= huffman_cost(h) * 101 / 100);
  // And data with exactly these frequencies round-trips through the codec.
  std::vector<uint16_t> w;
  for (int s = 0; s < 25; ++s)
    for (uint64_t k = 0; k < std::min<uint64_t>(h[100 + s], 3000); ++k) w.push_back(static_cast<uint16_t>((100 + s) << 7 | (k & 0x7F)));
  std::shuffle(w.begin(), w.end(), std::mt19937(1));
  const EncodedBf16 enc = encode_bf16(w.data(), w.size());
  std::vector<uint16_t> out(w.size());
  REQUIRE(decode_bf16(view_of(enc), out.data()) == Error::Ok);
  REQUIRE(out == w);
}

TEST_CASE("huffman: the longest codes", "[huffman]") {
  // All 256 exponents, one dominant: the rest share a balanced subtree.
  Histogram h{};
  h[127] = 1'000'000'000;
  for (int s = 0; s < 256; ++s)
    if (s != 127) h[s] = 1;
  CodeLengths l = build_code_lengths(h);
  REQUIRE(validate_code_lengths(l) == Error::Ok);
  REQUIRE(l[127] == 1);
  for (int s = 0; s < 256; ++s)
    if (s != 127) REQUIRE((l[s] == 8 || l[s] == 9));
  // Halving counts over 40 exponents: the tail is clamped at exactly kMaxCodeLength bits.
  Histogram g{};
  for (int s = 0; s < 40; ++s) g[60 + s] = uint64_t{1} << (45 - s);
  l = build_code_lengths(g);
  REQUIRE(validate_code_lengths(l) == Error::Ok);
  REQUIRE(max_len(l) == kMaxCodeLength);
  REQUIRE(l[60] == 1);
}

TEST_CASE("huffman: optimal when the limit does not bind", "[huffman]") {
  std::mt19937_64 rng(3);
  for (int trial = 0; trial < 200; ++trial) {
    Histogram h{};
    const int nsym = 2 + static_cast<int>(rng() % 30);
    for (int k = 0; k < nsym; ++k) h[rng() % 256] += 1000 + rng() % 100000;
    const CodeLengths l = build_code_lengths(h);
    REQUIRE(validate_code_lengths(l) == Error::Ok);
    if (max_len(l) < kMaxCodeLength) REQUIRE(cost(h, l) == huffman_cost(h));
  }
}

TEST_CASE("huffman: deterministic tie-breaking and one-symbol codes", "[huffman]") {
  Histogram h{};
  for (int s = 10; s < 15; ++s) h[s] = 7;  // all tied
  const CodeLengths l1 = build_code_lengths(h), l2 = build_code_lengths(h);
  REQUIRE(l1 == l2);
  // Ties are broken by symbol value (lower values sort as lighter), as the spec says.
  REQUIRE(l1[10] == 3);
  REQUIRE(l1[11] == 3);
  REQUIRE(l1[12] == 2);
  REQUIRE(l1[13] == 2);
  REQUIRE(l1[14] == 2);
  Histogram one{};
  one[200] = 5;
  const CodeLengths lo = build_code_lengths(one);
  REQUIRE(lo[200] == 1);
  REQUIRE(validate_code_lengths(lo) == Error::Ok);
  REQUIRE(build_code_lengths(Histogram{}) == CodeLengths{});
}

TEST_CASE("huffman: stored code lengths are validated", "[huffman]") {
  CodeLengths l{};
  l[1] = 1;
  l[2] = 2;
  REQUIRE(validate_code_lengths(l) == Error::Df11BadCodeLengths);  // incomplete
  l[3] = 2;
  REQUIRE(validate_code_lengths(l) == Error::Ok);
  l[4] = 2;
  REQUIRE(validate_code_lengths(l) == Error::Df11BadCodeLengths);  // over-subscribed
  CodeLengths single{};
  single[9] = 2;
  REQUIRE(validate_code_lengths(single) == Error::Df11BadCodeLengths);  // one symbol must be length 1
  CodeLengths too_long{};
  too_long[0] = 1;
  too_long[1] = 13;
  REQUIRE(validate_code_lengths(too_long) == Error::Df11BadCodeLengths);
}

TEST_CASE("huffman: canonical codes and the decode table agree", "[huffman]") {
  Histogram h{};
  for (int s = 0; s < 40; ++s) h[90 + s] = 1 + s * s * s;
  const CodeLengths l = build_code_lengths(h);
  const auto codes = canonical_codes(l);
  std::vector<uint16_t> lut(kLutSize);
  build_decode_lut(l, lut.data());
  for (int s = 0; s < 256; ++s) {
    if (!l[s]) continue;
    const uint32_t idx = codes[s] << (kMaxCodeLength - l[s]);
    REQUIRE((lut[idx] & 0xFF) == s);
    REQUIRE(((lut[idx] >> 8) & 0xF) == l[s]);
  }
}

TEST_CASE("huffman: multi-symbol tables hold the codes wholly inside each window, 3 (GPU) and 5 (CPU)", "[huffman]") {
  // A skewed exponent-like histogram (many 2-3 bit codes) and a flat one
  // (8-bit codes: one per window), plus one with an incomplete code (one
  // symbol of length 1), whose other windows are invalid.
  Histogram skewed{}, flat{};
  for (int s = 0; s < 256; ++s) flat[s] = 1;
  for (int s = 100; s < 140; ++s) skewed[s] = uint64_t{1} << (20 - std::min(19, std::abs(s - 120)));
  CodeLengths single{};
  single[7] = 1;
  std::vector<CodeLengths> tables = {build_code_lengths(skewed), build_code_lengths(flat), single};
  // And random codes: a few to all symbols, counts spread over many octaves
  // (every length 1-11, and the length limit in force).
  std::mt19937 rng(11);
  for (int r = 0; r < 60; ++r) {
    Histogram h{};
    const int present = 2 + static_cast<int>(rng() % 255);
    for (int k = 0; k < present; ++k) h[rng() % 256] = 1 + (rng() % (uint64_t{1} << (rng() % 40)));
    tables.push_back(build_code_lengths(h));
  }
  for (const CodeLengths& lengths : tables) {
    std::vector<uint16_t> lut(kLutSize);
    std::vector<uint32_t> m32(kLutSize);
    std::vector<uint64_t> m64(kLutSize);
    build_decode_lut(lengths, lut.data());
    build_multi_lut(lut.data(), m32.data());
    build_multi_lut64(lut.data(), m64.data());
    uint64_t fives = 0;
    for (uint32_t i = 0; i < kLutSize; ++i) {
      // The slow way: one code at a time, inside the window, bits past it zero.
      std::vector<uint8_t> syms;
      uint32_t used = 0;
      const bool valid = !(lut[i] & kLutInvalid);
      if (!valid) {
        syms.push_back(static_cast<uint8_t>(lut[i]));
        used = kMaxCodeLength;
      }
      while (valid && syms.size() < 5 && used < kMaxCodeLength) {
        const uint16_t e = lut[(i << used) & (kLutSize - 1)];
        const uint32_t len = (e >> 8) & 0xFu;
        if ((e & kLutInvalid) || len > kMaxCodeLength - used) break;
        syms.push_back(static_cast<uint8_t>(e));
        used += len;
      }
      for (const int cap : {3, 5}) {
        INFO("window " << i << ", up to " << cap << " codes");
        const size_t n = std::min<size_t>(syms.size(), cap);
        uint32_t total = valid ? 0 : kMaxCodeLength;
        if (valid)
          for (size_t k = 0; k < n; ++k) total += lengths[syms[k]];
        const uint64_t e = cap == 3 ? m32[i] : m64[i];
        const uint32_t got_count = cap == 3 ? (e >> 28) & 3 : (e >> 44) & 7;
        const uint32_t got_total = cap == 3 ? (e >> 24) & 0xF : (e >> 40) & 0xF;
        const bool got_invalid = cap == 3 ? (e & kMultiInvalid) != 0 : (e & kMultiInvalid64) != 0;
        REQUIRE(got_invalid == !valid);
        REQUIRE(got_count == n);
        REQUIRE(got_total == total);
        for (size_t k = 0; k < n; ++k) REQUIRE(static_cast<uint8_t>(e >> (8 * k)) == syms[k]);
      }
      fives += syms.size() == 5;
    }
    // Where the shortest code has 2 bits, some windows hold five codes: the
    // 64-bit table's extra room is used.
    uint32_t shortest = kMaxCodeLength;
    for (int s = 0; s < 256; ++s)
      if (lengths[s]) shortest = std::min<uint32_t>(shortest, lengths[s]);
    INFO("windows holding five codes: " << fives << ", shortest code " << shortest);
    if (shortest <= 2) CHECK(fives > 0);
  }
}

TEST_CASE("huffman: the exponent histogram counts every weight, at every length and alignment", "[huffman]") {
  std::mt19937 rng(7);
  std::vector<uint16_t> w(4099);
  for (auto& x : w) x = static_cast<uint16_t>(rng());
  // A run of one exponent (the case the eight tables are for), then random.
  for (size_t i = 100; i < 1100; ++i) w[i] = static_cast<uint16_t>((w[i] & 0x807F) | (121u << 7));
  for (size_t off : {size_t{0}, size_t{1}, size_t{3}}) {
    for (size_t n : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{9}, size_t{15}, size_t{4096}}) {
      Histogram want{};
      for (size_t i = 0; i < n; ++i) ++want[(w[off + i] >> 7) & 0xFF];
      INFO("offset " << off << ", " << n << " weights");
      REQUIRE(exponent_histogram(w.data() + off, n) == want);
    }
  }
}

TEST_CASE("huffman: the same lengths as the tree package-merge, for any histogram and limit", "[huffman]") {
  std::mt19937_64 rng(20261207);
  uint64_t checked = 0;
  for (int trial = 0; trial < 4000; ++trial) {
    Histogram h{};
    const int present = 1 + static_cast<int>(rng() % 256);
    const int shape = trial % 4;
    for (int i = 0; i < present; ++i) {
      const int s = static_cast<int>(rng() % 256);
      switch (shape) {
        case 0: h[s] = 1 + rng() % 1000; break;                    // flat-ish
        case 1: h[s] = uint64_t{1} << (rng() % 40); break;         // very skewed: limits bind
        case 2: h[s] = 1 + rng() % 3; break;                       // many ties
        default: h[s] = (rng() % 2 ? 1 : 1 + (rng() % 1000000)); break;
      }
    }
    int n = 0;
    for (uint64_t c : h) n += c != 0;
    uint32_t least = 1;
    while ((1u << least) < static_cast<uint32_t>(n)) ++least;
    for (uint32_t limit : {least, least + 1, 11u, 15u, 32u}) {
      if (limit < least) continue;
      INFO("trial " << trial << ", limit " << limit << ", symbols " << n);
      REQUIRE(build_code_lengths(h, limit) == package_merge_tree(h, limit));
      ++checked;
    }
  }
  REQUIRE(checked > 15000);
}

TEST_CASE("huffman: a limit too small for the symbols gives no code, and reads nothing out of bounds", "[huffman]") {
  // 2^max_len < symbols: no prefix code exists. The caller's precondition,
  // but the function must stay inside its buffers (the sanitizer run checks).
  Histogram h{};
  for (int s = 0; s < 256; ++s) h[s] = 1 + static_cast<uint64_t>(s);
  for (uint32_t limit : {0u, 1u, 4u, 7u}) {
    const CodeLengths l = build_code_lengths(h, limit);
    bool every_symbol_coded = true;
    for (int s = 0; s < 256; ++s) every_symbol_coded = every_symbol_coded && l[s] > 0 && l[s] <= limit;
    INFO("limit " << limit);
    REQUIRE_FALSE((every_symbol_coded && validate_code_lengths(l) == Error::Ok));
  }
}
