// Internals shared by decoder.cu, bench.cu and the benchmark's kernel variants.
// Not part of the public API.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "df11_cuda.h"

namespace df11::cuda::detail {

struct LaunchParams;
using KernelFn = void (*)(LaunchParams);

// Kernel variants selectable per Workspace (the benchmark compares them).
// Variant 0 is the production kernel; the others compiled into df11_cuda are
// tested too; df11_gpu_bench may add more (bench_variants.cu).
struct Variant {
  std::string name;
  KernelFn fn;
  uint32_t lut_bytes;  // decode tables in shared memory (16 KB multi-symbol, 8 KB single-symbol)
  bool direct;  // no shared exponent buffer
  int threads;  // per block: 64 x threads per chunk
};
int register_variant(const char* name, KernelFn fn, uint32_t lut_bytes, bool direct, int threads = 64);  // index
const std::vector<Variant>& variants();
int find_variant(const std::string& name);  // -1 when unknown
Error set_variant(Workspace& ws, int variant);  // re-plans on the next prepare()

// Launch geometry of the current plan (for the benchmark's report).
struct PlanInfo {
  uint64_t blocks = 0;
  uint32_t smem_bytes = 0;
  uint64_t max_block_elems = 0;
};
PlanInfo plan_info(const Workspace& ws);

Error cuda_fail(int cuda_error, const char* what);  // records last_cuda_error(), maps the code

}  // namespace df11::cuda::detail
