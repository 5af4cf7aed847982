// Streaming writer of one BF16_HUFFMAN payload (docs/FORMAT.md section 4):
// the tensor is read twice with pread, window by window, into buffers reused
// across tensors and files, so memory depends on the thread count and the
// window size only (plus the gap and block-output arrays, kept whole: about
// 1/600 of the tensor's element count in bytes, 3.6 MB for 2^31 weights).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "bf16_codec.h"
#include "df11.h"
#include "file_io.h"

namespace df11 {

// Weights per window: 2 MiB of input; with its exponent, sign-mantissa and
// stream buffers about 5.5 MiB per worker.
constexpr uint64_t kBf16WindowElems = uint64_t{1} << 20;

namespace testing {
// Test hook (tests and fuzzing): windows of `elems` weights instead of
// kBf16WindowElems, so that small tensors cross many window boundaries (and
// windows smaller than a stream word or a chunk occur); 0 restores the
// default. Process-wide; returns the previous setting. The payload is the
// same bytes whatever the window size.
uint64_t set_bf16_window_elems(uint64_t elems) noexcept;
// Test hook: the coding thread pauses `us` microseconds with each window in
// hand (after the read-ahead delivered it, before using it), so that a slot
// handed back too early is refilled under it every time. 0 (the default):
// no pause. Returns the previous setting.
uint32_t set_bf16_coder_delay_us(uint32_t us) noexcept;
// Test hook: fn runs once a BF16 tensor's pass 1 is done and before pass 2
// reads it again (null: none). Process-wide; returns the previous hook.
void (*set_bf16_between_passes(void (*fn)()) noexcept)();
}  // namespace testing

struct Bf16PayloadResult {
  // false: nothing written, the caller stores the tensor otherwise (ZSTD, or
  // RAW): BF16_HUFFMAN is not smaller than it, or zstd stores it in under half
  // of BF16_HUFFMAN's size (a degenerate tensor, sampled).
  bool huffman = false;
  uint64_t orig_xxh64 = 0;
  uint64_t payload_size = 0;
  Bf16Geometry geom;
  Histogram hist{};
  CodeLengths lengths{};
};

class Bf16PayloadWriter {
 public:
  // Encodes the n weights at `src_offset` of `in` into a BF16_HUFFMAN payload
  // at offset p0 of `out` (pwrite; the file offset is left alone). Pass 1
  // computes the histogram and the tensor's XXH64; if Huffman coding is not
  // smaller, or zstd would take under half its size, it returns with
  // r->huffman false and writes nothing.
  Status write(const MappedFile& in, uint64_t src_offset, uint64_t n, AtomicOutputFile& out, uint64_t p0,
               unsigned threads, Bf16PayloadResult* r);

 private:
  struct Slot {  // one worker's buffers
    std::vector<uint16_t> in[2];  // two with one worker: one is read ahead
    std::vector<uint8_t> exps[2], sm[2];  // the planes of in[0] and in[1]
    std::vector<uint32_t> words;
  };
  std::vector<Slot> slots_;
  std::vector<std::array<uint32_t, 256>> hists_;  // per window (pass 1)
  std::vector<uint8_t> gaps_;
  std::vector<uint64_t> block_out_;
  std::vector<uint8_t> head_;  // the sections before the stream, written at once
  std::vector<uint8_t> whole_;  // a one-window tensor's payload, written at once
  Bf16EncodeTables tables_;     // reused: set() rewrites only the entries a tensor uses
};

}  // namespace df11
