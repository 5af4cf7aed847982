// Extra kernel variants for df11_gpu_bench only (built for sm_90 alone, when
// DF11_CUDA_BENCH_VARIANTS is ON), so that one device call can compare them.
#include "decode_kernel.cuh"
#include "internal.h"

namespace {
using namespace df11::cuda::detail;
const int kRegistered[] = {
    register_variant("single", &decode_kernel<false, false, false>, false, false),
    register_variant("multi", &decode_kernel<true, false, false>, true, false),
    register_variant("direct", &decode_kernel<true, false, true>, true, true),
    register_variant("direct-single+prefetch", &decode_kernel<false, true, true>, false, true),
};
}  // namespace

// Referenced from bench_main.cpp so that the linker keeps this object.
int df11_bench_variant_count() { return static_cast<int>(sizeof(kRegistered) / sizeof(kRegistered[0])); }
