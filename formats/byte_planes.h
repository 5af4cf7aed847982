// Byte planes by groups, the layout of a ZSTD payload's decoded bytes
// (docs/FORMAT.md section 3). A float's sign and exponent bytes repeat across
// a tensor while its low mantissa bytes are close to random; stored together
// (all byte 0s, then all byte 1s, ...) zstd finds the repeats instead of
// seeing them interleaved with noise.
#pragma once
#include <cstdint>

namespace df11 {

// Elements per group. Groups, rather than planes over the whole tensor, let a
// reader un-plane in place with a scratch buffer of at most G * k bytes,
// whatever the tensor's size.
constexpr uint64_t kPlaneGroupElems = 16384;

// Writes the n_bytes of src (elements of k bytes) to dst in byte planes by
// groups: within a group of m elements, byte j of element i goes to group
// offset j * m + i. A safetensors tensor's n_bytes is a multiple of k; bytes
// of a partial last element are copied as they are. k <= 1 copies. src and
// dst must not overlap.
void to_byte_planes(const uint8_t* src, uint64_t n_bytes, uint64_t k, uint8_t* dst);

// The inverse, in place. Allocates at most kPlaneGroupElems * k bytes (throws
// only std::bad_alloc).
void from_byte_planes(uint8_t* data, uint64_t n_bytes, uint64_t k);

}  // namespace df11
