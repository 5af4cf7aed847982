// Pieces of the df11 BF16 decode kernel (decode_loop.cuh, production since
// 2026-11-22) that do not depend on how a chunk is parsed: the launch's
// descriptors and status key, finding a block's tensor, the chunk geometry,
// the block scan and the merge of exponents with sign-mantissa bytes into
// BF16. docs/FORMAT.md section 4 is what is decoded; codec/bf16_decoder.cpp
// is the CPU decoder that walks the same arrays with the same checks.
//
// One CUDA block decodes one format block (64 chunks of 1024 stream bits);
// one launch covers a whole batch of tensors, each block finding its tensor by
// a 32-ary search of the block prefix. Then: pass 1 counts the codes of each
// chunk, a block exclusive scan gives each thread its output offset (the
// block's total must equal block_out[b+1] - block_out[b]), pass 2 writes
// exponent bytes into a shared buffer offset by block_out[b] & 15 so that
// buffer position and global index agree mod 16, and the block merges them
// with the sign-mantissa bytes, 8 weights per thread step with 16-byte stores
// (scalar stores only in the two ragged groups at the block's ends).
//
// Safety: every read is at a position fixed by the (host-validated) geometry,
// never by stream contents; writes go only to [block_out[b], block_out[b+1])
// and to the shared buffer: a block whose count is wrong writes nothing.
// Inconsistencies are reported through atomicMin on a 64-bit status key
// (block, chunk, code) so that the first error is the one the CPU decoder reports.
// (The round-1 kernels, one and four threads per chunk with a 3-symbol table in
// shared memory, were here until issue 12; git history keeps them.)
#pragma once
#include <cstdint>

#include <cuda_runtime.h>

#include "huffman.h"
#include "layout.h"

// The merge arithmetic is also compiled for the host (host_sim.cu), so that the
// kernel's results can be checked without a GPU.

