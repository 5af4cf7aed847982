// Resource bounds: hostile sizes in a safetensors header or a .df11 header /
// index must not make df11 allocate more than the file's size warrants. The
// CLI runs in a child under `ulimit -v` (2 GB of address space) and must end
// with a clean error exit and a one-line message, not a crash or a kill.
// Under AddressSanitizer or ThreadSanitizer (scripts/sanitize.sh) `ulimit -v`
// cannot be used (the shadow memory alone is terabytes of address space); the
// sanitizer's own limits take its place: any single allocation above 2 GB, or
// RSS above 3 GB, is an error.
#include <catch2/catch.hpp>
#include <sys/wait.h>
#include <zstd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "container_layout.h"
#include "df11.h"
#include "safetensors_writer.h"
#include "test_util.h"
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace fs = std::filesystem;
using namespace df11;
using Bytes = std::vector<uint8_t>;

namespace {

struct Run {
  int code = -1;
  std::string err;
};

// `df11 ARGS` in DIR under a 2 GB address-space limit.
Run limited(const std::string& args, const std::string& dir) {
  const std::string bin = std::string(DF11_BINARY_DIR) + "/df11";
#if defined(DF11_TEST_ASAN)
  const std::string limit =
      "ASAN_OPTIONS=detect_leaks=0:max_allocation_size_mb=2000:hard_rss_limit_mb=3000:allocator_may_return_null=0; "
      "export ASAN_OPTIONS; ";
#elif defined(DF11_TEST_TSAN)
  // The same sanitizer_common limits; halt_on_error keeps a race fatal here.
  const std::string limit =
      "TSAN_OPTIONS=halt_on_error=1:max_allocation_size_mb=2000:hard_rss_limit_mb=3000:allocator_may_return_null=0; "
      "export TSAN_OPTIONS; ";
#else
  const std::string limit = "ulimit -v 2000000 && ";
#endif
  const std::string cmd = "cd '" + dir + "' && " + limit + "exec '" + bin + "' " + args + " >/dev/null 2>.err </dev/null";
  const std::string sh = "sh -c \"" + cmd + "\"";
  const int st = std::system(sh.c_str());
  Run r;
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  const Bytes e = df11test::read_file(dir + "/.err");
  r.err.assign(e.begin(), e.end());
  fs::remove(dir + "/.err");
  return r;
}

Bytes with_json(const std::string& json, uint64_t data_size) {
  Bytes f(8 + json.size() + data_size, 0);
  const uint64_t n = json.size();
  std::memcpy(f.data(), &n, 8);
  std::memcpy(f.data() + 8, json.data(), json.size());
  return f;
}

void expect_clean(const Run& r, int code, const std::string& error) {
  INFO("stderr: " << r.err.substr(0, 400));
  CHECK(r.code == code);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK(r.err.find("(" + error + ")") != std::string::npos);
  CHECK(r.err.size() < 1000);  // names in messages are cut
}

void no_output(const std::string& dir, const std::string& out) {
  CHECK_FALSE(fs::exists(dir + "/" + out));
  CHECK(df11test::temporaries_in(dir).empty());
}

uint64_t xxh_header(const Bytes& b, uint64_t meta_offset) {
  XXH64_state_t* st = XXH64_createState();
  XXH64_reset(st, 0);
  XXH64_update(st, b.data(), kChecksumOffset);
  XXH64_update(st, b.data() + meta_offset, b.size() - meta_offset);
  const uint64_t h = XXH64_digest(st);
  XXH64_freeState(st);
  return h;
}

// A zstd frame that declares `content_size` bytes but holds one raw block of
// `payload` (so it is tiny whatever it claims).
Bytes lying_frame(uint64_t content_size, const Bytes& payload) {
  Bytes f = {0x28, 0xB5, 0x2F, 0xFD, 0xE0};  // magic; FHD: 8-byte FCS, single segment
  for (int k = 0; k < 8; ++k) f.push_back(static_cast<uint8_t>(content_size >> (8 * k)));
  const uint32_t block = 1u | (static_cast<uint32_t>(payload.size()) << 3);  // last, raw
  f.push_back(block & 0xFF);
  f.push_back((block >> 8) & 0xFF);
  f.push_back((block >> 16) & 0xFF);
  f.insert(f.end(), payload.begin(), payload.end());
  return f;
}

// A container for `json` (tensors given as records) with a valid header checksum.
Bytes make_container(const std::string& json, uint64_t original_size, const std::vector<Record>& recs,
                     const Bytes& payloads, const Bytes* meta_override = nullptr, uint64_t claimed_count = UINT64_MAX) {
  Bytes b(kFixedHeaderSize + payloads.size(), 0);
  if (!payloads.empty()) std::memcpy(b.data() + kFixedHeaderSize, payloads.data(), payloads.size());
  while (b.size() % 64) b.push_back(0);
  const uint64_t meta_offset = b.size();
  Bytes meta(json.begin(), json.end());
  for (Record r : recs) {
    if (r.encoding == kZstd && r.payload_offset >= kFixedHeaderSize)
      r.payload_xxh64 = XXH64(b.data() + r.payload_offset, r.payload_size, 0);
    uint8_t raw[kRecordSize];
    r.store(raw);
    meta.insert(meta.end(), raw, raw + kRecordSize);
  }
  Bytes z;
  if (meta_override) {
    z = *meta_override;
  } else {
    z.resize(ZSTD_compressBound(meta.size()));
    z.resize(ZSTD_compress(z.data(), z.size(), meta.data(), meta.size(), 3));
  }
  b.insert(b.end(), z.begin(), z.end());
  FixedHeader h;
  h.file_size = b.size();
  h.original_size = original_size;
  h.json_size = json.size();
  h.meta_offset = meta_offset;
  h.meta_size = z.size();
  h.tensor_count = claimed_count == UINT64_MAX ? recs.size() : claimed_count;
  h.chunk_bits = kChunkBits;
  h.block_threads = kBlockThreads;
  h.max_code_length = kMaxCodeLength;
  h.alignment = kAlignment;
  h.store(b.data());
  put_u64(b.data() + kChecksumOffset, xxh_header(b, meta_offset));
  return b;
}

}  // namespace

