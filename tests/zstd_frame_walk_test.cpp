// single_zstd_frame_pread: Reader::open's check that a ZSTD payload (and the
// meta block) is exactly one zstd frame, walking its block headers with pread
// (through the mapping, ZSTD_findFrameCompressedSize held a large payload in
// memory). zstd's own ZSTD_findFrameCompressedSize is the oracle: they must
// agree on frames of every header layout and on every kind of bad one.
#include <zstd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <vector>

#include "file_io.h"
#include "test_util.h"
#include "zstd_payload.h"

using namespace df11;

namespace {

std::vector<uint8_t> frame(const std::vector<uint8_t>& src, int level, bool checksum, bool content_size) {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, checksum ? 1 : 0);
  ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, content_size ? 1 : 0);
  std::vector<uint8_t> out(ZSTD_compressBound(src.size()));
  const size_t n = ZSTD_compress2(c, out.data(), out.size(), src.data(), src.size());
  ZSTD_freeCCtx(c);
  REQUIRE_FALSE(ZSTD_isError(n));
  out.resize(n);
  return out;
}

// Both answers for `bytes` placed at an odd offset of a file.
void agree(const std::vector<uint8_t>& bytes, bool want, bool zstd_too = true) {
  df11test::TempDir t;
  std::vector<uint8_t> file(777, 0xAB);
  file.insert(file.end(), bytes.begin(), bytes.end());
  file.insert(file.end(), 333, 0xCD);
  df11test::write_file(t.path + "/f", file);
  MappedFile f;
  REQUIRE(f.open(t.path + "/f").ok());
  const size_t z = ZSTD_findFrameCompressedSize(bytes.data(), bytes.size());
  const bool zstd_says = !ZSTD_isError(z) && z == bytes.size();
  if (zstd_too) CHECK(zstd_says == want);
  bool one = !want;
  CHECK(single_zstd_frame_pread(f, 777, bytes.size(), &one).ok());
  CHECK(one == want);
}

}  // namespace

TEST_CASE("zstd frame walk: agrees with ZSTD_findFrameCompressedSize", "[zstd_walk]") {
  // Compressible data of 3 MiB: many 128 KiB blocks, compressed, raw and RLE.
  std::vector<uint8_t> src(3 << 20);
  uint32_t x = 1;
  for (size_t i = 0; i < src.size(); ++i) {
    x = x * 1664525u + 1013904223u;
    src[i] = i % 300000 < 100000 ? 0 : static_cast<uint8_t>((x >> 24) & (i % 3 ? 0x0F : 0xFF));
  }
  for (const bool checksum : {false, true})
    for (const bool content_size : {false, true})
      for (const int level : {1, 3, 19}) {
        INFO("checksum " << checksum << ", content size " << content_size << ", level " << level);
        const std::vector<uint8_t> good = frame(src, level, checksum, content_size);
        agree(good, true);
        std::vector<uint8_t> extra = good;  // a byte after the frame
        extra.push_back(0);
        agree(extra, false);
        agree(std::vector<uint8_t>(good.begin(), good.end() - 1), false);  // one byte short
        std::vector<uint8_t> two = good;  // a second frame
        two.insert(two.end(), good.begin(), good.end());
        agree(two, false);
      }
  // A small single-segment frame (no window byte; a 2-byte content size).
  const std::vector<uint8_t> small(1000, 'a');
  const std::vector<uint8_t> tiny = frame(small, 3, false, true);
  REQUIRE(((tiny[4] >> 5) & 1) == 1);
  agree(tiny, true);
  // A window descriptor past zstd's largest window (exponent 22: 2^32).
  std::vector<uint8_t> wide = frame(src, 1, false, true);
  REQUIRE(((wide[4] >> 5) & 1) == 0);
  wide[5] = static_cast<uint8_t>(22 << 3);
  agree(wide, false);
  // The 1-byte content size of a single-segment frame of at most 255 bytes.
  const std::vector<uint8_t> tinier = frame(std::vector<uint8_t>(200, 'b'), 3, true, true);
  REQUIRE((tinier[4] >> 6) == 0);
  REQUIRE(((tinier[4] >> 5) & 1) == 1);
  agree(tinier, true);
  // A reserved block type (3) in the first block header.
  std::vector<uint8_t> bad = frame(src, 1, false, true);
  const size_t header = 4 + 1 + 1 + 4;  // magic, descriptor, window, 4-byte content size (3 MiB)
  REQUIRE((bad[4] >> 6) == 2);
  bad[header] |= 0x06;
  agree(bad, false);
  // A skippable frame alone: a frame to zstd, but none that holds a tensor
  // (Reader::open's content-size check refuses it before either walk).
  agree({0x50, 0x2A, 0x4D, 0x18, 4, 0, 0, 0, 'j', 'u', 'n', 'k'}, false, false);
  // Bytes that are not a frame.
  agree(std::vector<uint8_t>(5000, 0x11), false);
}