namespace df11::cuda::detail {

constexpr int kThreads = 64;           // = kBlockThreads of the format
// Copies of decode_loop.cuh's 20 KB of tables that upload() and image_layout() place one after
// another: every block of a launch reads its tensor's tables, and with one copy
// those few L2 lines were a hot spot (block b reads copy b mod 4; 4, 8 and 16
// copies measured alike, 32 slower: docs/PERFORMANCE.md round 5).
constexpr uint32_t kLoopTableCopies = 4;
constexpr int kWords = 32;             // = kChunkWords

// Status key codes (low 2 bits); the key is (global block << 9) | (position << 2) | code
// and the smallest key wins. Position: the chunk, or the first chunk of a group
// of 4 (decode_loop_kernel, where a gap error beats an invalid code in the same
// group as in the CPU decoder, hence BadGaps < StreamCorrupt), or 64 for the
// block's count.
constexpr unsigned long long kStatusClear = ~0ull;
constexpr uint32_t kCodeBadGaps = 1;
constexpr uint32_t kCodeStreamCorrupt = 2;
constexpr uint32_t kCodeBadBlockOffsets = 3;

// One tensor of a launch (device table entry).
struct TensorDesc {
  const uint64_t* block_out;
  const uint8_t* gaps;
  const uint32_t* stream;
  const uint8_t* sm;
  const uint32_t* lut_loop;   // decode_loop.cuh's tables: kLutSize x uint32 pass-2 entries, then the pass-1 tables
  uint16_t* out;
  uint64_t n;
  uint64_t total_bits;
  uint64_t n_threads;
  uint32_t out_aligned;  // out is 16-byte aligned
  uint32_t reserved;
};

// Launches of up to this many tensors also carry the tensors' descriptors and
// first blocks in the kernel parameters (constant bank), so that a block's
// prologue needs no global-memory round trip before it can ask for its data.
constexpr uint32_t kInlineTensors = 8;

struct LaunchParams {
  const TensorDesc* table;        // count entries
  const uint64_t* block_begin;    // count + 1 entries: first CUDA block of each tensor
  unsigned long long* status;     // kStatusClear or the smallest error key
  uint32_t count;
  uint32_t buf_bytes;             // exponent buffer bytes in shared memory
  uint32_t resident = 0;          // blocks of this kernel that fit on the device at once (0: unknown)
  uint32_t reserved = 0;
  uint64_t inline_begin[kInlineTensors + 1] = {};  // count <= kInlineTensors: copies of block_begin ...
  TensorDesc inline_desc[kInlineTensors] = {};     // ... and of table
};

__host__ __device__ __forceinline__ uint32_t lut_window(uint32_t hi, uint32_t lo, int p) {
  // Top kLutBits bits of (hi:lo) << p, for 0 <= p < 32.
#if defined(__CUDA_ARCH__)
  return __funnelshift_l(lo, hi, static_cast<uint32_t>(p)) >> (32 - kLutBits);
#else
  return static_cast<uint32_t>(((uint64_t{hi} << 32 | lo) << p) >> (64 - kLutBits));
#endif
}

__host__ __device__ __forceinline__ int imin(int a, int b) { return a < b ? a : b; }

__host__ __device__ __forceinline__ uint32_t popc32(uint32_t x) {
#if defined(__CUDA_ARCH__)
  return __popc(x);
#else
  return static_cast<uint32_t>(__builtin_popcount(x));
#endif
}

// The loop kernel's exponent buffer holds every exponent rotated right by one
// bit (its pass-2 table is built so: pass2_entry()). Then one BF16 is
// (ee & 0x7F80) | (ss & 0x807F), where ee and ss are the rotated exponent and the
// sign-mantissa byte each repeated in both bytes of a halfword: two byte
// permutes and one 3-input logic op per 2 weights instead of five operations.
__host__ __device__ __forceinline__ uint32_t rotr1_bytes(uint32_t x) {  // each byte rotated right by 1
  return ((x >> 1) & 0x7F7F7F7Fu) | ((x << 7) & 0x80808080u);
}
__host__ __device__ __forceinline__ uint32_t dup_bytes(uint32_t x, uint32_t sel) {
#if defined(__CUDA_ARCH__)
  return __byte_perm(x, 0u, sel);
#else
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= ((x >> (8 * ((sel >> (4 * i)) & 3))) & 0xFFu) << (8 * i);
  return v;
#endif
}
__host__ __device__ __forceinline__ uint32_t merge2_rot(uint32_t s, uint32_t er, uint32_t sel) {
#if defined(__CUDA_ARCH__)
  // One LOP3 (a & m) | (b & ~m) with the mask as its immediate; written out
  // because the compiler otherwise spends two.
  uint32_t r;
  asm("lop3.b32 %0, %1, %2, %3, 0xE2;" : "=r"(r) : "r"(dup_bytes(er, sel)), "n"(0x7F807F80), "r"(dup_bytes(s, sel)));
  return r;
#else
  return (dup_bytes(er, sel) & 0x7F807F80u) | (dup_bytes(s, sel) & 0x807F807Fu);
#endif
}
__host__ __device__ __forceinline__ uint16_t merge1_rot(uint32_t s, uint32_t er) {
  return static_cast<uint16_t>(((s & 0x80u) << 8) | ((er & 0x7Fu) << 8) | ((er & 0x80u)) | (s & 0x7Fu));
}

#if defined(__CUDACC__)

// Which tensor of the launch block `gblock` belongs to, computed by every warp
// on its own (no shared memory, no barrier): the largest i with
// block_begin[i] <= gblock, by a 32-ary search.
__device__ __forceinline__ uint32_t find_block_tensor_warp(const LaunchParams& prm, uint64_t gblock,
                                                          const uint64_t* block_begin = nullptr) {
  if (!block_begin) block_begin = prm.block_begin;
  const uint32_t lane = threadIdx.x & 31;
  uint32_t lo = 0, hi = prm.count;
  while (hi - lo > 1) {
    const uint32_t step = (hi - lo + 31) / 32;
    const uint32_t i = lo + lane * step;
    const bool ok = i < hi && block_begin[i] <= gblock;
    const uint32_t m = __ballot_sync(0xFFFFFFFFu, ok);  // bit 0 always set
    lo += (31 - __clz(m)) * step;
    hi = min(hi, lo + step);
  }
  return lo;
}

// 8 weights: sign-mantissa bytes s, rotated exponents e -> 8 BF16.
__host__ __device__ __forceinline__ uint4 merge8(const uint2 s, const uint2 e) {
  return make_uint4(merge2_rot(s.x, e.x, 0x1100), merge2_rot(s.x, e.x, 0x3322), merge2_rot(s.y, e.y, 0x1100),
                    merge2_rot(s.y, e.y, 0x3322));
}

// The block's last step: merge the exponent buffer (rotated exponents,
// merge2_rot; buffer position 0 = global index out_begin - align, 16-aligned)
// with the sign-mantissa bytes and store BF16, 8 weights per step with 8-byte
// loads and 16-byte stores; scalar stores only in the two ragged groups at the
// block's ends.
template <int kT>
__device__ __forceinline__ void merge_store_block(const TensorDesc& d, uint64_t out_begin, uint32_t align,
                                                  uint32_t expected, const uint8_t* buf, uint32_t tid) {
  uint16_t* __restrict__ out = d.out;
  const uint8_t* __restrict__ sm = d.sm;
  if (d.out_aligned) {
    // Units of 8 weights: an 8-byte sign-mantissa load, an 8-byte exponent load
    // and one 16-byte store per lane, so that each store instruction of a warp
    // covers 512 contiguous bytes (whole sectors). The units wholly inside the
    // block's range [align, align + expected) take rounds of kUnroll per
    // thread (loads first, for memory-level parallelism), then one predicated
    // round; the (at most two) ragged units at the ends are stored
    // weight by weight by threads 0 and 1 (round 7: the per-weight range tests
    // inside the last round cost ~10% of the kernel's instructions).
    const uint64_t gbase = out_begin - align;
    const uint32_t lo_full = (align + 7) >> 3;         // first unit entirely inside
    const uint32_t hi_full = (align + expected) >> 3;  // units [lo_full, hi_full) are full
    constexpr int kUnroll = 8;
    const uint2* const smp = reinterpret_cast<const uint2*>(sm + gbase);
    uint4* const outp = reinterpret_cast<uint4*>(out + gbase);
    const uint2* const bufp = reinterpret_cast<const uint2*>(buf);
    // Ragged units: thread 0 the first (when align is not a multiple of 8),
    // thread 1 the last (when the range does not end on one), once if they
    // coincide. Their loads go out first, so that they wait with the others.
    const bool left = tid == 0 && (align & 7) != 0;
    const bool right = tid == 1 && ((align + expected) & 7) != 0 && hi_full >= lo_full;
    const uint32_t ue = left ? lo_full - 1 : hi_full;
    uint2 es = make_uint2(0, 0);
    if (left || right) es = __ldcs(smp + ue);
    // Thread t takes units t + j kT from unit 0 on, so that each warp's loads
    // and stores cover whole 512-byte spans (starting at lo_full instead cost
    // a fifth more L2 sectors: round 7). Only unit 0 can lie below lo_full.
    uint32_t u0 = tid;
    for (; u0 + (kUnroll - 1) * kT < hi_full; u0 += kT * kUnroll) {
      const bool first = u0 >= lo_full;
      uint2 sv[kUnroll];
      if (first) sv[0] = __ldcs(smp + u0);
#pragma unroll
      for (int k = 1; k < kUnroll; ++k) sv[k] = __ldcs(smp + u0 + k * kT);
      if (first) __stcs(outp + u0, merge8(sv[0], bufp[u0]));
#pragma unroll
      for (int k = 1; k < kUnroll; ++k) __stcs(outp + u0 + k * kT, merge8(sv[k], bufp[u0 + k * kT]));
    }
    if (u0 < hi_full) {
      uint2 sv[kUnroll];
#pragma unroll
      for (int k = 0; k < kUnroll; ++k)
        if (u0 + k * kT >= lo_full && u0 + k * kT < hi_full) sv[k] = __ldcs(smp + u0 + k * kT);
#pragma unroll
      for (int k = 0; k < kUnroll; ++k)
        if (u0 + k * kT >= lo_full && u0 + k * kT < hi_full)
          __stcs(outp + u0 + k * kT, merge8(sv[k], bufp[u0 + k * kT]));
    }
    if (left || right) {
      const uint32_t u = ue;
      const uint4 o = merge8(es, bufp[u]);
      uint16_t* dst = reinterpret_cast<uint16_t*>(outp + u);
      const uint32_t words[4] = {o.x, o.y, o.z, o.w};
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const uint32_t pos = 8 * u + j;
        if (pos >= align && pos < align + expected) dst[j] = static_cast<uint16_t>(words[j >> 1] >> ((j & 1) * 16));
      }
    }
  } else {
    for (uint32_t j = tid; j < expected; j += kT)
      out[out_begin + j] = merge1_rot(sm[out_begin + j], buf[align + j]);
  }
}