TEST_CASE("resource bounds: safetensors header claiming 10^15 elements", "[resources]") {
  df11test::TempDir t;
  const std::string json = "{\"w\":{\"dtype\":\"BF16\",\"shape\":[1000000000000000],\"data_offsets\":[0,2000000000000000]}}";
  df11test::write_file(t.path + "/m.safetensors", with_json(json, 64));
  expect_clean(limited("compress m.safetensors", t.path), 3, "StOffsetsOutOfBounds");
  no_output(t.path, "m.df11");
  // Shape and offsets that agree and overflow 2^64 when multiplied.
  const std::string huge = "{\"w\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}";
  df11test::write_file(t.path + "/h.safetensors", with_json(huge, 0));
  expect_clean(limited("compress h.safetensors", t.path), 3, "StSizeMismatch");
  // A header length of 2^63, and one that runs past the end of a small file.
  Bytes big_len(16, 0);
  big_len[7] = 0x80;
  df11test::write_file(t.path + "/l.safetensors", big_len);
  expect_clean(limited("compress l.safetensors", t.path), 3, "StHeaderTooLarge");
  Bytes past(64, ' ');
  const uint64_t n = 99'000'000;
  std::memcpy(past.data(), &n, 8);
  df11test::write_file(t.path + "/p.safetensors", past);
  expect_clean(limited("compress p.safetensors", t.path), 3, "StHeaderPastEnd");
}

TEST_CASE("resource bounds: a million tensors", "[resources]") {
  df11test::TempDir t;
  // 1,000,000 one-byte tensors, and a data section one byte short.
  std::string json = "{";
  json.reserve(60'000'000);
  char entry[128];
  for (uint64_t i = 0; i < 1'000'000; ++i) {
    const int n = std::snprintf(entry, sizeof entry, "%s\"t%07llu\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[%llu,%llu]}",
                                i ? "," : "", static_cast<unsigned long long>(i), static_cast<unsigned long long>(i),
                                static_cast<unsigned long long>(i + 1));
    json.append(entry, static_cast<size_t>(n));
  }
  json += "}";
  df11test::write_file(t.path + "/m.safetensors", with_json(json, 1'000'000 - 1));
  expect_clean(limited("compress m.safetensors", t.path), 3, "StOffsetsOutOfBounds");
  no_output(t.path, "m.df11");
}

