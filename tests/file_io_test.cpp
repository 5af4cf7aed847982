// AtomicOutputFile's mapped mode (reserve_mapped): several threads storing
// pieces into one output, bounds, cleanup; and decompress, which uses it above
// one thread, byte-identical at -T1 and -T4.
#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

#include "df11.h"
#include "file_io.h"
#include "safetensors_writer.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace df11;

namespace {

// Deterministic bytes that differ from one offset to the next.
std::vector<uint8_t> pattern(uint64_t n) {
  std::vector<uint8_t> b(n);
  for (uint64_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>((i * 131 + (i >> 12) * 7 + 3) & 0xff);
  return b;
}

bool has_temporaries(const std::string& dir) {
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find("df11tmp") != std::string::npos) return true;
  return false;
}

void note_mode(const AtomicOutputFile& of) {
  // A file system without fallocate keeps pwrite mode: the results must hold either way.
  if (!of.mapped()) WARN("the temp directory's file system cannot preallocate: tested in pwrite mode");
}

}  // namespace

TEST_CASE("output file: pieces from several threads into the mapping give the exact bytes", "[file_io][mapped]") {
  df11test::TempDir tmp;
  const std::string out = tmp.path + "/o.bin";
  // Not a multiple of the page size; pieces of odd sizes share edge pages
  // between threads (each releases the pages it wrote).
  const uint64_t head = 1234, size = (uint64_t{8} << 20) + 4321;
  const std::vector<uint8_t> want = pattern(size);
  AtomicOutputFile of;
  REQUIRE(of.open(out, false).ok());
  REQUIRE(of.reserve_mapped(size).ok());
  note_mode(of);
  REQUIRE(of.write(want.data(), head).ok());  // the safetensors header, as decompress writes it
  CHECK(of.offset() == head);
  std::vector<std::pair<uint64_t, uint64_t>> pieces;  // offset, size
  for (uint64_t at = head, k = 0; at < size; ++k) {
    const uint64_t n = std::min<uint64_t>(size - at, 50000 + 3331 * (k % 17));
    pieces.push_back({at, n});
    at += n;
  }
  constexpr unsigned kThreads = 4;
  std::vector<Status> status(kThreads);
  std::vector<std::thread> workers;
  for (unsigned t = 0; t < kThreads; ++t)
    workers.emplace_back([&, t] {
      // Back to front: neighbours in the file are written by different threads at different times.
      for (size_t i = pieces.size() - 1 - t; i < pieces.size() && status[t].ok(); i -= kThreads)
        status[t] = of.pwrite(want.data() + pieces[i].first, pieces[i].second, pieces[i].first);
    });
  for (auto& w : workers) w.join();
  for (const Status& s : status) CHECK(s.message == "");
  REQUIRE(of.commit().ok());
  CHECK_FALSE(has_temporaries(tmp.path));
  CHECK(df11test::read_file(out) == want);
}

TEST_CASE("output file: a write past the reserved size is an error, not a crash", "[file_io][mapped]") {
  df11test::TempDir tmp;
  const std::string out = tmp.path + "/o.bin";
  const std::vector<uint8_t> bytes = pattern(20000);
  AtomicOutputFile of;
  REQUIRE(of.open(out, false).ok());
  REQUIRE(of.reserve_mapped(10000).ok());
  note_mode(of);
  if (of.mapped()) {
    CHECK(of.pwrite(bytes.data(), 100, 9950).code == Error::Io);
    CHECK(of.pwrite(bytes.data(), 1, 10000).code == Error::Io);
    CHECK(of.pwrite(bytes.data(), 10, UINT64_MAX - 4).code == Error::Io);  // offset + size wraps
    CHECK(of.pwrite(bytes.data(), 20000, 0).code == Error::Io);
    of.seek(9999);
    CHECK(of.write(bytes.data(), 2).code == Error::Io);
    CHECK(of.offset() == 9999);
    CHECK(of.write(bytes.data(), 1).ok());  // the last byte still fits
    CHECK(of.pwrite(bytes.data(), 50, 9950).ok());
  }
  of.discard();
  CHECK_FALSE(fs::exists(out));
  CHECK_FALSE(has_temporaries(tmp.path));
}

TEST_CASE("output file: a mapped output discarded or abandoned leaves nothing", "[file_io][mapped]") {
  df11test::TempDir tmp;
  const std::string out = tmp.path + "/o.bin";
  const std::vector<uint8_t> bytes = pattern(1 << 20);
  {
    AtomicOutputFile of;
    REQUIRE(of.open(out, false).ok());
    REQUIRE(of.reserve_mapped(bytes.size()).ok());
    note_mode(of);
    REQUIRE(of.pwrite(bytes.data(), bytes.size() / 2, 0).ok());
    REQUIRE(fs::exists(of.temp_path()));
    of.discard();
    CHECK_FALSE(has_temporaries(tmp.path));
    // Reusable after discard: open again, destroyed without commit.
    REQUIRE(of.open(out, false).ok());
    REQUIRE(of.reserve_mapped(bytes.size()).ok());
    REQUIRE(of.pwrite_behind(bytes.data(), bytes.size(), 0).ok());  // through the writer thread, into the mapping
    REQUIRE(of.flush().ok());
  }
  CHECK_FALSE(fs::exists(out));
  CHECK_FALSE(has_temporaries(tmp.path));
}

TEST_CASE("output file: reserve_mapped(0) keeps pwrite mode", "[file_io][mapped]") {
  df11test::TempDir tmp;
  AtomicOutputFile of;
  REQUIRE(of.open(tmp.path + "/o.bin", false).ok());
  REQUIRE(of.reserve_mapped(0).ok());
  CHECK_FALSE(of.mapped());
  const std::vector<uint8_t> bytes = pattern(5000);
  REQUIRE(of.write(bytes.data(), bytes.size()).ok());
  REQUIRE(of.commit().ok());
  CHECK(df11test::read_file(tmp.path + "/o.bin") == bytes);
}

TEST_CASE("decompress: -T1 (writer thread) and -T4 (mapped output) restore byte-identical files",
          "[file_io][mapped][roundtrip]") {
  df11test::TempDir tmp;
  const std::string in = tmp.path + "/m.safetensors";
  // Big enough (> 2^21 weights) for several windows per tensor; an empty
  // tensor and raw F32 bytes in between.
  const std::vector<uint16_t> w = df11test::gaussian_bf16(3u << 20, 0.02, 7);
  std::vector<uint8_t> big(w.size() * 2);
  std::memcpy(big.data(), w.data(), big.size());
  df11test::write_safetensors(in, {{"a", "BF16", {3, 1 << 20}, big},
                                   {"e", "BF16", {0}, {}},
                                   {"n", "F32", {1001}, pattern(4004)},
                                   {"b", "BF16", {1000}, std::vector<uint8_t>(big.begin(), big.begin() + 2000)}});
  Options o;
  o.threads = 2;
  REQUIRE(compress(in, tmp.path + "/m.df11", o, nullptr).ok());
  const std::vector<uint8_t> want = df11test::read_file(in);
  for (unsigned threads : {1u, 4u}) {
    INFO("-T" << threads);
    o.threads = threads;
    const std::string back = tmp.path + "/back" + std::to_string(threads) + ".safetensors";
    REQUIRE(decompress(tmp.path + "/m.df11", back, o, nullptr).message == "");
    CHECK(df11test::read_file(back) == want);
  }
  CHECK_FALSE(has_temporaries(tmp.path));
}