__device__ __forceinline__ void report(unsigned long long* status, uint64_t block, uint32_t chunk,
                                       uint32_t code) {
  atomicMin(status, static_cast<unsigned long long>((block << 9) | (chunk << 2) | code));
}

// Segment h (of P) of chunk t: where its first code starts if h == 0 (the gap),
// where its bits end (may be <= 0 past a short last chunk), and where the
// chunk's parse must end, relative to the last segment (the next chunk's gap,
// or the stream end). Needs t < n_threads.
template <int P>
__device__ __forceinline__ void chunk_geometry(const TensorDesc& d, uint64_t t, uint32_t h, int& gap, int& end,
                                               int& expect) {
  constexpr int kSegBits = 32 * (kWords / P);
  const uint8_t g2 = __ldg(d.gaps + (t >> 1));
  gap = (g2 >> ((t & 1) * 4)) & 0xF;
  const uint64_t left = d.total_bits - t * 1024;
  const int chunk_end = left < 1024 ? static_cast<int>(left) : 1024;
  end = imin(chunk_end - static_cast<int>(h) * kSegBits, kSegBits);
  if (t + 1 < d.n_threads) {
    const uint8_t gn = __ldg(d.gaps + ((t + 1) >> 1));
    expect = 1024 + ((gn >> (((t + 1) & 1) * 4)) & 0xF);
  } else {
    expect = static_cast<int>(left);
  }
  expect -= (P - 1) * kSegBits;
}

