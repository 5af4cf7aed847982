#include "zstd_payload.h"

#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>

#include "byte_planes.h"
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace df11 {

namespace {
// Elements per window: whole plane groups, so that planing a window equals
// planing those groups of the whole tensor.
constexpr uint64_t kWindowElems = 64 * kPlaneGroupElems;  // 1M elements
constexpr uint64_t kReadPiece = uint64_t{1} << 20;

struct Xxh {
  XXH64_state_t s;
  Xxh() { XXH64_reset(&s, 0); }
  void add(const void* p, uint64_t n) { XXH64_update(&s, p, n); }
  uint64_t digest() { return XXH64_digest(&s); }
};
}  // namespace

ZstdPayloadWriter::ZstdPayloadWriter() : cctx_(ZSTD_createCCtx()) {}
ZstdPayloadWriter::~ZstdPayloadWriter() { ZSTD_freeCCtx(static_cast<ZSTD_CCtx*>(cctx_)); }

Status ZstdPayloadWriter::write(const MappedFile& in, uint64_t src_offset, uint64_t size, uint64_t k, int level,
                                AtomicOutputFile& out, bool* smaller, uint64_t* frame_size, uint64_t* frame_xxh64,
                                uint64_t* orig_xxh64) {
  ZSTD_CCtx* cctx = static_cast<ZSTD_CCtx*>(cctx_);
  if (!cctx) return make_status(Error::Io, in.path(), "zstd: out of memory");
  auto zfail = [&](size_t code) { return make_status(Error::Io, in.path(), std::string("zstd failed: ") + ZSTD_getErrorName(code)); };
  ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
  size_t rc = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
  if (!ZSTD_isError(rc)) rc = ZSTD_CCtx_setPledgedSrcSize(cctx, size);
  if (ZSTD_isError(rc)) return zfail(rc);
  k = std::max<uint64_t>(1, k);
  const uint64_t window = kWindowElems * k;
  in_.resize(std::min(window, size));
  if (k > 1) planes_.resize(in_.size());
  zout_.resize(ZSTD_CStreamOutSize());
  Xxh orig, frame;
  const uint64_t start = out.offset();
  uint64_t written = 0;
  *smaller = true;
  Status s;
  for (uint64_t off = 0; off < size && *smaller;) {
    if (interrupted()) return interrupted_status(in.path());
    const uint64_t n = std::min(window, size - off);
    s = in.read(src_offset + off, n, in_.data());
    if (!s.ok()) return s;
    orig.add(in_.data(), n);
    const uint8_t* src = in_.data();
    if (k > 1) {
      to_byte_planes(in_.data(), n, k, planes_.data());
      src = planes_.data();
    }
    off += n;
    const bool last = off == size;
    ZSTD_inBuffer ib{src, n, 0};
    for (;;) {
      ZSTD_outBuffer ob{zout_.data(), zout_.size(), 0};
      const size_t left = ZSTD_compressStream2(cctx, &ob, &ib, last ? ZSTD_e_end : ZSTD_e_continue);
      if (ZSTD_isError(left)) return zfail(left);
      if (ob.pos) {
        // Not smaller than RAW: stop before writing past where RAW would end.
        if (written + ob.pos >= size) {
          *smaller = false;
          break;
        }
        frame.add(zout_.data(), ob.pos);
        s = out.write(zout_.data(), ob.pos);
        if (!s.ok()) return s;
        written += ob.pos;
      }
      if (last ? left == 0 : ib.pos == ib.size) break;
    }
  }
  if (!*smaller) {
    // Keep reading for the tensor's hash is the caller's job (it rewrites RAW).
    out.seek(start);
    return Status::Ok();
  }
  *frame_size = written;
  *frame_xxh64 = frame.digest();
  *orig_xxh64 = orig.digest();
  return Status::Ok();
}

ZstdPayloadReader::ZstdPayloadReader() : dctx_(ZSTD_createDCtx()) {}
ZstdPayloadReader::~ZstdPayloadReader() { ZSTD_freeDCtx(static_cast<ZSTD_DCtx*>(dctx_)); }

Status ZstdPayloadReader::read(const MappedFile& file, uint64_t offset, uint64_t frame_size, uint64_t frame_xxh64,
                               uint64_t size, uint64_t k, const Sink& sink, std::string* what) {
  ZSTD_DCtx* dctx = static_cast<ZSTD_DCtx*>(dctx_);
  if (!dctx) return make_status(Error::Io, file.path(), "zstd: out of memory");
  ZSTD_DCtx_reset(dctx, ZSTD_reset_session_and_parameters);
  k = std::max<uint64_t>(1, k);
  const uint64_t window = kWindowElems * k;
  out_.resize(std::min(window, std::max<uint64_t>(size, 1)));
  in_.resize(std::min(kReadPiece, std::max<uint64_t>(frame_size, 1)));
  auto corrupt = [&](const std::string& w) {
    *what = w;
    return Status{Error::Df11ZstdCorrupt, w};
  };
  Xxh frame;
  uint64_t read = 0, produced = 0, filled = 0;
  size_t left = 1;  // ZSTD_decompressStream's "more to come" hint; 0 once the frame is complete
  // Hands the filled window on: whole plane groups (or the tensor's tail) are
  // put back in element order in place first.
  auto flush = [&]() -> Status {
    if (!filled) return Status::Ok();
    from_byte_planes(out_.data(), filled, k);
    Status s = sink(produced - filled, out_.data(), filled);
    filled = 0;
    return s;
  };
  while (read < frame_size) {
    if (interrupted()) return interrupted_status(file.path());
    const uint64_t n = std::min(kReadPiece, frame_size - read);
    Status s = file.read(offset + read, n, in_.data());
    if (!s.ok()) return s;
    frame.add(in_.data(), n);
    read += n;
    ZSTD_inBuffer ib{in_.data(), n, 0};
    while (ib.pos < ib.size) {
      if (left == 0) return corrupt("bytes after the end of the zstd frame");
      // The output window never takes more than the tensor's remaining bytes;
      // once all of them are out, the rest of the frame may hold no more
      // output (a one-byte probe catches a frame that decodes to more).
      const uint64_t room = std::min<uint64_t>(out_.size() - filled, size - produced);
      uint8_t probe;
      ZSTD_outBuffer ob{room ? out_.data() + filled : &probe, room ? room : 1, 0};
      left = ZSTD_decompressStream(dctx, &ob, &ib);
      if (ZSTD_isError(left) && ZSTD_getErrorCode(left) == ZSTD_error_frameParameter_windowTooLarge) {
        // Either a damaged window byte or a valid frame whose window (e.g. a
        // single-segment frame of gigabytes) would take more memory than
        // streaming allows; df11's writer never makes one (its windows are
        // at most a few MiB). The stored frame's XXH64 tells them apart
        // (FORMAT.md section 5: payload_xxh64 first): damage is corrupt data.
        for (uint64_t r = read; r < frame_size;) {
          const uint64_t m = std::min(kReadPiece, frame_size - r);
          s = file.read(offset + r, m, in_.data());
          if (!s.ok()) return s;
          frame.add(in_.data(), m);
          r += m;
        }
        if (frame.digest() != frame_xxh64) return corrupt("XXH64 of the stored zstd frame differs");
        *what = "zstd frame needs a window over zstd's default limit of 128 MiB (out of memory)";
        return Status{Error::Io, *what};
      }
      if (ZSTD_isError(left)) return corrupt("zstd frame does not decode");
      if (!room && ob.pos) return corrupt("zstd frame decodes to more than the tensor's size");
      filled += ob.pos;
      produced += ob.pos;
      if (filled == out_.size()) {
        s = flush();
        if (!s.ok()) return s;
      }
    }
  }
  if (left != 0 || produced != size) return corrupt("zstd frame does not decode to the tensor's size");
  if (frame.digest() != frame_xxh64) return corrupt("XXH64 of the stored zstd frame differs");
  return flush();
}

// Whether [at, at + n) of `f` is exactly one zstd frame (no trailing or
// skippable frames), read with pread: ZSTD_findFrameCompressedSize
// walks every block header through the mapping, and fault-around maps the
// pages between them too, so a 512 MB F32 tensor's check held about 500 MB
// (a black-box audit measured 528 MB for verify, decompress and info).
// Block headers are read through a 4 KiB window (RFC 8878, 3.1.1). A read
// that fails is its own error, not a verdict on the frame.
Status single_zstd_frame_pread(const MappedFile& f, uint64_t at, uint64_t n, bool* one_frame) {
  *one_frame = false;
  uint8_t win[4096];
  uint64_t win_at = 0, win_len = 0;  // win holds [win_at, win_at + win_len) of the payload
  Status read_error;
  auto bytes = [&](uint64_t pos, uint64_t len) -> const uint8_t* {
    if (pos + len > n) return nullptr;
    if (pos < win_at || pos + len > win_at + win_len) {
      win_at = pos;
      win_len = std::min<uint64_t>(sizeof win, n - pos);
      if (read_error = f.read(at + pos, win_len, win); !read_error.ok()) return nullptr;
    }
    return win + (pos - win_at);
  };
  const uint8_t* h = bytes(0, 5);
  if (!h || (h[0] | h[1] << 8 | h[2] << 16 | static_cast<uint32_t>(h[3]) << 24) != 0xFD2FB528u) return read_error;
  const unsigned fhd = h[4];
  if (fhd & 0x08) return read_error;  // reserved bit
  const unsigned single_segment = (fhd >> 5) & 1, fcs_flag = fhd >> 6;
  if (!single_segment) {  // the window descriptor: as zstd, no window over 2^31
    const uint8_t* w = bytes(5, 1);
    if (!w || (*w >> 3) + 10 > 31) return read_error;
  }
  static constexpr unsigned kDictIdBytes[4] = {0, 1, 2, 4}, kContentSizeBytes[4] = {0, 2, 4, 8};
  uint64_t pos = 5 + (single_segment ? 0 : 1) + kDictIdBytes[fhd & 3] +
                 (fcs_flag == 0 ? single_segment : kContentSizeBytes[fcs_flag]);
  for (bool last = false; !last;) {
    const uint8_t* b = bytes(pos, 3);
    if (!b) return read_error;
    const uint32_t block = b[0] | b[1] << 8 | static_cast<uint32_t>(b[2]) << 16;
    const unsigned type = (block >> 1) & 3;
    if (type == 3) return read_error;  // reserved block type
    last = block & 1;
    pos += 3 + (type == 1 ? 1 : block >> 3);  // an RLE block holds one byte
    if (pos > n) return read_error;
  }
  if ((fhd >> 2) & 1) pos += 4;  // content checksum
  *one_frame = pos == n;
  return read_error;
}

}  // namespace df11
