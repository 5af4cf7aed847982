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
  uint32_t overlay_bytes = 0;  // a table at the start of the exponent buffer, dead before the buffer is written
};
// Dynamic shared memory of a variant for blocks of up to max_block_elems weights.
uint32_t variant_smem_bytes(const Variant& v, uint64_t max_block_elems);
int register_variant(const char* name, KernelFn fn, uint32_t lut_bytes, bool direct, int threads = 64,
                     uint32_t overlay_bytes = 0);  // index

// Host model of decode_loop_kernel<P, smem_stream> (host_sim.cu): the kernel's
// per-thread code run on the CPU, for tests without a GPU. Returns the error the
// kernel reports; fills out (n weights) only where the kernel would write.
Error simulate_loop_decode(const Bf16View& v, uint16_t* out, int P, bool smem_stream);
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
