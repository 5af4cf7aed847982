// Length-limited canonical Huffman codes over the 256 BF16 exponent values.
#pragma once
#include <array>
#include <cstdint>

#include "df11_errors.h"
#include "layout.h"

namespace df11 {

using Histogram = std::array<uint64_t, 256>;
using CodeLengths = std::array<uint8_t, 256>;  // 0 = symbol absent

// Optimal code lengths limited to max_len (package-merge). Deterministic:
// ties are broken by symbol value. One present symbol gets length 1; none
// present gives all zeros. Needs 2^max_len >= the number of present symbols
// (every caller's limit is 8 or more); below that no code exists, and the
// lengths returned are not one.
CodeLengths build_code_lengths(const Histogram& hist, uint32_t max_len = kMaxCodeLength);

// Rules of the spec for a stored code-length table: every length <= kMaxCodeLength,
// and either the code is complete (Kraft sum == 1) or exactly one symbol has
// length 1. An all-zero table is valid only for an empty stream.
Error validate_code_lengths(const CodeLengths& lengths);

// Canonical codes (DEFLATE order: by length, then symbol). codes[s] holds the
// code right-aligned in its length.
std::array<uint32_t, 256> canonical_codes(const CodeLengths& lengths);

// kLutSize-entry decode table (see kLutInvalid in layout.h). Lengths must be valid.
void build_decode_lut(const CodeLengths& lengths, uint16_t lut[kLutSize]);

// Multi-symbol decode table (kLutSize x uint32) of the CUDA kernel (the CPU
// decoder builds its own, of up to five codes, in bf16_decoder.cpp): for each
// kLutBits-bit window, up to three consecutive codes that lie
// wholly inside it. Bits 0-7, 8-15, 16-23 symbols; 24-27 their total length;
// 28-29 their count (1..3); bit 31 (kMultiInvalid) when the window does not
// start with a code (then count 1 and length kMaxCodeLength, as in the uint16 table).
constexpr uint32_t kMultiInvalid = 0x80000000u;
void build_multi_lut(const uint16_t lut[kLutSize], uint32_t multi[kLutSize]);

// The CPU decoder's multi-symbol table (kLutSize x uint64): the same, with up
// to five codes per window. Exponent codes average under three bits, so an
// 11-bit window often holds four or five; the GPU kernel's registers afford
// three. Bits 0-39 symbols, 40-43 their total length, 44-46 their count
// (1..5), bit 63 (kMultiInvalid64) when the window does not start with a code.
constexpr uint64_t kMultiInvalid64 = uint64_t{1} << 63;
void build_multi_lut64(const uint16_t lut[kLutSize], uint64_t multi[kLutSize]);

// Exponent histogram of n BF16 values (little-endian uint16).
Histogram exponent_histogram(const uint16_t* w, uint64_t n);
// Histogram of n bytes (exponents already split out).
Histogram byte_histogram(const uint8_t* e, uint64_t n);

// Shannon entropy (bits/symbol) of a histogram.
double entropy_bits(const Histogram& hist);

}  // namespace df11