TEST_CASE("resource bounds: a 99 MB name list", "[resources]") {
  df11test::TempDir t;
  // One tensor whose name is 99,000,000 bytes, then a dtype that does not exist.
  std::string json = "{\"";
  json.append(99'000'000, 'n');
  json += "\":{\"dtype\":\"BF17\",\"shape\":[1],\"data_offsets\":[0,2]}}";
  df11test::write_file(t.path + "/m.safetensors", with_json(json, 2));
  const Run r = limited("compress m.safetensors", t.path);
  expect_clean(r, 3, "StUnknownDtype");
  no_output(t.path, "m.df11");
}

TEST_CASE("resource bounds: a .df11 whose header claims a 9.6 GB meta block", "[resources]") {
  df11test::TempDir t;
  // json_size 100,000,000 and tensor_count 100,000,000 (both within their
  // rules), so the meta block should hold 9.7 GB; the zstd frame says so too
  // but is a few bytes long.
  const uint64_t json_size = 100'000'000, count = 100'000'000;
  const Bytes frame = lying_frame(json_size + count * kRecordSize, Bytes{'{', '}'});
  Bytes b(kFixedHeaderSize, 0);
  b.insert(b.end(), frame.begin(), frame.end());
  FixedHeader h;
  h.file_size = b.size();
  h.original_size = 8 + json_size;
  h.json_size = json_size;
  h.meta_offset = kFixedHeaderSize;
  h.meta_size = frame.size();
  h.tensor_count = count;
  h.chunk_bits = kChunkBits;
  h.block_threads = kBlockThreads;
  h.max_code_length = kMaxCodeLength;
  h.alignment = kAlignment;
  h.store(b.data());
  put_u64(b.data() + kChecksumOffset, xxh_header(b, kFixedHeaderSize));
  df11test::write_file(t.path + "/m.df11", b);
  expect_clean(limited("decompress m.df11 -o out.safetensors", t.path), 1, "Df11BadHeaderField");
  expect_clean(limited("verify m.df11 --device cpu", t.path), 1, "Df11BadHeaderField");
  expect_clean(limited("info m.df11", t.path), 1, "Df11BadHeaderField");
  no_output(t.path, "out.safetensors");
}

TEST_CASE("resource bounds: a .df11 whose index claims a 10^15-byte tensor", "[resources]") {
  df11test::TempDir t;
  const uint64_t size = 1'000'000'000'000'000;
  std::string json = "{\"w\":{\"dtype\":\"U8\",\"shape\":[" + std::to_string(size) + "],\"data_offsets\":[0," +
                     std::to_string(size) + "]}}";
  // A ZSTD record whose frame declares 10^15 bytes and holds 4.
  const Bytes frame = lying_frame(size, Bytes{1, 2, 3, 4});
  Record r;
  r.encoding = kZstd;
  r.orig_offset = 0;
  r.orig_size = size;
  r.payload_offset = kFixedHeaderSize;
  r.payload_size = frame.size();
  const Bytes b = make_container(json, 8 + json.size() + size, {r}, frame);
  df11test::write_file(t.path + "/m.df11", b);
  expect_clean(limited("decompress m.df11 -o out.safetensors", t.path), 1, "Df11ZstdCorrupt");
  expect_clean(limited("verify m.df11 --device cpu", t.path), 1, "Df11ZstdCorrupt");
  no_output(t.path, "out.safetensors");
  // The same through the library: rejected at open, before any allocation.
  std::unique_ptr<Reader> rd;
  const Status s = Reader::open(t.path + "/m.df11", &rd);
  CHECK(s.code == Error::Df11ZstdCorrupt);
}

