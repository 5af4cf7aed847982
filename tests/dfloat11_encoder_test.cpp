// The DFloat11 unit encoder against the reference decoder written from the
// format notes: bit-exact both ways (sequential and block by block as the
// kernel walks), and one test per kernel limit.
#include <catch2/catch.hpp>

#include <cstring>
#include <random>

#include "dfloat11_encoder.h"
#include "dfloat11_reference.h"
#include "huffman.h"
#include "test_util.h"

using namespace df11;
using df11test::Df11RefUnit;

namespace {

Df11RefUnit as_ref(const Df11Unit& u) {
  Df11RefUnit r;
  r.luts = u.luts;
  r.encoded_exponent = u.encoded_exponent;
  r.sign_mantissa = u.sign_mantissa;
  r.output_positions.resize(4 * u.output_positions.size());
  for (size_t i = 0; i < u.output_positions.size(); ++i)
    for (int k = 0; k < 4; ++k) r.output_positions[4 * i + k] = static_cast<uint8_t>(u.output_positions[i] >> (8 * k));
  r.gaps = u.gaps;
  return r;
}

// Encodes, then decodes both ways with the reference decoder and checks the
// kernel's limits on the tensors themselves.
Df11Unit round_trip(const std::vector<uint16_t>& w, unsigned threads = 2) {
  Df11Unit u;
  std::string why;
  REQUIRE(encode_dfloat11(w.data(), w.size(), threads, &u, &why) == Df11Limit::None);
  const Df11RefUnit r = as_ref(u);
  CHECK(df11test::df11_ref_check_kernel_limits(r) == "");
  std::vector<uint16_t> seq, blk;
  CHECK(df11test::df11_ref_decode_sequential(r, &seq) == "");
  CHECK(seq == w);
  CHECK(df11test::df11_ref_decode_blocks(r, &blk) == "");
  CHECK(blk == w);
  return u;
}

std::vector<uint16_t> from_histogram(const std::vector<std::pair<int, uint64_t>>& counts, uint64_t seed) {
  std::vector<uint16_t> w;
  std::mt19937_64 rng(seed);
  for (const auto& [e, c] : counts)
    for (uint64_t i = 0; i < c; ++i)
      w.push_back(static_cast<uint16_t>((rng() & 0x8000u) | (unsigned(e) << 7) | (rng() & 0x7Fu)));
  std::shuffle(w.begin(), w.end(), rng);
  return w;
}

}  // namespace

TEST_CASE("dfloat11 encoder: Gaussian weights decode bit-exact both ways", "[dfloat11]") {
  // Sizes around one element, one thread window, one 4096-byte block and
  // several encoding chunks (2^20 elements).
  for (uint64_t n : {1ull, 2ull, 7ull, 100ull, 12345ull, 300000ull, 2500000ull}) {
    INFO("n = " << n);
    const auto w = df11test::gaussian_bf16(n, 0.02, n);
    const Df11Unit u = round_trip(w);
    CHECK(u.max_code_length <= 32);
    CHECK(u.adjustments.empty());
    // About 2.6-2.7 bits per exponent, as DFloat11 measures on real weights.
    if (n >= 300000) CHECK(static_cast<double>(u.encoded_exponent.size()) * 8 / static_cast<double>(n) < 3.0);
  }
}

TEST_CASE("dfloat11 encoder: output does not depend on the thread count", "[dfloat11]") {
  const auto w = df11test::gaussian_bf16(3u << 20, 0.03, 7);
  Df11Unit a, b;
  std::string why;
  REQUIRE(encode_dfloat11(w.data(), w.size(), 1, &a, &why) == Df11Limit::None);
  REQUIRE(encode_dfloat11(w.data(), w.size(), 4, &b, &why) == Df11Limit::None);
  CHECK(a.encoded_exponent == b.encoded_exponent);
  CHECK(a.gaps == b.gaps);
  CHECK(a.output_positions == b.output_positions);
  CHECK(a.luts == b.luts);
  CHECK(a.sign_mantissa == b.sign_mantissa);
}

TEST_CASE("dfloat11 encoder: long codes use sub-tables and still decode", "[dfloat11]") {
  // A Fibonacci-like histogram gives codes of 20+ bits, so tables at depth 1-3.
  std::vector<std::pair<int, uint64_t>> counts;
  uint64_t a = 1, b = 1;
  for (int e = 100; e < 125; ++e) {
    counts.push_back({e, a});
    const uint64_t c = a + b;
    a = b;
    b = c;
  }
  const auto w = from_histogram(counts, 3);
  const Df11Unit u = round_trip(w);
  CHECK(u.max_code_length > 16);
  CHECK(u.n_luts >= 4);
}

TEST_CASE("dfloat11 limit ExponentSymbol: exponents >= 240 are never symbols", "[dfloat11]") {
  // 240 is the smallest exponent the kernel would read as a table pointer;
  // 255 is Inf/NaN.
  for (uint16_t bad : {uint16_t(240u << 7), uint16_t(0x7F80u), uint16_t(0xFFC1u)}) {
    auto w = df11test::gaussian_bf16(5000, 0.02, 1);
    w[1234] = bad;
    Df11Unit u;
    std::string why;
    CHECK(encode_dfloat11(w.data(), w.size(), 2, &u, &why) == Df11Limit::ExponentSymbol);
    CHECK(why.find("exponent") != std::string::npos);
  }
  // 239 is still a symbol.
  auto w = df11test::gaussian_bf16(5000, 0.02, 1);
  w[7] = uint16_t(239u << 7);
  const Df11Unit u = round_trip(w);
  CHECK(u.code_lengths[239] > 0);
}

