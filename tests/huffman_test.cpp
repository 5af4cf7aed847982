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