#ifndef DF11_TEST_SHADOW_MEMORY  // the sanitizers abort on a failed operator new instead of throwing
TEST_CASE("resource bounds: a real 3 GiB zstd tensor under a 2 GB limit fails cleanly", "[resources]") {
  // 24,576 RLE blocks of 128 KiB: a genuine 98 KB frame of 3 GiB of zeros,
  // within what zstd can express, so the reader accepts it. It is a
  // single-segment frame (its window is the whole 3 GiB); the streaming
  // decoder refuses windows over zstd's 128 MiB default and the CLI reports
  // it (Io, exit 3) instead of allocating or aborting.
  df11test::TempDir t;
  const uint64_t size = uint64_t{3} << 30;
  Bytes frame = {0x28, 0xB5, 0x2F, 0xFD, 0xE0};
  for (int k = 0; k < 8; ++k) frame.push_back(static_cast<uint8_t>(size >> (8 * k)));
  const uint64_t blocks = size / (128 << 10);
  for (uint64_t i = 0; i < blocks; ++i) {
    const uint32_t h = (i + 1 == blocks ? 1u : 0u) | (1u << 1) | ((128u << 10) << 3);  // RLE, 128 KiB
    frame.insert(frame.end(), {static_cast<uint8_t>(h), static_cast<uint8_t>(h >> 8), static_cast<uint8_t>(h >> 16), 0});
  }
  const std::string json = "{\"z\":{\"dtype\":\"U8\",\"shape\":[" + std::to_string(size) + "],\"data_offsets\":[0," +
                           std::to_string(size) + "]}}";
  Record r;
  r.encoding = kZstd;
  r.orig_size = size;
  r.payload_offset = kFixedHeaderSize;
  r.payload_size = frame.size();
  df11test::write_file(t.path + "/m.df11", make_container(json, 8 + json.size() + size, {r}, frame));
  std::unique_ptr<Reader> rd;
  REQUIRE(Reader::open(t.path + "/m.df11", &rd).ok());
  expect_clean(limited("decompress m.df11 -o out.safetensors", t.path), 3, "Io");
  no_output(t.path, "out.safetensors");
  expect_clean(limited("verify m.df11 --device cpu", t.path), 3, "Io");
}
#endif

TEST_CASE("resource bounds: a damaged window byte of a large zstd frame is corrupt data, not out of memory",
          "[resources]") {
  // A ZSTD tensor large enough to be decoded as a stream (12 MB of F32),
  // whose frame header's window descriptor is raised to 256 MiB: zstd then
  // refuses the frame for its window, which a genuine frame (the test above)
  // also gets. The stored frame's XXH64 tells them apart: this is damage,
  // Df11ZstdCorrupt, exit 1 (was: Io, exit 3, "out of memory").
  df11test::TempDir t;
  const uint64_t n = 3'000'000;
  std::vector<float> v(n);
  for (uint64_t i = 0; i < n; ++i) v[i] = static_cast<float>(i % 1000) * 0.001f;
  df11test::StEntry e{"w", "F32", {n}, Bytes(n * 4)};
  std::memcpy(e.bytes.data(), v.data(), n * 4);
  df11test::write_safetensors(t.path + "/m.safetensors", {e});
  REQUIRE(compress(t.path + "/m.safetensors", t.path + "/m.df11", Options(), nullptr).ok());
  Bytes b = df11test::read_file(t.path + "/m.df11");
  // The one tensor's payload starts at 128: the zstd magic, the frame header
  // descriptor, then (not single-segment) the window descriptor.
  REQUIRE(b.size() > 140);
  REQUIRE(b[128] == 0x28);
  REQUIRE(b[131] == 0xFD);
  REQUIRE((b[132] & 0x20) == 0);
  b[133] = 0x90;  // window 2^(10 + 18) = 256 MiB
  df11test::write_file(t.path + "/m.df11", b);
  expect_clean(limited("decompress m.df11 -o out.safetensors", t.path), 1, "Df11ZstdCorrupt");
  no_output(t.path, "out.safetensors");
  const Run vr = limited("verify m.df11 --device cpu", t.path);  // a FAILED line, then the summary
  INFO(vr.err);
  CHECK(vr.code == 1);
  CHECK(vr.err.find("Df11ZstdCorrupt") != std::string::npos);
  CHECK(vr.err.find("(VerifyMismatch)") != std::string::npos);
  std::unique_ptr<Reader> rd;
  REQUIRE(Reader::open(t.path + "/m.df11", &rd).ok());
  std::vector<uint8_t> out(n * 4);
  CHECK(rd->decode_tensor(0, out.data(), 1).code == Error::Df11ZstdCorrupt);
}