// Block exclusive scan of one count per thread, in two halves around the
// caller's barrier: scan_publish() scans the warp and publishes its total;
// after a __syncthreads(), scan_finish() adds the earlier warps' totals.
// tid: the thread's index among the kT threads that scan together.
__device__ __forceinline__ uint32_t scan_publish(uint32_t cnt, uint32_t* warp_total, uint32_t tid) {
  const uint32_t lane = threadIdx.x & 31;
  uint32_t incl = cnt;
#pragma unroll
  for (int off = 1; off < 32; off <<= 1) {
    const uint32_t v = __shfl_up_sync(0xFFFFFFFFu, incl, off);
    if (lane >= static_cast<uint32_t>(off)) incl += v;
  }
  if (lane == 31) warp_total[tid >> 5] = incl;
  return incl;
}
template <int kT>
__device__ __forceinline__ void scan_finish(uint32_t incl, uint32_t cnt, const uint32_t* warp_total, uint32_t tid,
                                            uint32_t& excl, uint32_t& total) {
  const uint32_t warp = tid >> 5;
  uint32_t before = 0;
  total = 0;
#pragma unroll
  for (int i = 0; i < kT / 32; ++i) {
    const uint32_t v = warp_total[i];
    before += (static_cast<uint32_t>(i) < warp) ? v : 0;
    total += v;
  }
  excl = incl + before - cnt;
}

#endif  // __CUDACC__

}  // namespace df11::cuda::detail