TEST_CASE("dfloat11 limit SubTables: at most 16 sub-tables, by shortening the longest codes", "[dfloat11]") {
  // One dominant exponent and 200 rare ones: the optimal code gives 144 9-bit
  // codes under 72 distinct 8-bit prefixes, i.e. 72 sub-tables.
  std::vector<std::pair<int, uint64_t>> counts = {{120, 400000}};
  for (int e = 10; e < 210; ++e)
    if (e != 120) counts.push_back({e, 2000});
  const auto w = from_histogram(counts, 5);
  Histogram h = exponent_histogram(w.data(), w.size());
  REQUIRE(df11_sub_tables(build_code_lengths(h, 32)) > kDf11MaxSubTables);  // the test bites
  const Df11Unit u = round_trip(w);
  CHECK(u.n_luts - 2 <= kDf11MaxSubTables);
  REQUIRE(u.adjustments.size() == 1);
  CHECK(u.adjustments[0].rfind("SubTables:", 0) == 0);
}

TEST_CASE("dfloat11 limit SharedMemory: at most 23,550 elements start in one block", "[dfloat11]") {
  SECTION("all exponents equal: a one-symbol code, incomplete, every slot still decodes") {
    std::vector<uint16_t> w(200000, 0x3C00);
    for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<uint16_t>(w[i] | (i * 2654435761u >> 7 & 0x807F));
    const Df11Unit u = round_trip(w);
    REQUIRE(u.adjustments.size() == 1);
    CHECK(u.adjustments[0].rfind("SharedMemory:", 0) == 0);
    CHECK(u.max_block_elements <= 16384);
    CHECK(u.shared_mem_bytes <= kDf11SharedMemLimit);
  }
  SECTION("a skewed histogram (1.2 bits a code on average)") {
    const auto w = from_histogram({{120, 900000}, {119, 60000}, {121, 30000}, {118, 10000}}, 9);
    const Df11Unit u = round_trip(w);
    REQUIRE(u.adjustments.size() == 1);
    CHECK(u.adjustments[0].rfind("SharedMemory:", 0) == 0);
  }
  SECTION("typical weights need no change") {
    const Df11Unit u = round_trip(df11test::gaussian_bf16(400000, 0.02, 4));
    CHECK(u.adjustments.empty());
    CHECK(u.max_block_elements > 10000);
    CHECK(u.max_block_elements < 23550);
  }
}

TEST_CASE("dfloat11 limit Elements: fewer than 2^31 elements per unit", "[dfloat11]") {
  CHECK(kDf11MaxElements == (uint64_t{1} << 31) - 1);
  const auto w = df11test::gaussian_bf16(1001, 0.02, 2);
  Df11EncodeParams p;
  p.max_elements = 1000;  // stands in for 2^31 - 1 without 4 GiB of weights
  Df11Unit u;
  std::string why;
  CHECK(encode_dfloat11(w.data(), w.size(), 2, &u, &why, p) == Df11Limit::Elements);
  CHECK(encode_dfloat11(w.data(), 1000, 2, &u, &why, p) == Df11Limit::None);
}

TEST_CASE("dfloat11 reference decoder: notices a wrong stream bit, gap or block position", "[dfloat11]") {
  const auto w = df11test::gaussian_bf16(100000, 0.02, 11);
  Df11Unit u;
  std::string why;
  REQUIRE(encode_dfloat11(w.data(), w.size(), 2, &u, &why) == Df11Limit::None);
  std::vector<uint16_t> out;
  {
    Df11RefUnit r = as_ref(u);
    r.encoded_exponent[r.encoded_exponent.size() / 2] ^= 0x10;
    const std::string e = df11test::df11_ref_decode_sequential(r, &out);
    CHECK((e != "" || out != w));
  }
  {
    Df11RefUnit r = as_ref(u);
    r.gaps[700] ^= 0x04;  // one thread of block 2 starts one bit off
    const std::string e = df11test::df11_ref_decode_blocks(r, &out);
    CHECK((e != "" || out != w));
  }
  {
    Df11RefUnit r = as_ref(u);
    r.output_positions[4] += 1;  // block 1 claims to start one element later
    CHECK(df11test::df11_ref_decode_blocks(r, &out) != "");
  }
}

TEST_CASE("dfloat11 limit every table slot decodes: incomplete codes fill unused slots with a real symbol", "[dfloat11]") {
  // One exponent only: the code is '0' alone, so root slots 128-255 belong to
  // no code; threads past the end may still read them (padding), and a symbol
  // of length 0 there would never advance.
  std::vector<uint16_t> w(5000, 0x3F80);
  const Df11Unit u = round_trip(w);
  REQUIRE(u.n_luts == 2);
  const uint8_t* lens = &u.luts[256];
  for (int k = 0; k < 256; ++k) {
    INFO("slot " << k);
    CHECK(u.luts[k] == 0x7F);  // exponent of 1.0
    CHECK(lens[u.luts[k]] > 0);
  }
  // Zero bytes (what threads past n_bytes read) decode too, in any table.
  const auto g = df11test::gaussian_bf16(50000, 0.02, 8);
  const Df11Unit v = round_trip(g);
  for (uint32_t r = 0; r + 1 < v.n_luts; ++r) {
    const uint8_t x = v.luts[r * 256];
    CHECK((x >= 240 || v.luts[(v.n_luts - 1) * 256 + x] > 0));
  }
}
