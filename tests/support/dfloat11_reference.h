// A slow, obvious decoder for DFloat11's compressed-unit layout, written for
// the tests from ../shared/interop/dfloat11-format.md alone (sections 4.4,
// 5, 6.3 and 7), never from df11's encoder. It decodes a unit two ways:
//   * sequentially, code after code from bit 0 (section 7, step 5);
//   * block by block, as DFloat11's GPU kernel walks the stream: every thread
//     skips its 5-bit gap, counts the codes that start in its 64-bit window
//     (reading only its 12-byte window, zeros past n_bytes), a block-wide
//     exclusive scan seeded with output_positions[block] gives each thread
//     its first output index, and the block writes
//     min(output_positions[block+1], N) - output_positions[block] values.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace df11test {

struct Df11RefUnit {
  std::vector<uint8_t> luts;              // n_luts x 256
  std::vector<uint8_t> encoded_exponent;
  std::vector<uint8_t> sign_mantissa;
  std::vector<uint8_t> output_positions;  // raw little-endian uint32 bytes
  std::vector<uint8_t> gaps;
  uint32_t threads_per_block = 512;
};

// Sequential decode into BF16 bit patterns. Returns "" or what went wrong
// (a symbol of length 0, a stream that does not end where n_bytes says).
std::string df11_ref_decode_sequential(const Df11RefUnit& u, std::vector<uint16_t>* out);

// Block-by-block decode as the kernel does it. Every element must be written
// exactly once; returns "" or what went wrong.
std::string df11_ref_decode_blocks(const Df11RefUnit& u, std::vector<uint16_t>* out);

// The kernel's other requirements, checked from the tensors alone: every
// slot of every decode row is a symbol with a non-zero length or a pointer to
// an existing sub-table; at most 16 sub-tables; no symbol >= 240; shared
// memory (threads*4 + 4 + 2*max elements per block, the loader's formula)
// <= 48 KiB; enough gaps and output positions for ceil(n_bytes/4096) blocks.
std::string df11_ref_check_kernel_limits(const Df11RefUnit& u);

}  // namespace df11test
