// Round-2 production kernel (decode_loop_kernel as of 2026-11-22 23:20 UTC),
// kept unchanged for same-call comparisons in df11_gpu_bench ("loop4-r2") while
// round 4 is measured (docs/PERFORMANCE.md). Bench-only: not in df11_cuda.
#pragma once
#include "decode_kernel.cuh"

namespace df11::cuda::detail::r2 {
using namespace ::df11::cuda::detail;

constexpr int kStreamStride = kWords + 1;                      // smem words per chunk (word 32 = next chunk's word 0)
constexpr int kSmemStreamWords = kThreads * kStreamStride + 4;  // + reads of `next` past the last chunk

// Pass-1 accumulator: bits 0-10 position, 11-21 codes, 22-31 invalid codes;
// the accumulate table's entry is added to it once per lookup.
constexpr uint32_t kAccPos = 0x7FFu;
constexpr int kAccCntShift = 11;
constexpr int kAccInvShift = 22;

__host__ __device__ __forceinline__ uint32_t ctz32(uint32_t x) {  // x != 0
#if defined(__CUDA_ARCH__)
  return static_cast<uint32_t>(__ffs(static_cast<int>(x)) - 1);
#else
  return static_cast<uint32_t>(__builtin_ctz(x));
#endif
}

// Bit reader over 32-bit MSB-first words aligned to the segment start: the
// window at segment position p is funnelshift(lo, hi, p mod 32) >> 20 while
// p < bound; crossing `bound` moves the words down and loads the word after
// `next`, which then has a whole word of decoding to arrive. Reads are bounded
// by the callers' positions (< end + 12 < 32 kNW + 12: words up to kNW + 2).
template <bool kGlobal>
struct BitReader {
#if defined(__CUDA_ARCH__)
  uint64_t ptr;  // the word after `next`: a shared-memory address (kGlobal: a global pointer)
#else
  const uint32_t* ptr;
#endif
  uint32_t hi, lo, next;
  int bound;

