// Extra kernel variants for df11_gpu_bench only (built for sm_90 alone, when
// DF11_CUDA_BENCH_VARIANTS is ON), so that one device call can compare them.
#include "decode_loop.cuh"
#include "decode_loop_r2.cuh"
#include "decode_once.cuh"
#include "internal.h"

namespace {
using namespace df11::cuda::detail;
template <int P, bool kSmem, int kMin = 1>
int reg_loop(const char* name) {
  using L = LoopLayout<P, kSmem>;
  return register_variant(name, &decode_loop_kernel<P, kSmem, kMin>, L::kFixed, false, 64 * P, L::kPass1Bytes);
}
int reg_once(const char* name) {
  using L = OnceLayout<4>;
  return register_variant(name, &decode_once_kernel<4>, L::kTables, false, 64 * 4, L::kStagingBytes);
}
int reg_r2(const char* name) {
  using L = r2::LoopLayout<4, true>;
  return register_variant(name, &r2::decode_loop_kernel<4, true>, L::kFixed, false, 64 * 4, L::kPass1Bytes);
}
const int kRegistered[] = {
    reg_r2("loop4-r2"),
    reg_once("once4"),
    reg_loop<4, false>("loop4+ldg"),
    reg_loop<4, false, 5>("loop4+ldg+lb5"),
    reg_loop<2, true>("loop2+smem"),
    reg_loop<8, true, 2>("loop8+smem"),
};
}  // namespace

// Referenced from bench_main.cpp so that the linker keeps this object.
int df11_bench_variant_count() { return static_cast<int>(sizeof(kRegistered) / sizeof(kRegistered[0])); }
