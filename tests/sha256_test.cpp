// SHA-256: FIPS 180-4 vectors, incremental updates, SHA-NI vs. portable.
#include <catch2/catch.hpp>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "sha256.h"

using namespace df11;

namespace {

std::string hex_of(const std::string& s) { return sha256_hex(s.data(), s.size()); }

std::string incremental_hex(const std::string& s, size_t chunk) {
  Sha256 h;
  for (size_t i = 0; i < s.size(); i += chunk) h.update(s.data() + i, std::min(chunk, s.size() - i));
  return to_hex(h.digest());
}

}  // namespace

TEST_CASE("sha256: FIPS 180-4 test vectors", "[sha256]") {
  CHECK(hex_of("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(hex_of("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(hex_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(hex_of("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
               "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu") ==
        "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  const std::string million(1000000, 'a');
  const std::string million_hex = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
  CHECK(hex_of(million) == million_hex);
  CHECK(incremental_hex(million, 1) == million_hex);
  CHECK(incremental_hex(million, 63) == million_hex);
  CHECK(incremental_hex(million, 4096 + 7) == million_hex);
  CHECK(to_hex(detail::sha256_portable_for_test(million.data(), million.size())) == million_hex);
  if (detail::sha256_shani_available())
    CHECK(to_hex(detail::sha256_shani_for_test(million.data(), million.size())) == million_hex);
}

TEST_CASE("sha256: empty updates and null pointer with size 0", "[sha256]") {
  Sha256 h;
  h.update(nullptr, 0);
  h.update("ab", 2);
  h.update(nullptr, 0);
  h.update("c", 1);
  CHECK(to_hex(h.digest()) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // digest() resets the object.
  CHECK(to_hex(h.digest()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex(nullptr, 0) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_CASE("sha256: incremental updates split at every offset equal the one-shot hash", "[sha256]") {
  std::vector<uint8_t> msg(200);
  for (size_t i = 0; i < msg.size(); ++i) msg[i] = static_cast<uint8_t>(i * 37 + 11);
  const std::string expect = sha256_hex(msg.data(), msg.size());
  REQUIRE(to_hex(detail::sha256_portable_for_test(msg.data(), msg.size())) == expect);
  for (size_t a = 0; a <= 130; ++a) {
    Sha256 h;
    h.update(msg.data(), a);
    h.update(msg.data() + a, msg.size() - a);
    INFO("split at " << a);
    CHECK(to_hex(h.digest()) == expect);
    // Three pieces: a, then up to 70 more, then the rest.
    const size_t b = std::min<size_t>(msg.size(), a + 70 - a % 3);
    Sha256 h3;
    h3.update(msg.data(), a);
    h3.update(msg.data() + a, b - a);
    h3.update(msg.data() + b, msg.size() - b);
    CHECK(to_hex(h3.digest()) == expect);
  }
}

TEST_CASE("sha256: SHA-NI path equals the portable path", "[sha256]") {
  if (!detail::sha256_shani_available()) {
    WARN("CPU has no SHA-NI; only the portable path is tested");
    return;
  }
  std::mt19937_64 rng(42);
  std::vector<uint8_t> buf(70000);
  for (auto& b : buf) b = static_cast<uint8_t>(rng());
  std::vector<size_t> lengths;
  for (size_t n = 0; n <= 300; ++n) lengths.push_back(n);
  for (size_t n : {511, 512, 513, 1000, 4095, 4096, 4097, 65535, 65536, 70000}) lengths.push_back(n);
  for (int i = 0; i < 40; ++i) lengths.push_back(rng() % buf.size());
  for (size_t n : lengths) {
    const size_t off = n < buf.size() ? rng() % (buf.size() - n + 1) : 0;  // unaligned starts
    INFO("length " << n << " offset " << off);
    REQUIRE(detail::sha256_shani_for_test(buf.data() + off, n) ==
            detail::sha256_portable_for_test(buf.data() + off, n));
  }
}
