// Replays every seed and regression input of tests/fuzz/corpus/<target>/
// through the fuzz entry points, without libFuzzer: the ordinary suite (g++,
// and scripts/sanitize.sh under ASan/UBSan) runs what the fuzzers found.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "fuzz_targets.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace {

using Entry = int (*)(const uint8_t*, size_t);

size_t replay(const std::string& target, Entry entry) {
  const fs::path dir = fs::path(DF11_FUZZ_CORPUS_DIR) / target;
  REQUIRE(fs::is_directory(dir));
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& p : files) {
    INFO("corpus file " << p.string());
    const std::vector<uint8_t> b = df11test::read_file(p.string());
    // The fuzz entry aborts on a broken invariant; Catch reports the file.
    CHECK(entry(b.data(), b.size()) == 0);
  }
  return files.size();
}

}  // namespace

TEST_CASE("fuzz corpus: safetensors_header", "[fuzz]") {
  CHECK(replay("safetensors_header", df11_fuzz_safetensors_header) >= 5);
}

TEST_CASE("fuzz corpus: container", "[fuzz]") { CHECK(replay("container", df11_fuzz_container) >= 5); }

TEST_CASE("fuzz corpus: huffman", "[fuzz]") { CHECK(replay("huffman", df11_fuzz_huffman) >= 5); }

TEST_CASE("fuzz corpus: roundtrip", "[fuzz]") { CHECK(replay("roundtrip", df11_fuzz_roundtrip) >= 5); }

TEST_CASE("fuzz entries: empty and tiny inputs", "[fuzz]") {
  const uint8_t bytes[16] = {0x89, 'D', 'F', '1', '1', '\r', '\n', 0x1A, 1, 0, 0, 0, 0x80, 0, 0, 0};
  for (size_t n = 0; n <= sizeof bytes; ++n) {
    CHECK(df11_fuzz_safetensors_header(bytes, n) == 0);
    CHECK(df11_fuzz_container(bytes, n) == 0);
    CHECK(df11_fuzz_huffman(bytes, n) == 0);
    CHECK(df11_fuzz_roundtrip(bytes, n) == 0);
  }
}

TEST_CASE("fuzz entries: roundtrip of tiled weights (multi-threaded encoder split)", "[fuzz]") {
  // flags 0xFF: 300 weights tiled past 2^21 so that encode_bf16 with 2 threads
  // really uses 2 segments (kept out of the seed corpus: slow under ASan).
  const std::vector<uint16_t> w = df11test::gaussian_bf16(300, 0.01, 9);
  std::vector<uint8_t> in(1 + 2 * w.size());
  in[0] = 0xFF;
  std::memcpy(in.data() + 1, w.data(), 2 * w.size());
  CHECK(df11_fuzz_roundtrip(in.data(), in.size()) == 0);
}
