// Encoder for DFloat11's compressed-unit layout (the `dfloat11` Python
// package, 0.2.0 to 0.5.0): the six tensors `luts`, `encoded_exponent`,
// `sign_mantissa`, `output_positions`, `gaps` (and `split_positions`, which
// the caller builds) that DFloat11's fixed GPU kernel `decode` reads.
// Reference: ../shared/interop/dfloat11-format.md (sections 3-6, 8).
//
// The kernel is fixed and its own encoder checks none of its limits, so this
// encoder keeps every one of them, or says which one it could not keep:
//   * no exponent value >= 240 may be a symbol (table values >= 240 are pointers);
//   * at most 16 sub-tables;
//   * every table slot decodes (threads past the end decode padding);
//   * at most 23,550 elements may start in one 4096-byte block (48 KiB of
//     shared memory with 512 threads);
//   * fewer than 2^31 elements and stream bytes (the kernel takes ints).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace df11 {

constexpr uint32_t kDf11ThreadsPerBlock = 512;  // `threads_per_block` written to config.json
constexpr uint32_t kDf11BytesPerThread = 8;     // fixed in DFloat11's kernel
constexpr uint32_t kDf11BlockBits = kDf11ThreadsPerBlock * kDf11BytesPerThread * 8;  // 32768
constexpr uint32_t kDf11MaxCodeLength = 32;     // 4 table levels x 8 bits
constexpr uint32_t kDf11MaxSubTables = 16;      // pointer bytes 240..255
constexpr uint32_t kDf11PointerThreshold = 240; // table values >= 240 are pointers
constexpr uint64_t kDf11SharedMemLimit = 49152; // the loader sets no opt-in: 48 KiB
constexpr uint64_t kDf11MaxElements = (uint64_t{1} << 31) - 1;  // kernel's int n_elements / n_bytes

// Which kernel limit kept a unit from being encoded (it is then stored uncompressed).
enum class Df11Limit {
  None,
  ExponentSymbol,  // an exponent >= 240 occurs (|x| >= 2^113, Inf or NaN)
  SubTables,       // more than 16 sub-tables even with 8-bit codes (cannot happen; kept for completeness)
  SharedMemory,    // too many elements start in one block even with 2-bit codes (cannot happen)
  Elements,        // 2^31 or more elements, or an encoded stream of 2^31 bytes or more
};
const char* df11_limit_name(Df11Limit l) noexcept;  // "ExponentSymbol", ...

// One encoded unit, ready to be written as the DF11 tensors.
struct Df11Unit {
  uint32_t n_luts = 0;                     // decode tables + the lengths row
  std::vector<uint8_t> luts;               // n_luts x 256
  std::vector<uint8_t> encoded_exponent;   // MSB-first Huffman stream, zero-padded last byte
  std::vector<uint8_t> sign_mantissa;      // (sign << 7) | mantissa, one byte per element
  std::vector<uint32_t> output_positions;  // B + 1 entries (write as little-endian bytes)
  std::vector<uint8_t> gaps;               // 5-bit fields MSB-first, TPB * B of them
  std::array<uint8_t, 256> code_lengths{}; // 0 = absent
  uint32_t max_code_length = 0;
  uint64_t max_block_elements = 0;         // max over blocks of output_positions[b+1] - [b]
  uint64_t shared_mem_bytes = 0;           // what the loader will ask for: 4*TPB + 4 + 2*max_block_elements
  // Limits that were kept by changing the code rather than by giving up,
  // e.g. "SubTables: code lengths limited to 20 bits (a 32-bit code needs 19 sub-tables)".
  std::vector<std::string> adjustments;
};

// Test hooks: the code-length limit the search starts from and the element
// limit (so that the 2^31 rule can be tested without 4 GiB of weights).
// Defaults are what export uses.
struct Df11EncodeParams {
  uint32_t max_code_length = kDf11MaxCodeLength;
  uint64_t max_elements = kDf11MaxElements;
};

// Encodes n BF16 values (little-endian uint16 bit patterns) on up to
// `threads` threads (0: all cores); the output does not depend on `threads`.
// Returns Df11Limit::None and fills *out, or the limit that could not be kept
// (then *out is unspecified and `detail` says why in a few words).
Df11Limit encode_dfloat11(const uint16_t* w, uint64_t n, unsigned threads, Df11Unit* out,
                          std::string* detail, const Df11EncodeParams& params = Df11EncodeParams());

// Number of sub-tables the DF11 decode tables of a code with these lengths
// need (canonical codes: distinct 8-, 16- and 24-bit prefixes of longer codes).
uint32_t df11_sub_tables(const std::array<uint8_t, 256>& lengths);

}  // namespace df11
