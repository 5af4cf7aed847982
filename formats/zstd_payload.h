// Streaming ZSTD payloads (docs/FORMAT.md section 3: one frame of the tensor
// in byte planes by groups of kPlaneGroupElems), written and read window by
// window so that memory does not depend on the tensor's size.
#pragma once
#include <cstdint>
#include <vector>

#include "df11.h"
#include "file_io.h"

namespace df11 {

// zstd levels of ZSTD payloads. Most non-BF16 tensors are small (norms,
// biases: a few KB); on those level 19 costs milliseconds and stores 4% less
// than level 3 (GPT-2 test file: 127 KB instead of 133 KB of byte planes).
// Level 19 runs at a few MB/s, so tensors above kZstdSmallBytes keep zstd's
// default balance, level 3.
constexpr int kZstdLevel = 3;
constexpr int kZstdSmallLevel = 19;
constexpr uint64_t kZstdSmallBytes = uint64_t{64} << 10;

// Writes the tensor at `src_offset` (size bytes of k-byte elements) of `in`
// as one zstd frame at out's current offset (level: `level`, content size
// declared). Sets *smaller to false, and writes nothing past offset + size,
// as soon as the frame would not be smaller than the tensor: the caller then
// stores it RAW at the same offset. Computes the tensor's and the frame's
// XXH64 on the way.
class ZstdPayloadWriter {
 public:
  ZstdPayloadWriter();
  ~ZstdPayloadWriter();
  ZstdPayloadWriter(const ZstdPayloadWriter&) = delete;
  ZstdPayloadWriter& operator=(const ZstdPayloadWriter&) = delete;
  Status write(const MappedFile& in, uint64_t src_offset, uint64_t size, uint64_t k, int level, AtomicOutputFile& out,
               bool* smaller, uint64_t* frame_size, uint64_t* frame_xxh64, uint64_t* orig_xxh64);

 private:
  void* cctx_;  // ZSTD_CCtx
  std::vector<uint8_t> in_, planes_, zout_;
};

// Reader side: decodes one frame read with pread from [offset, offset +
// frame_size) of `file` to size bytes of k-byte elements, restoring the
// element order group by group; sink(offset_in_tensor, bytes, n) receives
// whole windows in order. Checks the frame's XXH64 (Df11ZstdCorrupt) and that
// it decodes to exactly size bytes; the caller checks the tensor's XXH64.
class ZstdPayloadReader {
 public:
  ZstdPayloadReader();
  ~ZstdPayloadReader();
  ZstdPayloadReader(const ZstdPayloadReader&) = delete;
  ZstdPayloadReader& operator=(const ZstdPayloadReader&) = delete;
  using Sink = std::function<Status(uint64_t offset, const uint8_t* data, uint64_t size)>;
  // On a format error returns Error::Df11ZstdCorrupt, and on a frame whose
  // window exceeds zstd's default limit (128 MiB) Error::Io, with `what` set
  // (the caller names file and tensor); read and sink errors are returned as
  // they are, with `what` empty.
  Status read(const MappedFile& file, uint64_t offset, uint64_t frame_size, uint64_t frame_xxh64, uint64_t size,
              uint64_t k, const Sink& sink, std::string* what);

 private:
  void* dctx_;  // ZSTD_DCtx
  std::vector<uint8_t> in_, out_;
};

// *one_frame: whether [at, at + n) of `f` is exactly one zstd frame, walked
// with pread (Reader::open's check of every ZSTD payload and the meta block,
// in bounded memory). Returns the read's error when a pread fails (then
// *one_frame is false and says nothing of the frame).
Status single_zstd_frame_pread(const MappedFile& f, uint64_t at, uint64_t n, bool* one_frame);

}  // namespace df11
