// BF16 exponent coding: split into Huffman-coded exponents and raw
// sign+mantissa bytes, laid out for the GPU decoder (gap and block-output
// arrays). Pure: no I/O, no CUDA. docs/FORMAT.md is the specification.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "df11_errors.h"
#include "huffman.h"
#include "layout.h"

namespace df11 {

// One encoded BF16 tensor, sections owned.
struct EncodedBf16 {
  Bf16Geometry geom;
  CodeLengths lengths{};
  Histogram hist{};
  std::vector<uint64_t> block_out;  // geom.block_out_entries()
  std::vector<uint8_t> gaps;        // geom.gap_bytes(), two 4-bit gaps per byte, even thread low
  std::vector<uint32_t> stream;     // geom.stream_words(), codes MSB-first in each word
  std::vector<uint8_t> sm;          // geom.n bytes: sign << 7 | mantissa
  // Encoder working memory, kept so that encode_bf16_into can reuse it.
  std::vector<uint8_t> scratch_exps;
};

// Encode n BF16 values (host order uint16). The result is byte-identical for
// every thread count.
EncodedBf16 encode_bf16(const uint16_t* w, uint64_t n, unsigned threads = 1);
// Same, reusing out's buffers (no reallocation when they are large enough).
void encode_bf16_into(const uint16_t* w, uint64_t n, unsigned threads, EncodedBf16* out);

// ---- Window by window (the container writer's streaming encoder) ----------
// A tensor is read twice: a first pass histograms the exponents (code lengths
// and every window's bit offset follow), a second encodes each window at its
// bit offset. Windows are independent, so threads may take any of them.

// Splits weights into exponent bytes and sign+mantissa bytes.
void split_bf16(const uint16_t* w, uint64_t n, uint8_t* exps, uint8_t* sm);

// Coding tables of one code: single[e] = code << 8 | length; pair[e0 | e1 << 8]
// = the two codes joined (lengths summed in the low byte). set() writes the
// pairs of exponents that have a code only, the only ones a tensor coded
// with it looks up, and leaves the rest of the 256 KiB as it was: one object
// then serves tensor after tensor without clearing it each time (in a file
// of 8,192 small tensors the clearing was 8% of compress).
struct Bf16EncodeTables {
  Bf16EncodeTables() = default;
  explicit Bf16EncodeTables(const CodeLengths& lengths) { set(lengths); }
  void set(const CodeLengths& lengths);
  CodeLengths lengths{};
  uint32_t single[256] = {};
  std::vector<uint32_t> pair;  // 65536 entries once set
};

namespace testing {
// Test hook (tests and fuzzing): encode_bf16 splits a tensor between threads
// from `elems` weights per segment instead of 2^20, so that small inputs
// cross segment boundaries; 0 restores 2^20. Process-wide; returns the
// previous setting. The output is the same bytes whatever the split.
uint64_t set_encoder_min_segment_elems(uint64_t elems) noexcept;
}  // namespace testing

// Encodes the exponents exps[0, count) of weights first .. first + count - 1,
// whose first code starts at stream bit bit_begin; prev_len is the code length
// of weight first - 1 (0 when first == 0). out receives stream words from global
// word bit_begin / 32 on: (bit_begin + bits + 31) / 32 - bit_begin / 32 words,
// plus one the encoder may scribble on; bits of the first word before bit_begin
// are zero, so neighbouring windows' shared words are OR-ed together. gaps
// (packed, zeroed beforehand, atomically OR-ed) and block_out (global indices)
// receive the entries of every chunk whose first code starts in this window,
// for chunks below n_chunks only. Returns the stream bit after the window's
// last code: the caller planned it from a histogram, and exponents that
// differ from that histogram (an input rewritten between a writer's two
// passes) give another end, and no write outside gaps and block_out.
uint64_t encode_bf16_window(const Bf16EncodeTables& tables, const uint8_t* exps, uint64_t first, uint64_t count,
                            uint64_t bit_begin, uint32_t prev_len, uint32_t* out, uint8_t* gaps, uint64_t* block_out,
                            uint64_t n_chunks);

// Borrowed view of one BF16 tensor's sections, e.g. inside an mmapped container.
struct Bf16View {
  Bf16Geometry geom;
  CodeLengths lengths{};
  const uint64_t* block_out = nullptr;
  const uint8_t* gaps = nullptr;
  const uint32_t* stream = nullptr;
  const uint8_t* sm = nullptr;
};

Bf16View view_of(const EncodedBf16& e);

inline uint32_t gap_at(const uint8_t* gaps, uint64_t t) {
  return (gaps[t >> 1] >> ((t & 1) * 4)) & 0xF;
}

// Every structural rule that the decoders (CPU and GPU) rely on for memory
// safety: code lengths, geometry, gap range, block-output monotonicity,
// zero stream padding. Cost: O(threads + blocks), independent of n except the
// padding check. Also returns the largest per-block element count.
Error validate_bf16(const Bf16View& v, uint64_t* max_block_elems = nullptr);

// Fast CPU decoder. It walks the same arrays as the CUDA kernel: each chunk
// starts at its gap, each block's output starts at its block-output entry,
// and every count is checked against them. Requires validate_bf16() == Ok.
Error decode_bf16(const Bf16View& v, uint16_t* out, unsigned threads = 1);

// The same decoder, block range by block range, so that a caller can consume
// each piece while it is still in cache. decode_blocks(b0, b1) writes
// out[block_out[b0] .. block_out[b1]) (absolute indices) and checks exactly
// what decode_bf16 checks for those blocks. Requires validate_bf16() == Ok.
class Bf16Decoder {
 public:
  explicit Bf16Decoder(const Bf16View& v);  // builds the decode tables once
  ~Bf16Decoder();
  Bf16Decoder(const Bf16Decoder&) = delete;
  Bf16Decoder& operator=(const Bf16Decoder&) = delete;
  Error decode_blocks(uint64_t b0, uint64_t b1, uint16_t* out, unsigned threads = 1) const;
  // The same for a window of the sections (one thread): stream holds words
  // from b0 * 2048 to min(b1 * 2048 + 1, stream_words) (the chunks' words and
  // the one a decoder may read past them), sm and out the weights from
  // block_out[b0] to block_out[b1]. Gaps and block outputs come from the view.
  Error decode_window(uint64_t b0, uint64_t b1, const uint32_t* stream, const uint8_t* sm, uint16_t* out) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Slow, obvious oracle: reads the stream one bit at a time from bit 0 and
// matches canonical codes; ignores gaps and blocks. For tests only.
Error decode_bf16_reference(const Bf16View& v, uint16_t* out);

// Exponent histogram recovered from the stream (for `df11 info`).
Error decode_exponent_histogram(const Bf16View& v, Histogram& hist, unsigned threads = 1);

inline uint16_t bf16_merge(uint8_t sm, uint8_t exponent) {
  return static_cast<uint16_t>(((sm & 0x80u) << 8) | (uint32_t{exponent} << 7) | (sm & 0x7Fu));
}

}  // namespace df11
