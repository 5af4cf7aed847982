// The byte-plane layout of ZSTD payloads (docs/FORMAT.md section 3): the
// transform against its definition, and containers whose ZSTD tensors cross
// a group boundary.
#include <catch2/catch.hpp>
#include <zstd.h>

#include <cstring>
#include <memory>
#include <random>

#include "byte_planes.h"
#include "container_layout.h"
#include "df11.h"
#include "safetensors_writer.h"
#include "test_util.h"

using namespace df11;
using Bytes = std::vector<uint8_t>;

namespace {

Bytes random_bytes(uint64_t n, uint64_t seed) {
  std::mt19937_64 g(seed);
  Bytes b(n);
  for (auto& x : b) x = static_cast<uint8_t>(g() >> 56);
  return b;
}

// FORMAT.md's wording, element by element: in a group of m elements starting
// at element g0, byte j of element i is stored at group offset j * m + i.
Bytes naive_planes(const Bytes& src, uint64_t k) {
  Bytes dst(src.size());
  const uint64_t n = src.size() / k;
  for (uint64_t e = 0; e < n; ++e) {
    const uint64_t g0 = e / kPlaneGroupElems * kPlaneGroupElems;
    const uint64_t m = std::min(kPlaneGroupElems, n - g0), i = e - g0;
    for (uint64_t j = 0; j < k; ++j) dst[g0 * k + j * m + i] = src[e * k + j];
  }
  return dst;
}

}  // namespace

TEST_CASE("byte planes: the definition, and the in-place inverse", "[planes]") {
  const uint64_t G = kPlaneGroupElems;
  for (uint64_t k : {1u, 2u, 4u, 8u}) {
    for (uint64_t n : {uint64_t{0}, uint64_t{1}, G - 1, G, G + 1, 3 * G + 7}) {
      INFO("k " << k << ", elements " << n);
      const Bytes src = random_bytes(n * k, 1000 * k + n);
      Bytes planes(src.size() + 1, 0xA5);  // one guard byte past the end
      to_byte_planes(src.data(), src.size(), k, planes.data());
      CHECK(planes.back() == 0xA5);
      planes.pop_back();
      CHECK(planes == naive_planes(src, k));
      if (k == 1) CHECK(planes == src);
      from_byte_planes(planes.data(), planes.size(), k);
      CHECK(planes == src);
    }
  }
}

TEST_CASE("byte planes: ZSTD tensors of every element size across group boundaries round trip", "[planes][roundtrip]") {
  const uint64_t G = kPlaneGroupElems;
  std::mt19937_64 g(7);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  // Each compressible (so stored ZSTD) but with noisy low bytes, as weights are.
  Bytes f32(4 * (G + 100));  // > 64 KiB: zstd level 3
  for (uint64_t i = 0; i < f32.size() / 4; ++i) {
    const float v = normal(g);
    std::memcpy(&f32[4 * i], &v, 4);
  }
  auto f16 = [&](uint64_t n) {  // sign/exponent byte from a few values, low byte random
    Bytes b(2 * n);
    for (uint64_t i = 0; i < n; ++i) {
      b[2 * i] = static_cast<uint8_t>(g());
      b[2 * i + 1] = static_cast<uint8_t>(0x20 + g() % 4);
    }
    return b;
  };
  const Bytes f16_small = f16(G + 7);       // 32 KB: zstd level 19
  const Bytes f16_large = f16(2 * G + 5);   // > 64 KiB: level 3
  Bytes i64(8 * (G + 3));  // token ids: the high bytes are zero
  for (uint64_t i = 0; i < i64.size() / 8; ++i) {
    const uint64_t v = g() % 50257;
    std::memcpy(&i64[8 * i], &v, 8);
  }
  Bytes u8(G + 9);
  for (auto& b : u8) b = static_cast<uint8_t>(g() % 5);
  const std::vector<df11test::StEntry> entries = {
      {"f32", "F32", {G + 100}, f32},          {"f16_small", "F16", {G + 7}, f16_small},
      {"f16_large", "F16", {2 * G + 5}, f16_large}, {"i64", "I64", {G + 3}, i64},
      {"u8", "U8", {G + 9}, u8},
  };
  df11test::TempDir t;
  const std::string src = t.path + "/m.safetensors", packed = t.path + "/m.df11";
  df11test::write_safetensors(src, entries);
  Options o;
  o.threads = 2;
  REQUIRE(compress(src, packed, o, nullptr).message == "");

  // The writer stores exactly the planes of FORMAT.md (checked through the
  // frame itself, not through df11's own reader).
  std::unique_ptr<Reader> r;
  REQUIRE(Reader::open(packed, &r).ok());
  REQUIRE(r->tensors().size() == entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    const ReaderTensor& rt = r->tensors()[i];
    INFO(rt.name);
    REQUIRE(rt.name == entries[i].name);
    REQUIRE(rt.encoding == kZstd);
    Bytes frame(rt.orig_size);
    REQUIRE(ZSTD_decompress(frame.data(), frame.size(), rt.payload, rt.payload_size) == rt.orig_size);
    const uint64_t k = entries[i].bytes.size() / (entries[i].shape[0]);
    CHECK(frame == naive_planes(entries[i].bytes, k));
    Bytes out(rt.orig_size);
    REQUIRE(r->decode_tensor(i, out.data(), 1).ok());
    CHECK(out == entries[i].bytes);
  }
  for (unsigned threads : {1u, 2u}) {
    o.threads = threads;
    const std::string back = t.path + "/back" + std::to_string(threads) + ".safetensors";
    REQUIRE(decompress(packed, back, o, nullptr).ok());
    CHECK(df11test::read_file(back) == df11test::read_file(src));
  }
  VerifyReport vr;
  o.device = "cpu";
  REQUIRE(verify(packed, src, o, &vr).message == "");
  CHECK(vr.tensors_checked == entries.size());
}
