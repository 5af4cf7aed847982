// Constants of the .df11 v2 BF16 layout (docs/FORMAT.md, "BF16 tensors").
// These are format parameters, recorded in every container header; readers
// MUST reject a container whose values differ from the ones below.
#pragma once
#include <cstdint>

namespace df11 {

// 11, not 12 (v1): the GPU decoder keeps three tables indexed by an L-bit window
// in every block's shared memory; at 11 bits they take 20 KB instead of 40, which
// lets 5 blocks share an SM instead of 4, for ~0.03% more output
// (docs/PERFORMANCE.md, round 6).
constexpr uint32_t kMaxCodeLength = 11;               // Huffman code-length limit (bits)
constexpr uint32_t kLutBits = kMaxCodeLength;         // decode tables are indexed by kLutBits bits
constexpr uint32_t kLutSize = 1u << kLutBits;         // 2048 entries
constexpr uint32_t kChunkBits = 1024;                 // encoded bits per decoder thread
constexpr uint32_t kChunkWords = kChunkBits / 32;     // 32-bit stream words per chunk
constexpr uint32_t kBlockThreads = 64;                // decoder threads per block
constexpr uint32_t kGapBits = 4;                      // a gap is < kMaxCodeLength <= 16
constexpr uint32_t kAlignment = 64;                   // section alignment in the container

// Decode-table entry (uint16): bits 0-7 symbol, bits 8-11 code length,
// bit 12 set for bit patterns that are not a code (only possible for a
// one-symbol code). Shared by the CPU decoder and the CUDA kernel.
constexpr uint16_t kLutInvalid = 0x1000;

constexpr uint64_t div_ceil(uint64_t a, uint64_t b) { return a / b + (a % b != 0); }
constexpr uint64_t align_up(uint64_t x, uint64_t a) { return div_ceil(x, a) * a; }

// Sizes of the sections of one BF16 tensor, derived from element count and
// thread count exactly as the spec defines them.
struct Bf16Geometry {
  uint64_t n = 0;          // elements
  uint64_t total_bits = 0; // exponent stream length in bits
  uint64_t n_threads = 0;  // chunks that contain at least one code start
  uint64_t n_blocks() const { return div_ceil(n_threads, kBlockThreads); }
  uint64_t stream_words() const { return n_threads * kChunkWords + 1; }
  uint64_t gap_bytes() const { return div_ceil(n_threads, 2); }
  uint64_t block_out_entries() const { return n_blocks() + 1; }
};

}  // namespace df11
