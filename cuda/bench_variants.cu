// Extra kernel variants for df11_gpu_bench only (built for sm_90 alone, when
// DF11_CUDA_BENCH_VARIANTS is ON), so that one device call can compare them.
#include "decode_kernel.cuh"
#include "internal.h"

namespace {
using namespace df11::cuda::detail;
const int kRegistered[] = {
    register_variant("single", &decode_kernel<false, false, false>, 8192, false),
    register_variant("multi", &decode_kernel<true, false, false>, 16384, false),
    register_variant("direct+prefetch", &decode_kernel<true, true, true>, 16384, true),
    register_variant("split2+prefetch", &decode_split_kernel<2, true>, 16384, false, 128),
    register_variant("split4", &decode_split_kernel<4, false>, 16384, false, 256),
    register_variant("split4+prefetch", &decode_split_kernel<4, true>, 16384, false, 256),
    register_variant("split8+prefetch", &decode_split_kernel<8, true>, 16384, false, 512),
    register_variant("split8+prefetch+lut16", &decode_split_kernel<8, true, true>, 16384 + 8192, false, 512),
};
}  // namespace

// Referenced from bench_main.cpp so that the linker keeps this object.
int df11_bench_variant_count() { return static_cast<int>(sizeof(kRegistered) / sizeof(kRegistered[0])); }
