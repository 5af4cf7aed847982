// SHA-256 (libcrypto wrapper): FIPS 180-4 vectors, incremental updates.
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
  // The same message hashed by Python's hashlib, an independent implementation.
  REQUIRE(expect == "5e48d64839a8bff5e2471507af6a49f9990817df437857f4a2007df41266e1b5");
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

TEST_CASE("sha256: unaligned starts and lengths around block sizes, one-shot vs. byte pieces", "[sha256]") {
  std::mt19937_64 rng(42);
  std::vector<uint8_t> buf(70000);
  for (auto& b : buf) b = static_cast<uint8_t>(rng());
  std::vector<size_t> lengths;
  for (size_t n = 0; n <= 130; ++n) lengths.push_back(n);
  for (size_t n : {511, 512, 513, 4095, 4096, 4097, 65535, 65536, 69000}) lengths.push_back(n);
  for (size_t n : lengths) {
    const size_t off = n < buf.size() ? rng() % (buf.size() - n + 1) : 0;  // unaligned starts
    INFO("length " << n << " offset " << off);
    Sha256 h;
    for (size_t i = 0; i < n; i += 97) h.update(buf.data() + off + i, std::min<size_t>(97, n - i));
    REQUIRE(to_hex(h.digest()) == sha256_hex(buf.data() + off, n));
  }
}

TEST_CASE("sha256: a message over 4 GiB in one update is hashed whole", "[sha256][slow]") {
  // 2^32 + 3 zero bytes: an update larger than 32 bits must not be truncated.
  const uint64_t n = (uint64_t{1} << 32) + 3;
  std::vector<uint8_t> zeros(n, 0);
  Sha256 one, pieces;
  one.update(zeros.data(), n);
  for (uint64_t i = 0; i < n; i += uint64_t{1} << 28) pieces.update(zeros.data() + i, std::min<uint64_t>(uint64_t{1} << 28, n - i));
  CHECK(one.digest() == pieces.digest());
}
