// The persistent "units" kernel (sm_90): one CUDA block per SM, U units of
// 256 threads in it, each unit decoding format blocks one after another with
// decode_block() (decode_loop.cuh) and its own named barrier.
//
// Why (docs/PERFORMANCE.md, round 5): with one CUDA block per format block, a
// block spends ~4 us of its ~15 us waiting for its 40 KB of tables and its
// stream before it computes anything, and a launch's first wave asks L2 for
// 21 MB of tables at once. Here the units of a CUDA block share one copy of
// the tables, loaded once per tensor, and each unit loads the stream of its
// next format block while it decodes the current one. Shared memory: the
// tables (40 KB, no overlay) + U x (2 stream copies + exponent buffer), so
// U = 4 gives the same 1024 threads per SM as four 256-thread blocks.
//
// Work: CUDA block c takes the contiguous range [B c / G, B (c+1) / G) of the
// launch's B format blocks; a range may span tensors, and at each tensor
// boundary the whole CUDA block synchronises and loads the next tables. Within
// a tensor, unit u takes the range's blocks u, u + U, ...
#pragma once
#include "decode_loop.cuh"

namespace df11::cuda::detail {

#if defined(__CUDACC__)

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait_group() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

template <int U>
struct UnitsLayout {
  static constexpr uint32_t kTables = LoopLayout<4, true>::kLut2Bytes + LoopLayout<4, true>::kPass1Bytes;
  static constexpr uint32_t kStream = LoopLayout<4, true>::kStreamBytes;
  static constexpr uint32_t kUnitFixed = 2 * kStream;  // + the exponent buffer (buf_bytes)
};

// Stream copy `which` (0 or 1) of a unit: computed, not indexed (an indexed
// pair of pointers would live in local memory).
__device__ __forceinline__ uint32_t* stream_copy(uint8_t* unit_base, uint32_t which) {
  return reinterpret_cast<uint32_t*>(unit_base + which * LoopLayout<4, true>::kStreamBytes);
}

template <int U, int kOpt = 0>
__global__ void __launch_bounds__(U * kThreads * 4, 1) decode_units_kernel(const LaunchParams prm) {
  constexpr int P = 4;
  constexpr int kT = kThreads * P;  // threads per unit
  using L = UnitsLayout<U>;
  extern __shared__ uint4 smem_u4[];
  uint8_t* const smem = reinterpret_cast<uint8_t*>(smem_u4);
  __shared__ uint32_t s_warp_total[U][kT / 32];
  __shared__ alignas(8) uint64_t s_tables_bar[2];  // pass-1 tables, pass-2 table

  const uint32_t u = threadIdx.x / kT;
  const uint32_t tid = threadIdx.x % kT;
  const uint32_t bar = static_cast<uint32_t>(__cvta_generic_to_shared(&s_tables_bar[0]));
  uint8_t* const lut2 = smem;
  uint8_t* const pass1 = smem + LoopLayout<4, true>::kLut2Bytes;
  uint8_t* const unit_base = smem + L::kTables + u * (L::kUnitFixed + prm.buf_bytes);
  uint8_t* const buf = unit_base + L::kUnitFixed;

  const uint64_t nblocks = prm.block_begin[prm.count];
  const uint64_t r0 = nblocks * blockIdx.x / gridDim.x;
  const uint64_t r1 = nblocks * (blockIdx.x + 1) / gridDim.x;
  if (r0 >= r1) return;

  init_tables_bar(bar, threadIdx.x);
  init_tables_bar(bar + 8, threadIdx.x);
  uint32_t ti = find_block_tensor_warp(prm, r0);
  uint32_t parity = 0;
  for (uint64_t seg = r0; seg < r1; parity ^= 1) {
    const TensorDesc& d = prm.table[ti];
    const uint64_t tb = prm.block_begin[ti];
    const uint64_t seg_end = min(r1, prm.block_begin[ti + 1]);
    __syncthreads();  // every unit is done with the previous tables (and the mbarriers are initialised)
    load_tables<kT>(d.lut_loop, threadIdx.x, lut2, pass1, bar, bar + 8);

    uint64_t j = seg + u;
    uint32_t cur = 0;
    if (j < seg_end) {
      stage_stream<kT>(d, j - tb, tid, stream_copy(unit_base, cur));
      cp_async_commit();
    }
    for (; j < seg_end; j += U, cur ^= 1) {
      const bool more = j + U < seg_end;
      if (more) {  // the next block's stream, into the copy that block j - U used
        stage_stream<kT>(d, j + U - tb, tid, stream_copy(unit_base, cur ^ 1));
        cp_async_commit();
        cp_async_wait_group<1>();
      } else {
        cp_async_wait_group<0>();
      }
      LoopBlock<P> blk;
      blk.load(d, j - tb, tid / P, tid % P, prm.buf_bytes);
      unit_sync<kT>(1 + u);  // this block's stream is in (every thread's copies)
      if (blk.range_ok) prefetch_sm<kT>(d, blk.out_begin, blk.expected, tid);
      wait_tables(bar, parity);
      const LoopSmem sm{reinterpret_cast<const uint32_t*>(lut2), bar + 8, parity,
                        Pass1Luts{reinterpret_cast<const uint32_t*>(pass1),
                                  reinterpret_cast<const uint16_t*>(pass1 + 4096 * 4)},
                        stream_copy(unit_base, cur), buf, s_warp_total[u], 1 + u};
      decode_block<P, true, false>(prm, d, j, blk, sm, tid, nullptr);
      // decode_block's last reads of this stream copy and of the buffer end
      // before barriers that every thread passes before the next block's
      // copies into them (the stream copy two blocks on; the buffer: pass 2).
      unit_sync<kT>(1 + u);
    }
    seg = seg_end;
    ++ti;
  }
}

#endif  // __CUDACC__

}  // namespace df11::cuda::detail
