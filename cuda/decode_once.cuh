// The "once" decode kernel (variant `once4`, round 3; docs/PERFORMANCE.md "GPU
// decoder"): decode_loop_kernel<4, true> with ONE decode per segment instead of
// a counting pass 1 and a decoding pass 2. A benchmark variant only: on the H100
// it was 8% slower than decode_loop_kernel<4, true> (2026-11-22: about the same
// thread instructions, and 3 blocks/SM instead of 4 for the staging area).
//
//   * every segment decodes with the 3-symbol table and appends the symbol
//     bytes to a packed register word, flushed (one 32-bit store per 4 bytes)
//     to a thread-private staging slot in shared memory: word k of thread t at
//     stg[k * kT + t] (a warp's flushes hit 32 distinct banks). The count is the
//     number of staged bytes; near the segment end the pass-1 mask table says
//     which of the entry's codes start before the end (as in count_to_end).
//   * speculative segments (h > 0) walk their first word with the mask table
//     (recording code starts, as decode_loop_kernel) and stage from the first
//     code start X >= 32; the hand-over (resolve) finds where the true parse
//     meets a recorded start; the true codes in [start, X) (the "head", about a
//     dozen) are then decoded into the HW words of the slot just before the
//     staged ones, so the slot holds the segment's bytes contiguously.
//   * after the block scan each thread copies its bytes to the exponent buffer
//     at its offset with funnel shifts (one 32-bit load, shift and store per 4
//     weights; bytes at the two ragged ends). The buffer overlays the tables and
//     the stream copy, all dead by then.
//   * a slot holds HW + C words; if any thread of the block has more head or
//     staged bytes (skewed or one-symbol tensors, corrupt streams), the whole
//     block falls back to decode_loop_kernel's pass 2 (decode again, buffer
//     over the staging area). Stores past a slot are never made.
//
// Checks and verdicts: exactly those of decode_loop_kernel (gap per chunk,
// invalid codes of the true parse, block count).
//
// Shared memory: [table 16 KB | stream copy | mask table 8 KB | staging
// (HW + C + 1) x kT words] = 74.3 KB for kT = 256, HW = 6, C = 35: 3 blocks/SM (loop4+smem: 4).
#pragma once
#include "decode_loop.cuh"

