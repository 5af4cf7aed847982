#include "byte_planes.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace df11 {

namespace {

// K known at compile time for the dtype sizes (2, 4, 8), so that the compiler
// unrolls the inner loop; K = 0 takes k at run time. kUnplane: the inverse.
template <uint64_t K, bool kUnplane>
void group(const uint8_t* src, uint64_t m, uint64_t k_rt, uint8_t* dst) {
  const uint64_t k = K ? K : k_rt;
  for (uint64_t i = 0; i < m; ++i)
    for (uint64_t j = 0; j < k; ++j) {
      if (kUnplane) {
        dst[i * k + j] = src[j * m + i];
      } else {
        dst[j * m + i] = src[i * k + j];
      }
    }
}

using GroupFn = void (*)(const uint8_t*, uint64_t, uint64_t, uint8_t*);

template <bool kUnplane>
GroupFn group_fn(uint64_t k) {
  switch (k) {
    case 2: return group<2, kUnplane>;
    case 4: return group<4, kUnplane>;
    case 8: return group<8, kUnplane>;
    default: return group<0, kUnplane>;
  }
}

}  // namespace

void to_byte_planes(const uint8_t* src, uint64_t n_bytes, uint64_t k, uint8_t* dst) {
  if (k <= 1) {
    if (n_bytes) std::memcpy(dst, src, n_bytes);
    return;
  }
  const GroupFn f = group_fn<false>(k);
  const uint64_t n = n_bytes / k;
  for (uint64_t e = 0; e < n; e += kPlaneGroupElems) {
    const uint64_t m = std::min(kPlaneGroupElems, n - e);
    f(src + e * k, m, k, dst + e * k);
  }
  // A partial element (never in a valid tensor) stays as it is, so that dst
  // is fully defined and from_byte_planes still inverts this.
  if (n_bytes % k) std::memcpy(dst + n * k, src + n * k, n_bytes % k);
}

void from_byte_planes(uint8_t* data, uint64_t n_bytes, uint64_t k) {
  if (k <= 1) return;
  const GroupFn f = group_fn<true>(k);
  const uint64_t n = n_bytes / k;
  std::vector<uint8_t> scratch(std::min(kPlaneGroupElems, n) * k);
  for (uint64_t e = 0; e < n; e += kPlaneGroupElems) {
    const uint64_t m = std::min(kPlaneGroupElems, n - e);
    std::memcpy(scratch.data(), data + e * k, m * k);
    f(scratch.data(), m, k, data + e * k);
  }
}

}  // namespace df11
