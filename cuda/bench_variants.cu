// Extra kernel variants for df11_gpu_bench only (built for sm_90 alone, when
// DF11_CUDA_BENCH_VARIANTS is ON), so that one device call can compare them.
#include "decode_loop.cuh"
#include "internal.h"

namespace {
using namespace df11::cuda::detail;
template <int P, bool kSmem, int kMin = 1, bool kTimed = false, int kDiag = 0>
int reg_loop(const char* name) {
  using L = LoopLayout<P, kSmem>;
  return register_variant(name, &decode_loop_kernel<P, kSmem, kMin, kTimed, kDiag>, L::kFixed, false, 64 * P,
                          L::kPass1Bytes);
}
const int kRegistered[] = {
    reg_loop<4, false>("loop4+ldg"),
    reg_loop<4, false, 5>("loop4+ldg+lb5"),
    reg_loop<2, true>("loop2+smem"),
    reg_loop<4, true, 1, true>("loop4+timed"),  // prints per-phase cycles of sampled blocks
    // Wrong output on purpose (df11_gpu_bench does not check "diag-" variants):
    // pass 2 without its stores, with a computed entry instead of the table, both.
    reg_loop<4, true, 1, true, 1>("diag-nostore"),
    reg_loop<4, true, 1, true, 2>("diag-nolut"),
    reg_loop<4, true, 1, true, 3>("diag-nostore-nolut"),
};
}  // namespace

// Referenced from bench_main.cpp so that the linker keeps this object.
int df11_bench_variant_count() { return static_cast<int>(sizeof(kRegistered) / sizeof(kRegistered[0])); }