namespace df11::cuda::detail {

constexpr uint32_t kOnceInvalid = 1u << 26;  // in the kernel's table entry (pass2_entry layout otherwise)

__host__ __device__ __forceinline__ uint32_t once_entry(uint32_t m) {
  return pass2_entry(m) | ((m & kMultiInvalid) ? kOnceInvalid : 0u);
}

// Staging slot of one thread: word k at w[k * stride].
struct Slot {
  uint32_t* w;
  uint32_t stride;
};

struct StageResult {
  int pend;       // first code start >= end
  uint32_t cnt;   // staged codes (may exceed the slot: then only the first ones are stored)
  uint32_t inv;   // nonzero: an invalid code
};

// Decodes the codes that start in [p, end) (reader synced to p), appending the
// symbols from word k0 of the slot; stores only words < kcap.
template <bool kGlobal>
__host__ __device__ __forceinline__ StageResult stage_decode(BitReader<kGlobal>& r, int p, const int end,
                                                             const uint32_t* __restrict__ lut2,
                                                             const uint16_t* __restrict__ mask, const Slot s,
                                                             const uint32_t k0, const uint32_t kcap) {
  uint32_t acc = 0, nb = 0, inv = 0;
  uint32_t wi = k0 * s.stride;  // word index into s.w; a flush adds s.stride (no branch: selects)
  const uint32_t wcap = kcap * s.stride;
  const int lim = end - static_cast<int>(kMaxCodeLength);
  while (p <= lim) {  // every code of the entry starts before end
    const uint32_t e = lut2[r.window(p)];
    p += static_cast<int>(e >> 28);
    inv |= e;
    const uint32_t c8 = (e >> 21) & 0x18u;
    const uint32_t sy = e & 0xFFFFFFu;
    acc |= sy << nb;
#if defined(__CUDA_ARCH__)
    const uint32_t spill = __funnelshift_l(sy, 0u, nb);
#else
    const uint32_t spill = static_cast<uint32_t>((uint64_t{sy} << nb) >> 32);
#endif
    nb += c8;
    const bool f = nb >= 32;
    if (f && wi < wcap) s.w[wi] = acc;
    wi += f ? s.stride : 0u;
    acc = f ? spill : acc;
    nb &= 31u;
    r.sync(p);
  }
  while (p < end) {  // end - p < 12
    const uint32_t w = r.window(p);
    const uint32_t e = lut2[w];
    const uint32_t m = mask[w] & 0xFFFu;
    inv |= e;
    const uint32_t lm = (1u << (end - p)) - 1;
    const uint32_t nin = popc32(m & lm);
    const uint32_t c = (e >> 24) & 3u;
    uint32_t take = c;
    if (nin < c) {
      take = nin;
      p += static_cast<int>(ctz32(m & ~lm));
    } else {
      p += static_cast<int>(e >> 28);
    }
    const uint32_t c8 = 8 * take;
    const uint32_t sy = e & ((1u << c8) - 1);  // take <= 3
    acc |= sy << nb;
    const uint32_t spill = static_cast<uint32_t>((uint64_t{sy} << nb) >> 32);
    nb += c8;
    const bool f = nb >= 32;
    if (f && wi < wcap) s.w[wi] = acc;
    wi += f ? s.stride : 0u;
    acc = f ? spill : acc;
    nb &= 31u;
    r.sync(p);
  }
  if (nb > 0 && wi < wcap) s.w[wi] = acc;
  return {p, 4 * (wi / s.stride - k0) + (nb >> 3), inv & kOnceInvalid};
}

struct OnceSpec {
  uint32_t mask = 0;      // bit i: a speculative code starts at i (i < min(32, end))
  uint32_t inv_mask = 0;  // ... and is not a code
  int pend = 0;           // end of the speculative parse
  uint32_t n0 = 0;        // codes of the first-word walk (some may start at 32 or later)
  uint32_t ns = 0;        // staged codes (from where the walk stopped)
  uint32_t sinv = 0;      // an invalid code among them
};

// First word of a speculative segment (reader from bit 0): records the starts
// and returns the position where staging begins (the first start >= 32 or >= end).
template <bool kGlobal>
__host__ __device__ __forceinline__ int speculate_first_word(BitReader<kGlobal>& r, const int end,
                                                             const uint32_t* __restrict__ lut2,
                                                             const uint16_t* __restrict__ mask, OnceSpec& sp) {
  int pm = 0;
  const int lim = imin(32, end);
  while (pm < lim) {
    const uint32_t w = r.window(pm);
    const uint32_t em = mask[w];
    const uint32_t m = em & 0xFFFu;
    const int rem = end - pm;
    const uint32_t lm = rem >= static_cast<int>(kMaxCodeLength) ? 0xFFFu : (1u << rem) - 1;
    const uint32_t mv = m & lm;
    sp.mask |= mv << pm;
    sp.n0 += popc32(mv);
    if (lut2[w] & kOnceInvalid) sp.inv_mask |= 1u << pm;
    const uint32_t hm = m & ~lm;
    pm += hm ? static_cast<int>(ctz32(hm)) : static_cast<int>(em >> 12);
    r.sync(pm);
  }
  return pm;
}

struct OnceSeg {
  int pend = 0;
  uint32_t nh = 0;   // head codes (true codes before the staged ones)
  uint32_t ns = 0;   // staged codes
  uint32_t inv = 0;
};

// The true parse arrives at q (< end): walk until it meets a recorded start;
// if it passes the first word without meeting one, stage again from where it
// stopped (the walked codes are the head).
template <bool kGlobal>
__host__ __device__ __forceinline__ OnceSeg resolve_once(const uint32_t* base, const int q, const int end,
                                                         const OnceSpec& sp, const uint32_t* __restrict__ lut2,
                                                         const uint16_t* __restrict__ mask, const Slot s,
                                                         const uint32_t k0, const uint32_t kcap) {
  BitReader<kGlobal> r;
  r.init(base, q);
  int p = q;
  OnceSeg o;
  uint32_t tc = 0, ti = 0;
  for (;;) {
    if (p >= end) {
      o.pend = p;
      o.nh = tc;
      o.inv = ti;
      return o;
    }
    if (p >= 32) {
      const StageResult st = stage_decode(r, p, end, lut2, mask, s, k0, kcap);
      o.pend = st.pend;
      o.nh = tc;
      o.ns = st.cnt;
      o.inv = ti | st.inv;
      return o;
    }
    const uint32_t w = r.window(p);
    const uint32_t em = mask[w];
    const uint32_t bad = lut2[w] & kOnceInvalid;
    const uint32_t m = em & 0xFFFu;
    const int rem = end - p;
    const uint32_t lm = rem >= static_cast<int>(kMaxCodeLength) ? 0xFFFu : (1u << rem) - 1;
    const uint32_t mv = m & lm;
    const uint32_t meet = mv & (sp.mask >> p);
    if (meet) {
      const uint32_t i = ctz32(meet);
      tc += popc32(mv & ((1u << i) - 1));
      if (i > 0 && bad) ti = 1;  // the walk's own code at p (an invalid one is alone in mv)
      const uint32_t below = (1u << (static_cast<uint32_t>(p) + i)) - 1;  // p + i < 32
      o.pend = sp.pend;
      o.nh = tc + sp.n0 - popc32(sp.mask & below);
      o.ns = sp.ns;
      o.inv = ti | (sp.inv_mask & ~below) | sp.sinv;
      return o;
    }
    tc += popc32(mv);
    if (bad) ti = 1;
    const uint32_t hm = m & ~lm;
    if (hm) {
      o.pend = p + static_cast<int>(ctz32(hm));
      o.nh = tc;
      o.inv = ti;
      return o;
    }
    p += static_cast<int>(em >> 12);
    r.sync(p);
  }
}

// Byte j of a slot.
__host__ __device__ __forceinline__ uint8_t* slot_byte(const Slot s, uint32_t j) {
  return reinterpret_cast<uint8_t*>(s.w + (j >> 2) * s.stride) + (j & 3);
}

// Decodes the first nh codes from q into slot bytes [hb - nh, hb) (hb a
// multiple of 4): packed into words as in stage_decode (the first word's bytes
// below hb - nh are zeros that nobody reads).
template <bool kGlobal>
__host__ __device__ __forceinline__ void decode_head(const uint32_t* base, int q, uint32_t nh,
                                                     const uint32_t* __restrict__ lut2, const Slot s, uint32_t hb) {
  if (nh == 0) return;
  BitReader<kGlobal> r;
  r.init(base, q);
  const uint32_t j0 = hb - nh;
  uint32_t* wp = s.w + (j0 >> 2) * s.stride;
  uint32_t nb = 8 * (j0 & 3), acc = 0;
  int rem8 = static_cast<int>(8 * nh);
  int p = q;
  while (rem8 > 0) {
    const uint32_t e = lut2[r.window(p)];
    p += static_cast<int>(e >> 28);
    uint32_t c8 = (e >> 21) & 0x18u;
    c8 = c8 < static_cast<uint32_t>(rem8) ? c8 : static_cast<uint32_t>(rem8);
    const uint32_t sy = e & ((1u << c8) - 1);
    acc |= sy << nb;
    const uint32_t spill = static_cast<uint32_t>((uint64_t{sy} << nb) >> 32);
    nb += c8;
    rem8 -= static_cast<int>(c8);
    if (nb >= 32) {  // ends exactly at hb: no partial last word
      *wp = acc;
      wp += s.stride;
      acc = spill;
      nb -= 32;
    }
    r.sync(p);
  }
}

// Copies slot bytes [sb, sb + n) to buf[o, o + n): whole words with funnel shifts.
__host__ __device__ __forceinline__ void copy_slot(const Slot s, uint32_t sb, uint32_t n, uint8_t* buf, uint32_t o) {
  if (n == 0) return;
  const uint32_t e = o + n;
  uint32_t fw = (o + 3) >> 2;  // first whole word
  const uint32_t lw = e >> 2;  // end of whole words
  const uint32_t d = sb - o;   // modulo 2^32: slot byte of buffer byte x is x + d
  if (fw >= lw) {  // no whole word
    for (uint32_t x = o; x < e; ++x) buf[x] = *slot_byte(s, x + d);
    return;
  }
  for (uint32_t x = o; x < 4 * fw; ++x) buf[x] = *slot_byte(s, x + d);
  for (uint32_t x = 4 * lw; x < e; ++x) buf[x] = *slot_byte(s, x + d);
  const uint32_t j0 = 4 * fw + d;
  const uint32_t sh = 8 * (j0 & 3);
  const uint32_t* src = s.w + (j0 >> 2) * s.stride;
  uint32_t* dst = reinterpret_cast<uint32_t*>(buf) + fw;
  uint32_t* const dend = reinterpret_cast<uint32_t*>(buf) + lw;
  uint32_t cur = *src;
  for (; dst < dend; ++dst) {
    src += s.stride;
    const uint32_t nxt = *src;  // the slot has one spare word row
#if defined(__CUDA_ARCH__)
    *dst = __funnelshift_r(cur, nxt, sh);
#else
    *dst = static_cast<uint32_t>((uint64_t{nxt} << 32 | cur) >> sh);
#endif
    cur = nxt;
  }
}

constexpr uint32_t kOnceHW = 6;   // head words
constexpr uint32_t kOnceC = 35;   // staged words

#if defined(__CUDACC__)

template <int P>
struct OnceLayout {
  static constexpr uint32_t kLut2Bytes = 4096 * 4;
  static constexpr uint32_t kStreamBytes = ((kSmemStreamWords * 4 + 15) / 16) * 16;
  static constexpr uint32_t kMaskBytes = 4096 * 2;
  static constexpr uint32_t kTables = kLut2Bytes + kStreamBytes + kMaskBytes;  // then the staging area
  static constexpr uint32_t kSlotWords = kOnceHW + kOnceC + 1;                 // + a spare row for copy_slot
  static constexpr uint32_t kStagingBytes = kSlotWords * kThreads * P * 4;
};

template <int P>
__global__ void __launch_bounds__(kThreads * P, 1) decode_once_kernel(const LaunchParams prm) {
  using L = OnceLayout<P>;
  constexpr bool kGlobal = false;
  constexpr int kT = kThreads * P;
  constexpr int kNW = kWords / P;
  constexpr int kSegBits = 32 * kNW;
  extern __shared__ uint4 smem_u4[];
  uint8_t* const smem = reinterpret_cast<uint8_t*>(smem_u4);
  const uint32_t* const lut2 = reinterpret_cast<const uint32_t*>(smem);
  uint32_t* const sstream = reinterpret_cast<uint32_t*>(smem + L::kLut2Bytes);
  const uint16_t* const mask = reinterpret_cast<const uint16_t*>(smem + L::kLut2Bytes + L::kStreamBytes);
  uint32_t* const stg = reinterpret_cast<uint32_t*>(smem + L::kTables);
  __shared__ uint32_t s_tensor;
  __shared__ uint32_t s_warp_total[kT / 32];

  const uint32_t tid = threadIdx.x;
  const uint32_t h = tid % P;
  const uint32_t c = tid / P;
  const uint64_t gblock = blockIdx.x;
  const Slot slot{stg + tid, static_cast<uint32_t>(kT)};

  find_block_tensor(prm, gblock, tid, &s_tensor);
  __syncthreads();
  const TensorDesc& d = prm.table[s_tensor];
  const uint64_t b = gblock - prm.block_begin[s_tensor];
  const uint64_t n_threads = d.n_threads;
  const uint64_t t = b * kThreads + c;
  const bool active = t < n_threads;
  const uint64_t chunks_left = n_threads - b * kThreads;
  const uint32_t m_active = chunks_left < kThreads ? static_cast<uint32_t>(chunks_left) : kThreads;

  {
    const uint4* src2 = reinterpret_cast<const uint4*>(d.lut_multi);
#pragma unroll
    for (uint32_t i = tid; i < L::kLut2Bytes / 16; i += kT) {
      uint4 v = __ldg(src2 + i);
      v.x = once_entry(v.x);
      v.y = once_entry(v.y);
      v.z = once_entry(v.z);
      v.w = once_entry(v.w);
      smem_u4[i] = v;
    }
    const uint4* src1 = reinterpret_cast<const uint4*>(reinterpret_cast<const uint8_t*>(d.lut_pass1) + 4096 * 4);
    uint4* dst1 = reinterpret_cast<uint4*>(smem + L::kLut2Bytes + L::kStreamBytes);
#pragma unroll
    for (uint32_t i = tid; i < L::kMaskBytes / 16; i += kT) dst1[i] = __ldg(src1 + i);
  }
  {
    const uint64_t w0 = b * kThreads * kWords;
    const uint64_t avail64 = n_threads * kWords + 1 - w0;
    const uint32_t avail = avail64 < kThreads * kWords + 4 ? static_cast<uint32_t>(avail64) : kThreads * kWords + 4;
    const uint4* src4 = reinterpret_cast<const uint4*>(d.stream + w0);
    for (uint32_t u = tid; u <= kThreads * kWords / 4; u += kT) {
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

  int gap = 0, end = 0, expect = 0;
  if (active) {
    const uint8_t g2 = __ldg(d.gaps + (t >> 1));
    gap = (g2 >> ((t & 1) * 4)) & 0xF;
    const uint64_t left = d.total_bits - t * 1024;
    const int chunk_end = left < 1024 ? static_cast<int>(left) : 1024;
    end = imin(chunk_end - static_cast<int>(h) * kSegBits, kSegBits);
    if (t + 1 < n_threads) {
      const uint8_t gn = __ldg(d.gaps + ((t + 1) >> 1));
      expect = 1024 + ((gn >> (((t + 1) & 1) * 4)) & 0xF);
    } else {
      expect = static_cast<int>(left);
    }
    expect -= (P - 1) * kSegBits;
  }
  const uint32_t* const base = sstream + c * kStreamStride + h * kNW;
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

  constexpr uint32_t kCap = kOnceHW + kOnceC;
  OnceSeg seg;
  int start = 0;
  OnceSpec sp;
  if (active && (h == 0 || end > 0)) {
    // Segment 0 stages from the gap; the others walk their first word, then
    // stage: ONE stage_decode call for all lanes (no serialised copies).
    BitReader<kGlobal> r;
    int p0;
    if (h == 0) {
      r.init(base, gap);
      p0 = gap;
    } else {
      r.init(base, 0);
      p0 = speculate_first_word<kGlobal>(r, end, lut2, mask, sp);
    }
    const StageResult st = stage_decode(r, p0, end, lut2, mask, slot, kOnceHW, kCap);
    if (h == 0) {
      start = gap;
      seg.pend = st.pend;
      seg.ns = st.cnt;
      seg.inv = st.inv;
    } else {
      sp.pend = st.pend;
      sp.ns = st.cnt;
      sp.sinv = st.inv;
    }
  }
#pragma unroll
  for (int rr = 1; rr < P; ++rr) {
    const int prev_end = __shfl_up_sync(0xFFFFFFFFu, seg.pend, 1) - kSegBits;
    if (active && h == static_cast<uint32_t>(rr)) {
      start = prev_end;
      if (prev_end < end) {
        seg = resolve_once<kGlobal>(base, prev_end, end, sp, lut2, mask, slot, kOnceHW, kCap);
      } else {
        seg.pend = prev_end;  // no code starts in this segment
        seg.nh = 0;
        seg.ns = 0;
        seg.inv = 0;
      }
    }
  }
  const bool ovf = seg.nh > 4 * kOnceHW || seg.ns > 4 * kOnceC;
  if (active && !ovf) decode_head<kGlobal>(base, start, seg.nh, lut2, slot, 4 * kOnceHW);
  const uint32_t cnt = seg.nh + seg.ns;
  uint32_t inv = seg.inv;
#pragma unroll
  for (int off = 1; off < P; off <<= 1) inv |= __shfl_xor_sync(0xFFFFFFFFu, inv, off);

  const uint32_t lane = tid & 31, warp = tid >> 5;
  uint32_t incl = cnt;
#pragma unroll
  for (int off = 1; off < 32; off <<= 1) {
    const uint32_t v = __shfl_up_sync(0xFFFFFFFFu, incl, off);
    if (lane >= static_cast<uint32_t>(off)) incl += v;
  }
  if (lane == 31) s_warp_total[warp] = incl;
  const bool any_ovf = __syncthreads_or(ovf) != 0;  // also: every thread is done with the tables and stream
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
    const uint32_t code = seg.pend != expect ? kCodeBadGaps : inv ? kCodeStreamCorrupt : 0u;
    if (code) report(prm.status, gblock, status_pos(c, m_active), code);
  }
  if (total != expected) {
    if (tid == 0) report(prm.status, gblock, kThreads, kCodeStreamCorrupt);
    return;
  }

  uint8_t* buf;
  if (!any_ovf && prm.buf_bytes <= L::kTables) {  // block-uniform
    buf = smem;  // over the dead tables
    copy_slot(slot, 4 * kOnceHW - seg.nh, cnt, buf, align + excl);
    __syncthreads();
  } else {  // decode again (decode_loop_kernel's pass 2), buffer over the staging area
    buf = smem + L::kTables;
    Pass2Tail tail;
    if (active) tail = decode_to_buffer<kGlobal>(base, start, cnt, lut2, buf, align + excl);
    __syncthreads();
    tail_bytes(tail, buf);
    __syncthreads();
  }

  merge_store_block<kT, true>(d, out_begin, align, expected, buf, tid);
}

#endif  // __CUDACC__

}  // namespace df11::cuda::detail