  __host__ __device__ __forceinline__ void init(const uint32_t* base, int pos) {
    const uint32_t* p = base + (pos >> 5);
#if defined(__CUDA_ARCH__)
    if (kGlobal) {
      hi = __ldg(p);
      lo = __ldg(p + 1);
      next = __ldg(p + 2);
      ptr = reinterpret_cast<uint64_t>(p + 3);
    } else {
      hi = p[0];
      lo = p[1];
      next = p[2];
      ptr = static_cast<uint64_t>(__cvta_generic_to_shared(p + 3));
    }
#else
    hi = p[0];
    lo = p[1];
    next = p[2];
    ptr = p + 3;
#endif
    bound = (pos & ~31) + 32;
  }
  __host__ __device__ __forceinline__ uint32_t window(int pos) const {
#if defined(__CUDA_ARCH__)
    return __funnelshift_l(lo, hi, static_cast<uint32_t>(pos)) >> 20;  // wrap mode: pos mod 32
#else
    return window12(hi, lo, pos & 31);
#endif
  }
  // Call after every advance (of at most 32 bits).
  __host__ __device__ __forceinline__ void sync(int pos) {
#if defined(__CUDA_ARCH__)
    // One predicate for the whole move, and the load straight into `next`.
    if (kGlobal) {
      asm("{\n\t.reg .pred p;\n\tsetp.ge.s32 p, %5, %4;\n\t@p mov.b32 %0, %1;\n\t@p mov.b32 %1, %2;\n\t"
          "@p ld.global.nc.u32 %2, [%3];\n\t@p add.s64 %3, %3, 4;\n\t@p add.s32 %4, %4, 32;\n\t}"
          : "+r"(hi), "+r"(lo), "+r"(next), "+l"(ptr), "+r"(bound)
          : "r"(pos));
    } else {
      uint32_t a = static_cast<uint32_t>(ptr);
      asm("{\n\t.reg .pred p;\n\tsetp.ge.s32 p, %5, %4;\n\t@p mov.b32 %0, %1;\n\t@p mov.b32 %1, %2;\n\t"
          "@p ld.shared.u32 %2, [%3];\n\t@p add.s32 %3, %3, 4;\n\t@p add.s32 %4, %4, 32;\n\t}"
          : "+r"(hi), "+r"(lo), "+r"(next), "+r"(a), "+r"(bound)
          : "r"(pos));
      ptr = a;
    }
#else
    if (pos >= bound) {
      hi = lo;
      lo = next;
      next = *ptr++;
      bound += 32;
    }
#endif
  }
};

// Pass-1 tables (host), 4096 entries each, from the uint16 decode table:
//   acc (uint32): total length of the codes that lie wholly inside the window
//     and start in it, + their number << 11, + (1 << 22) when the window does
//     not start with a code (then 1 code of 12 bits, as in every other table);
//   mask (uint16): bits 0-11 where those codes start, bits 12-15 total length.
inline void build_pass1_luts(const uint16_t* lut, uint32_t* acc, uint16_t* mask) {
  for (uint32_t i = 0; i < kLutSize; ++i) {
    if (lut[i] & kLutInvalid) {
      acc[i] = kMaxCodeLength | (1u << kAccCntShift) | (1u << kAccInvShift);
      mask[i] = static_cast<uint16_t>(1u | (kMaxCodeLength << 12));
      continue;
    }
    uint32_t m = 0, off = 0, n = 0;
    while (off < kMaxCodeLength) {
      const uint16_t e = lut[(i << off) & (kLutSize - 1)];  // later bits zero-filled
      const uint32_t len = (e >> 8) & 0xFu;
      if ((e & kLutInvalid) || off + len > kMaxCodeLength) break;
      m |= 1u << off;
      off += len;
      ++n;
    }
    acc[i] = off | (n << kAccCntShift);
    mask[i] = static_cast<uint16_t>(m | (off << 12));
  }
}

// The kernel's pass-2 entry from the 3-symbol table (codec/huffman.h):
// bits 0-23 symbols, 24-25 their count, 28-31 their total length.
__host__ __device__ __forceinline__ uint32_t pass2_entry(uint32_t m) {
  return (m & 0xFFFFFFu) | (((m >> 28) & 3u) << 24) | (((m >> 24) & 0xFu) << 28);
}

struct Pass1Luts {
  const uint32_t* acc;
  const uint16_t* mask;
};

// Counts from the accumulator's position to `end` (reader synced to it).
// Returns the accumulator: position = the first code start >= end.
template <bool kGlobal>
__host__ __device__ __forceinline__ uint32_t count_to_end(BitReader<kGlobal>& r, uint32_t acc, const int end,
                                                          const Pass1Luts& t) {
  const int lim = end - static_cast<int>(kMaxCodeLength);
  int pm = static_cast<int>(acc & kAccPos);
  while (pm <= lim) {  // every code of the window starts before end
    acc += t.acc[r.window(pm)];
    pm = static_cast<int>(acc & kAccPos);
    r.sync(pm);
  }
  while (pm < end) {
    const uint32_t w = r.window(pm);
    const uint32_t em = t.mask[w], ea = t.acc[w];
    const uint32_t m = em & 0xFFFu;
    const uint32_t lm = (1u << (end - pm)) - 1;  // end - pm < 12
    const uint32_t hm = m & ~lm;
    const int n = hm ? static_cast<int>(ctz32(hm)) : static_cast<int>(em >> 12);
    acc += (popc32(m & lm) << kAccCntShift) + (ea & ~((1u << kAccInvShift) - 1)) + static_cast<uint32_t>(n);
    pm += n;
    r.sync(pm);
  }
  return acc;
}

struct LoopSpec {
  uint32_t acc = 0;       // end of the speculative parse from 0: position, codes, invalid codes
  uint32_t mask = 0;      // bit i: a speculative code starts at i (i < min(32, end))
  uint32_t inv_mask = 0;  // bit i: ... and is not a code
};

// Speculative pass 1 of a segment that does not know its first code start.
template <bool kGlobal>
__host__ __device__ __forceinline__ LoopSpec speculate(const uint32_t* base, const int end, const Pass1Luts& t) {
  LoopSpec s;
  BitReader<kGlobal> r;
  r.init(base, 0);
  int pm = 0;
  uint32_t cnt = 0, inv = 0;
  const int lim = imin(32, end);
  while (pm < lim) {  // first word: record the starts
    const uint32_t w = r.window(pm);
    const uint32_t em = t.mask[w], ea = t.acc[w];
    const uint32_t m = em & 0xFFFu;
    const int rem = end - pm;
    const uint32_t lm = rem >= static_cast<int>(kMaxCodeLength) ? 0xFFFu : (1u << rem) - 1;
    const uint32_t mv = m & lm;
    cnt += popc32(mv);
    s.mask |= mv << pm;
    if (ea >> kAccInvShift) {
      s.inv_mask |= 1u << pm;
      ++inv;
    }
    const uint32_t hm = m & ~lm;
    pm += hm ? static_cast<int>(ctz32(hm)) : static_cast<int>(em >> 12);
    r.sync(pm);
  }
  s.acc = count_to_end(r, static_cast<uint32_t>(pm) | (cnt << kAccCntShift) | (inv << kAccInvShift), end, t);
  return s;
}

// The true parse arrives at q: walk it until it meets a speculative start (from
// there on both parses agree), or the end; if neither happens in the first
// word, count the rest from where the walk stopped. Returns the segment's
// accumulator (true end, codes, invalid codes). Needs q < end (0 <= q < 12).
template <bool kGlobal>
__host__ __device__ __forceinline__ uint32_t resolve(const uint32_t* base, const int q, const int end,
                                                     const LoopSpec& sp, const Pass1Luts& t) {
  BitReader<kGlobal> r;
  r.init(base, q);
  int s = q;
  uint32_t tc = 0, ti = 0;
  for (;;) {
    if (s >= end) return static_cast<uint32_t>(s) | (tc << kAccCntShift) | (ti << kAccInvShift);
    if (s >= 32) return count_to_end(r, static_cast<uint32_t>(s) | (tc << kAccCntShift) | (ti << kAccInvShift), end, t);
    const uint32_t w = r.window(s);
    const uint32_t em = t.mask[w], ea = t.acc[w];
    const uint32_t m = em & 0xFFFu;
    const int rem = end - s;
    const uint32_t lm = rem >= static_cast<int>(kMaxCodeLength) ? 0xFFFu : (1u << rem) - 1;
    const uint32_t mv = m & lm;
    const uint32_t meet = mv & (sp.mask >> s);
    if (meet) {
      const uint32_t i = ctz32(meet);
      tc += popc32(mv & ((1u << i) - 1));
      if (i > 0 && (ea >> kAccInvShift)) ++ti;  // the walk's own code at s (an invalid one is alone in mv)
      const uint32_t below = (1u << (static_cast<uint32_t>(s) + i)) - 1;  // s + i < 32
      tc += ((sp.acc >> kAccCntShift) & 0x7FFu) - popc32(sp.mask & below);
      ti += (sp.acc >> kAccInvShift) - popc32(sp.inv_mask & below);
      return (sp.acc & kAccPos) | (tc << kAccCntShift) | (ti << kAccInvShift);
    }
    tc += popc32(mv);
    if (ea >> kAccInvShift) ++ti;
    const uint32_t hm = m & ~lm;
    if (hm) {
      s += static_cast<int>(ctz32(hm));
      return static_cast<uint32_t>(s) | (tc << kAccCntShift) | (ti << kAccInvShift);
    }
    s += static_cast<int>(em >> 12);
    r.sync(s);
  }
}

// Pass 2: decodes `cnt` codes from q into the exponent buffer at byte o. Every
// word that the segment fills to its end is written with one 32-bit store
// (the first one may carry zeros below o: they belong to earlier segments,
// which write them after the barrier); the bytes of the last, partial word are
// left in a Pass2Tail for tail_bytes() after the barrier.
struct Pass2Tail {
  uint32_t wi = 0;  // word of the exponent buffer
  uint32_t acc = 0;
  uint32_t from = 0, to = 0;  // its bytes [from, to)
};

template <bool kGlobal>
__host__ __device__ __forceinline__ Pass2Tail decode_to_buffer(const uint32_t* base, int q, uint32_t cnt,
                                                               const uint32_t* __restrict__ lut2, uint8_t* buf,
                                                               uint32_t o) {
  Pass2Tail tail;
  if (cnt == 0) return tail;
  BitReader<kGlobal> r;
  r.init(base, q);
  uint32_t* const words = reinterpret_cast<uint32_t*>(buf);
  uint32_t wi = o >> 2;  // 32-bit index: one add per store
  uint32_t nb = 8 * (o & 3);  // bits of the current word filled
  uint32_t acc = 0;
  int rem8 = static_cast<int>(8 * cnt);
  int p = q;
  while (rem8 >= 24) {  // a whole lookup is ours
    const uint32_t e = lut2[r.window(p)];
    p += static_cast<int>(e >> 28);
    const uint32_t c8 = (e >> 21) & 0x18u;
    const uint32_t sy = e & 0xFFFFFFu;
    acc |= sy << nb;
#if defined(__CUDA_ARCH__)
    const uint32_t spill = __funnelshift_l(sy, 0u, nb);
#else
    const uint32_t spill = static_cast<uint32_t>((uint64_t{sy} << nb) >> 32);
#endif
    nb += c8;
    rem8 -= static_cast<int>(c8);
    if (nb >= 32) {
      words[wi++] = acc;
      acc = spill;
      nb -= 32;
    }
    r.sync(p);
  }
  while (rem8 > 0) {
    const uint32_t e = lut2[r.window(p)];
    p += static_cast<int>(e >> 28);
    uint32_t c8 = (e >> 21) & 0x18u;
    c8 = c8 < static_cast<uint32_t>(rem8) ? c8 : static_cast<uint32_t>(rem8);
    const uint32_t sy = e & 0xFFFFFFu;
    acc |= sy << nb;
    const uint32_t spill = static_cast<uint32_t>((uint64_t{sy} << nb) >> 32);
    nb += c8;
    rem8 -= static_cast<int>(c8);
    if (nb >= 32) {
      words[wi++] = acc;
      acc = spill;
      nb -= 32;
    }
    r.sync(p);
  }
  tail.wi = wi;
  tail.acc = acc;
  tail.from = wi == (o >> 2) ? (o & 3) : 0;
  tail.to = nb >> 3;
  return tail;
}

__host__ __device__ __forceinline__ void tail_bytes(const Pass2Tail& t, uint8_t* buf) {
  uint8_t* b = buf + 4 * t.wi;
  for (uint32_t j = t.from; j < t.to; ++j) b[j] = static_cast<uint8_t>(t.acc >> (8 * j));
}

// Status position of chunk c among `m` active chunks of a block: the CPU decoder
// checks chunks in groups of 4 (then one by one for the last m % 4), and in a
// group a gap error wins over an invalid code.
__host__ __device__ __forceinline__ uint32_t status_pos(uint32_t c, uint32_t m) {
  return c < (m & ~3u) ? (c & ~3u) : c;
}

#if defined(__CUDACC__)

template <int P, bool kSmemStream>
struct LoopLayout {
  static constexpr uint32_t kLut2Bytes = 4096 * 4;
  static constexpr uint32_t kStreamBytes = kSmemStream ? ((kSmemStreamWords * 4 + 15) / 16) * 16 : 0;
  static constexpr uint32_t kFixed = kLut2Bytes + kStreamBytes;  // then the pass-1 tables / exponent buffer
  static constexpr uint32_t kPass1Bytes = 4096 * 4 + 4096 * 2;
};

template <int P, bool kSmemStream, int kMinBlocks = 1>
__global__ void __launch_bounds__(kThreads * P, kMinBlocks) decode_loop_kernel(const LaunchParams prm) {
  using L = LoopLayout<P, kSmemStream>;
  constexpr bool kGlobal = !kSmemStream;
  constexpr int kT = kThreads * P;
  constexpr int kNW = kWords / P;
  constexpr int kSegBits = 32 * kNW;
  extern __shared__ uint4 smem_u4[];
  uint8_t* const smem = reinterpret_cast<uint8_t*>(smem_u4);
  const uint32_t* const lut2 = reinterpret_cast<const uint32_t*>(smem);
  uint32_t* const sstream = reinterpret_cast<uint32_t*>(smem + L::kLut2Bytes);
  uint8_t* const buf = smem + L::kFixed;
  const Pass1Luts t1{reinterpret_cast<const uint32_t*>(buf), reinterpret_cast<const uint16_t*>(buf + 4096 * 4)};
  __shared__ uint32_t s_tensor;
  __shared__ uint32_t s_warp_total[kT / 32];

  const uint32_t tid = threadIdx.x;
  const uint32_t h = tid % P;
  const uint32_t c = tid / P;
  const uint64_t gblock = blockIdx.x;

  find_block_tensor(prm, gblock, tid, &s_tensor);
  __syncthreads();
  const TensorDesc& d = prm.table[s_tensor];
  const uint64_t b = gblock - prm.block_begin[s_tensor];
  const uint64_t n_threads = d.n_threads;
  const uint64_t t = b * kThreads + c;
  const bool active = t < n_threads;
  const uint64_t chunks_left = n_threads - b * kThreads;
  const uint32_t m_active = chunks_left < kThreads ? static_cast<uint32_t>(chunks_left) : kThreads;

  // Tables -> shared memory: the pass-2 table (converted from the 3-symbol
  // table), then the pass-1 tables where the exponent buffer goes later.
  {
    const uint4* src2 = reinterpret_cast<const uint4*>(d.lut_multi);
#pragma unroll
    for (uint32_t i = tid; i < L::kLut2Bytes / 16; i += kT) {
      uint4 v = __ldg(src2 + i);
      v.x = pass2_entry(v.x);
      v.y = pass2_entry(v.y);
      v.z = pass2_entry(v.z);
      v.w = pass2_entry(v.w);
      smem_u4[i] = v;
    }
    const uint4* src1 = reinterpret_cast<const uint4*>(d.lut_pass1);
    uint4* dst1 = reinterpret_cast<uint4*>(buf);
#pragma unroll
    for (uint32_t i = tid; i < L::kPass1Bytes / 16; i += kT) dst1[i] = __ldg(src1 + i);
  }
  // The block's stream words: chunk c's words 0..32 at sstream[33 c ...].
  if (kSmemStream) {
    const uint64_t w0 = b * kThreads * kWords;
    const uint64_t avail64 = n_threads * kWords + 1 - w0;  // stream words from w0 on
    const uint32_t avail = avail64 < kThreads * kWords + 4 ? static_cast<uint32_t>(avail64) : kThreads * kWords + 4;
    const uint4* src4 = reinterpret_cast<const uint4*>(d.stream + w0);
    for (uint32_t u = tid; u <= kThreads * kWords / 4; u += kT) {  // quads; the last one is the next block's first
      uint4 v;
      if (4 * u + 4 <= avail) {
        v = __ldg(src4 + u);
      } else {
        const uint32_t* s1 = d.stream + w0 + 4 * u;
        v.x = 4 * u < avail ? __ldg(s1) : 0u;
        v.y = 4 * u + 1 < avail ? __ldg(s1 + 1) : 0u;
        v.z = 4 * u + 2 < avail ? __ldg(s1 + 2) : 0u;
        v.w = 4 * u + 3 < avail ? __ldg(s1 + 3) : 0u;
      }
      const uint32_t ch = u >> 3, j = 4 * (u & 7);
      if (ch < kThreads) {
        uint32_t* dst = sstream + ch * kStreamStride + j;
        dst[0] = v.x;
        dst[1] = v.y;
        dst[2] = v.z;
        dst[3] = v.w;
      }
      if (j == 0 && ch > 0) sstream[(ch - 1) * kStreamStride + kWords] = v.x;
    }
    if (tid < 4) sstream[kThreads * kStreamStride + tid] = 0;
  }

  int gap = 0, end = 0, expect = 0;  // segment-relative
  if (active) {
    const uint8_t g2 = __ldg(d.gaps + (t >> 1));
    gap = (g2 >> ((t & 1) * 4)) & 0xF;
    const uint64_t left = d.total_bits - t * 1024;
    const int chunk_end = left < 1024 ? static_cast<int>(left) : 1024;
    end = imin(chunk_end - static_cast<int>(h) * kSegBits, kSegBits);  // may be <= 0
    if (t + 1 < n_threads) {
      const uint8_t gn = __ldg(d.gaps + ((t + 1) >> 1));
      expect = 1024 + ((gn >> (((t + 1) & 1) * 4)) & 0xF);
    } else {
      expect = static_cast<int>(left);
    }
    expect -= (P - 1) * kSegBits;
  }
  // Segment words (the global stream is padded past its extra word: see upload()).
  const uint32_t* const base =
      kSmemStream ? sstream + c * kStreamStride + h * kNW : d.stream + t * kWords + h * kNW;
  const uint64_t out_begin = __ldg(d.block_out + b);
  const uint64_t out_end = __ldg(d.block_out + b + 1);
  const bool range_ok = out_begin <= out_end && out_end <= d.n && out_end - out_begin + 32 <= prm.buf_bytes;
  const uint32_t expected = range_ok ? static_cast<uint32_t>(out_end - out_begin) : 0;
  const uint32_t align = static_cast<uint32_t>(out_begin & 15);
  if (range_ok) {
    const uint8_t* pbase = d.sm + (out_begin & ~uint64_t{127});
    const uint64_t lines = (out_end - (out_begin & ~uint64_t{127}) + 127) >> 7;
    for (uint64_t l = tid; l < lines; l += kT) asm volatile("prefetch.global.L2 [%0];" ::"l"(pbase + (l << 7)));
  }
  __syncthreads();  // tables and stream ready

  // Pass 1: segment 0 from the gap, the others speculatively from their first
  // bit; then the true parse is handed from segment to segment.
  uint32_t acc = 0;  // this segment's true end, codes and invalid codes
  int start = 0, pend = 0;  // pend: the true end (segment-relative; past a short last chunk it may be < 0)
  LoopSpec sp;
  if (active) {
    if (h == 0) {
      BitReader<kGlobal> r;
      r.init(base, gap);
      start = gap;
      acc = count_to_end(r, static_cast<uint32_t>(gap), end, t1);
      pend = static_cast<int>(acc & kAccPos);
    } else if (end > 0) {
      sp = speculate<kGlobal>(base, end, t1);
    }
  }
#pragma unroll
  for (int rr = 1; rr < P; ++rr) {
    const int prev_end = __shfl_up_sync(0xFFFFFFFFu, pend, 1) - kSegBits;
    if (active && h == static_cast<uint32_t>(rr)) {
      start = prev_end;
      if (prev_end < end) {
        acc = resolve<kGlobal>(base, prev_end, end, sp, t1);
        pend = static_cast<int>(acc & kAccPos);
      } else {
        pend = prev_end;  // no code starts in this segment
      }
    }
  }
  const uint32_t cnt = (acc >> kAccCntShift) & 0x7FFu;
  uint32_t inv = acc >> kAccInvShift;
#pragma unroll
  for (int off = 1; off < P; off <<= 1) inv |= __shfl_xor_sync(0xFFFFFFFFu, inv, off);

  // Block exclusive scan of the counts (chunk-major, segment-minor).
  const uint32_t lane = tid & 31, warp = tid >> 5;
  uint32_t incl = cnt;
#pragma unroll
  for (int off = 1; off < 32; off <<= 1) {
    const uint32_t v = __shfl_up_sync(0xFFFFFFFFu, incl, off);
    if (lane >= static_cast<uint32_t>(off)) incl += v;
  }
  if (lane == 31) s_warp_total[warp] = incl;
  __syncthreads();  // also: every thread is done with the pass-1 tables
  uint32_t before = 0, total = 0;
#pragma unroll
  for (int i = 0; i < kT / 32; ++i) {
    const uint32_t v = s_warp_total[i];
    before += (static_cast<uint32_t>(i) < warp) ? v : 0;
    total += v;
  }
  const uint32_t excl = incl + before - cnt;

  if (!range_ok) {
    if (tid == 0) report(prm.status, gblock, 0, kCodeBadBlockOffsets);
    return;
  }
  if (active && h == P - 1) {
    const uint32_t code = pend != expect ? kCodeBadGaps : inv ? kCodeStreamCorrupt : 0u;
    if (code) report(prm.status, gblock, status_pos(c, m_active), code);
  }
  if (total != expected) {  // block-uniform: write nothing
    if (tid == 0) report(prm.status, gblock, kThreads, kCodeStreamCorrupt);
    return;
  }

  // Pass 2: whole words, barrier, then the partial last word of each segment.
  Pass2Tail tail;
  if (active) tail = decode_to_buffer<kGlobal>(base, start, cnt, lut2, buf, align + excl);
  __syncthreads();
  tail_bytes(tail, buf);
  __syncthreads();

  merge_store_block<kT>(d, out_begin, align, expected, buf, tid);
}

#endif  // __CUDACC__

}  // namespace df11::cuda::detail::r2
