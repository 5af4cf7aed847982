// Internals shared by decoder.cu, image.cu, bench.cu and host_sim.cu.
// Not part of the public API.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "df11_cuda.h"

namespace df11::cuda::detail {

// The kernel's tables (decode_loop.cuh, one copy of kLoopTableBytes) for a
// tensor of n weights with these code lengths: pass-2 entries, pass-1
// accumulate entries, pass-1 masks.
void build_loop_tables(const CodeLengths& lengths, uint64_t n, uint32_t* table);
// Points out's device views into the image of a tensor of geometry g at base
// (image_layout); leaves out->mem alone.
void set_image_views(const Bf16Geometry& g, uint64_t max_block_elems, const uint8_t* base, DeviceTensor* out);

// Host model of decode_loop_kernel<P, smem_stream> (host_sim.cu): the kernel's
// per-thread code run on the CPU, for tests without a GPU. Returns the error the
// kernel reports; fills out (n weights) only where the kernel would write.
Error simulate_loop_decode(const Bf16View& v, uint16_t* out, int P, bool smem_stream);

// Launch geometry of the current plan (for the benchmark's report).
struct PlanInfo {
  uint64_t blocks = 0;
  uint32_t smem_bytes = 0;
  uint64_t max_block_elems = 0;
};
PlanInfo plan_info(const Workspace& ws);

Error cuda_fail(int cuda_error, const char* what);  // records last_cuda_error(), maps the code

}  // namespace df11::cuda::detail
