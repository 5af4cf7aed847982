// The "loop" decode kernel (production since 2026-11-22; docs/PERFORMANCE.md
// "GPU decoder"): P threads per 1024-bit chunk (segments of 1024/P bits), as in
// decode_split_kernel, but every segment is decoded by ONE loop over table
// lookups instead of a loop per stream word, so that the lanes of a warp
// diverge only where their segments end:
//
//   * the stream is read through a 3-word bit reader (hi, lo, next): the 12-bit
//     window is funnelshift(lo, hi, q) >> 20; when q passes 32 the words move
//     down and the word after `next` is loaded (from a padded shared-memory copy
//     of the block's stream, or through __ldg), so the load has a whole word of
//     decoding to arrive;
//   * pass 1 counts with the count table (uint16 per 12-bit window: bits 0-11
//     mark where the codes that lie wholly inside the window start, bits 12-15
//     are their total length): up to 12 codes per lookup, and the mask also gives
//     the exact count when the segment ends inside the window and the code
//     starts that speculative segments record for resynchronisation;
//   * pass 2 decodes with the 3-symbol table and stops after the segment's
//     count (known from pass 1), so it needs no end test and no single-symbol
//     tail; exponent bytes are packed into 32-bit shared-memory stores.
//
// Checks (same verdicts as codec/bf16_decoder.cpp, see kCode* in decode_kernel.cuh):
// per group of 4 chunks (the CPU decoder's unit): BadGaps if a chunk ends
// elsewhere than the next chunk's gap, else StreamCorrupt if a true code is not
// a code (found in pass 2, which also runs, without writing, on a block whose
// count is wrong); then StreamCorrupt for the block if its count differs from
// block_out[b+1] - block_out[b] (and then the block writes nothing).
//
// Shared memory: [3-symbol table 16 KB | stream copy (kSmemStream) | count table
// 8 KB, overlaid after pass 1 by the exponent buffer].
#pragma once
#include "decode_kernel.cuh"

namespace df11::cuda::detail {

constexpr int kStreamStride = kWords + 1;                      // smem words per chunk (word 32 = next chunk's word 0)
constexpr int kSmemStreamWords = kThreads * kStreamStride + 4;  // + reads of `next` past the last chunk

__host__ __device__ __forceinline__ uint32_t ctz32(uint32_t x) {  // x != 0
#if defined(__CUDA_ARCH__)
  return static_cast<uint32_t>(__ffs(static_cast<int>(x)) - 1);
#else
  return static_cast<uint32_t>(__builtin_ctz(x));
#endif
}

template <bool kGlobal>
__host__ __device__ __forceinline__ uint32_t load_word(const uint32_t* p) {
#if defined(__CUDA_ARCH__)
  if (kGlobal) return __ldg(p);
#endif
  return *p;
}

// Bit reader over 32-bit MSB-first words: bits [pos, pos + 12) are window().
// Reads words at most up to `last` (clamped; words past the decoded range only
// ever fill `next`).
template <bool kGlobal>
struct BitReader {
  const uint32_t* ptr;   // the word after `next`
  const uint32_t* last;  // last readable word
  uint32_t hi, lo, next;
  int q;  // bit of hi where the window starts, 0..31

  __host__ __device__ __forceinline__ void init(const uint32_t* base, const uint32_t* last_word, int pos) {
    last = last_word;
    const uint32_t* p = base + (pos >> 5);
    hi = load_word<kGlobal>(p < last ? p : last);
    ++p;
    lo = load_word<kGlobal>(p < last ? p : last);
    ++p;
    next = load_word<kGlobal>(p < last ? p : last);
    ptr = p + 1;
    q = pos & 31;
  }
  __host__ __device__ __forceinline__ uint32_t window() const { return window12(hi, lo, q); }
  __host__ __device__ __forceinline__ void advance(int n) {  // n <= 32
    q += n;
    if (q >= 32) {
      q -= 32;
      hi = lo;
      lo = next;
      next = load_word<kGlobal>(ptr < last ? ptr : last);
      ++ptr;
    }
  }
};

// Count table (host): see the file comment. Windows that do not start with a
// code: mask 1, length 12 (as the other tables; counted as one code).
inline void build_count_lut(const uint16_t* lut, uint16_t* cnt) {
  for (uint32_t i = 0; i < kLutSize; ++i) {
    if (lut[i] & kLutInvalid) {
      cnt[i] = static_cast<uint16_t>(1u | (kMaxCodeLength << 12));
      continue;
    }
    uint32_t mask = 0, off = 0;
    while (off < kMaxCodeLength) {
      const uint16_t e = lut[(i << off) & (kLutSize - 1)];  // later bits zero-filled
      const uint32_t len = (e >> 8) & 0xFu;
      if ((e & kLutInvalid) || off + len > kMaxCodeLength) break;
      mask |= 1u << off;
      off += len;
    }
    cnt[i] = static_cast<uint16_t>(mask | (off << 12));
  }
}

// Counts the codes that start in [p, end) (reader at p); returns the first
// code start >= end.
template <bool kGlobal>
__host__ __device__ __forceinline__ int count_codes(BitReader<kGlobal>& r, int p, const int end,
                                                    const uint16_t* __restrict__ lutc, uint32_t& cnt) {
  const int lim = end - static_cast<int>(kMaxCodeLength);
  while (p <= lim) {  // every code of the window starts before end
    const uint32_t e = lutc[r.window()];
    cnt += popc32(e & 0xFFFu);
    const int n = static_cast<int>(e >> 12);
    p += n;
    r.advance(n);
  }
  while (p < end) {
    const uint32_t e = lutc[r.window()];
    const uint32_t m = e & 0xFFFu;
    const uint32_t lm = (1u << (end - p)) - 1;  // end - p < 12
    cnt += popc32(m & lm);
    const uint32_t hm = m & ~lm;
    const int n = hm ? static_cast<int>(ctz32(hm)) : static_cast<int>(e >> 12);
    p += n;
    r.advance(n);
  }
  return p;
}

struct LoopSpec {
  uint32_t cnt = 0;   // codes of the speculative parse (starting at 0) in [0, end)
  int pend = 0;       // its end
  uint32_t mask = 0;  // bit i: a speculative code starts at i (i < min(32, end))
};

// Speculative pass 1 of a segment that does not know its first code start.
template <bool kGlobal>
__host__ __device__ __forceinline__ LoopSpec speculate(const uint32_t* base, const uint32_t* last, const int end,
                                                       const uint16_t* __restrict__ lutc) {
  LoopSpec s;
  BitReader<kGlobal> r;
  r.init(base, last, 0);
  int p = 0;
  const int lim = imin(32, end);
  while (p < lim) {  // first word: record the starts
    const uint32_t e = lutc[r.window()];
    const uint32_t m = e & 0xFFFu;
    const int rem = end - p;
    const uint32_t lm = rem >= static_cast<int>(kMaxCodeLength) ? 0xFFFu : (1u << rem) - 1;
    const uint32_t mv = m & lm;
    s.cnt += popc32(mv);
    s.mask |= mv << p;
    const uint32_t hm = m & ~lm;
    const int n = hm ? static_cast<int>(ctz32(hm)) : static_cast<int>(e >> 12);
    p += n;
    r.advance(n);
  }
  s.pend = count_codes(r, p, end, lutc, s.cnt);
  return s;
}

// The true parse arrives at q: walk it until it meets a speculative start (from
// there on both parses agree), or the end; if neither happens in the first
// word, count the rest from where the walk stopped.
template <bool kGlobal>
__host__ __device__ __forceinline__ void resolve(const uint32_t* base, const uint32_t* last, const int q, const int end,
                                                 const LoopSpec& sp, const uint16_t* __restrict__ lutc, uint32_t& cnt,
                                                 int& pend) {
  cnt = 0;
  pend = q;
  if (q >= end) return;
  BitReader<kGlobal> r;
  r.init(base, last, q);
  int s = q;
  uint32_t tc = 0;
  for (;;) {
    if (s >= end) {
      pend = s;
      break;
    }
    if (s >= 32) {
      pend = count_codes(r, s, end, lutc, tc);
      break;
    }
    const uint32_t e = lutc[r.window()];
    const uint32_t m = e & 0xFFFu;
    const int rem = end - s;
    const uint32_t lm = rem >= static_cast<int>(kMaxCodeLength) ? 0xFFFu : (1u << rem) - 1;
    const uint32_t mv = m & lm;
    const uint32_t meet = mv & (sp.mask >> s);
    if (meet) {
      const uint32_t i = ctz32(meet);
      tc += popc32(mv & ((1u << i) - 1));
      const uint32_t at = static_cast<uint32_t>(s) + i;  // < 32
      tc += sp.cnt - popc32(sp.mask & ((1u << at) - 1));
      pend = sp.pend;
      break;
    }
    tc += popc32(mv);
    const uint32_t hm = m & ~lm;
    if (hm) {
      pend = s + static_cast<int>(ctz32(hm));
      break;
    }
    const int n = static_cast<int>(e >> 12);
    s += n;
    r.advance(n);
  }
  cnt = tc;
}

// Exponent bytes [o, o + count) of the shared buffer, 4 per 32-bit store; the
// first and last words, shared with the neighbouring segments, byte by byte.
struct PackSink {
  uint32_t* wp;   // current word
  uint32_t acc;   // its bytes [0, n) (bytes below `head` are not ours)
  uint32_t n;
  uint32_t head;  // first owned byte of the current word (nonzero only for the first word)

  __host__ __device__ __forceinline__ void init(uint8_t* buf, uint32_t o) {
    wp = reinterpret_cast<uint32_t*>(buf) + (o >> 2);
    n = o & 3;
    head = n;
    acc = 0;
  }
  __host__ __device__ __forceinline__ void bytes(uint32_t from, uint32_t to) const {
    uint8_t* b = reinterpret_cast<uint8_t*>(wp);
    for (uint32_t j = from; j < to; ++j) b[j] = static_cast<uint8_t>(acc >> (8 * j));
  }
  // s: up to 3 symbols (byte i = symbol i), c of them ours (1..3).
  __host__ __device__ __forceinline__ void put(uint32_t s, uint32_t c) {
    const uint32_t sh = 8 * n;  // n <= 3
    acc |= s << sh;
#if defined(__CUDA_ARCH__)
    const uint32_t spill = __funnelshift_l(s, 0u, sh);  // bytes of s past the word
#else
    const uint32_t spill = static_cast<uint32_t>((uint64_t{s} << sh) >> 32);
#endif
    n += c;
    if (n >= 4) {
      if (head) {
        bytes(head, 4);
        head = 0;
      } else {
        *wp = acc;
      }
      ++wp;
      acc = spill;
      n -= 4;
    }
  }
  __host__ __device__ __forceinline__ void finish() const {
    if (n > head) bytes(head, n);
  }
};

struct NullSink {
  __host__ __device__ __forceinline__ void put(uint32_t, uint32_t) {}
  __host__ __device__ __forceinline__ void finish() const {}
};

// Pass 2: decodes `cnt` codes from q; ORs the table entries into bad (bit 31:
// a code was not a code).
template <bool kGlobal, class Sink>
__host__ __device__ __forceinline__ void decode_count(const uint32_t* base, const uint32_t* last, int q, uint32_t cnt,
                                                      const uint32_t* __restrict__ lutm, Sink& sink, uint32_t& bad) {
  if (cnt == 0) return;
  BitReader<kGlobal> r;
  r.init(base, last, q);
  int left = static_cast<int>(cnt);
  do {
    const uint32_t e = lutm[r.window()];
    bad |= e;
    const int c = imin(static_cast<int>((e >> 28) & 3), left);
    sink.put(e & 0xFFFFFFu, static_cast<uint32_t>(c));
    left -= c;
    r.advance(static_cast<int>((e >> 24) & 0xF));
  } while (left > 0);
  sink.finish();
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
  static constexpr uint32_t kMultiBytes = 4096 * 4;
  static constexpr uint32_t kStreamBytes = kSmemStream ? ((kSmemStreamWords * 4 + 15) / 16) * 16 : 0;
  static constexpr uint32_t kFixed = kMultiBytes + kStreamBytes;  // then the count table / exponent buffer
  static constexpr uint32_t kCountBytes = 4096 * 2;
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
  const uint32_t* const lutm = reinterpret_cast<const uint32_t*>(smem);
  uint32_t* const sstream = reinterpret_cast<uint32_t*>(smem + L::kMultiBytes);
  uint8_t* const buf = smem + L::kFixed;
  const uint16_t* const lutc = reinterpret_cast<const uint16_t*>(buf);
  __shared__ uint32_t s_tensor;
  __shared__ uint32_t s_warp_total[kT / 32];

  const uint32_t tid = threadIdx.x;
  const uint32_t h = tid % P;
  const uint32_t c = tid / P;
  const uint64_t gblock = blockIdx.x;

  if (tid < 32) {
    uint32_t lo = 0, hi = prm.count;
    while (hi - lo > 1) {
      const uint32_t step = (hi - lo + 31) / 32;
      const uint32_t i = lo + tid * step;
      const bool ok = i < hi && prm.block_begin[i] <= gblock;
      const uint32_t m = __ballot_sync(0xFFFFFFFFu, ok);
      lo += (31 - __clz(m)) * step;
      hi = min(hi, lo + step);
    }
    if (tid == 0) s_tensor = lo;
  }
  __syncthreads();
  const TensorDesc& d = prm.table[s_tensor];
  const uint64_t b = gblock - prm.block_begin[s_tensor];
  const uint64_t n_threads = d.n_threads;
  const uint64_t t = b * kThreads + c;
  const bool active = t < n_threads;
  const uint64_t chunks_left = n_threads - b * kThreads;
  const uint32_t m_active = chunks_left < kThreads ? static_cast<uint32_t>(chunks_left) : kThreads;

  // Tables -> shared memory: the 3-symbol table, then the count table.
  {
    const uint4* srcm = reinterpret_cast<const uint4*>(d.lut_multi);
#pragma unroll
    for (uint32_t i = tid; i < L::kMultiBytes / 16; i += kT) smem_u4[i] = __ldg(srcm + i);
    const uint4* srcc = reinterpret_cast<const uint4*>(d.lut_count);
    uint4* dstc = reinterpret_cast<uint4*>(buf);
#pragma unroll
    for (uint32_t i = tid; i < L::kCountBytes / 16; i += kT) dstc[i] = __ldg(srcc + i);
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
  const uint32_t* base;
  const uint32_t* last;
  if (kSmemStream) {
    base = sstream + c * kStreamStride + h * kNW;
    last = sstream + kSmemStreamWords - 1;
  } else {
    base = d.stream + t * kWords + h * kNW;
    last = d.stream + n_threads * kWords;  // the extra word
  }
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

  // Pass 1.
  uint32_t cnt = 0;
  int start = 0, pend = 0;
  LoopSpec sp;
  if (active) {
    if (h == 0) {
      BitReader<kGlobal> r;
      r.init(base, last, gap);
      start = gap;
      pend = count_codes(r, gap, end, lutc, cnt);
    } else if (end > 0) {
      sp = speculate<kGlobal>(base, last, end, lutc);
    }
  }
#pragma unroll
  for (int rr = 1; rr < P; ++rr) {
    const int prev_end = __shfl_up_sync(0xFFFFFFFFu, pend, 1) - kSegBits;
    if (active && h == static_cast<uint32_t>(rr)) {
      start = prev_end;
      resolve<kGlobal>(base, last, prev_end, end, sp, lutc, cnt, pend);
    }
  }

  // Block exclusive scan of the counts (chunk-major, segment-minor).
  const uint32_t lane = tid & 31, warp = tid >> 5;
  uint32_t incl = cnt;
#pragma unroll
  for (int off = 1; off < 32; off <<= 1) {
    const uint32_t v = __shfl_up_sync(0xFFFFFFFFu, incl, off);
    if (lane >= static_cast<uint32_t>(off)) incl += v;
  }
  if (lane == 31) s_warp_total[warp] = incl;
  __syncthreads();  // also: every thread is done with the count table
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
  const bool write = total == expected;

  // Pass 2 (without writing when the block's count is wrong: it still finds invalid codes).
  uint32_t bad = 0;
  if (active) {
    if (write) {
      PackSink sink;
      sink.init(buf, align + excl);
      decode_count<kGlobal>(base, last, start, cnt, lutm, sink, bad);
    } else {
      NullSink sink;
      decode_count<kGlobal>(base, last, start, cnt, lutm, sink, bad);
    }
  }
#pragma unroll
  for (int off = 1; off < P; off <<= 1) bad |= __shfl_xor_sync(0xFFFFFFFFu, bad, off);
  if (active && h == P - 1) {
    const uint32_t code = pend != expect ? kCodeBadGaps : (bad & kMultiInvalid) ? kCodeStreamCorrupt : 0u;
    if (code) report(prm.status, gblock, status_pos(c, m_active), code);
  }
  if (!write) {
    if (tid == 0) report(prm.status, gblock, kThreads, kCodeStreamCorrupt);
    return;
  }
  __syncthreads();

  uint16_t* __restrict__ out = d.out;
  const uint8_t* __restrict__ sm = d.sm;
  if (d.out_aligned) {
    const uint64_t gbase = out_begin - align;
    const uint32_t ngroups = (align + expected + 15) >> 4;
    const uint32_t lo_full = (align + 15) >> 4;
    const uint32_t hi_full = (align + expected) >> 4;
    constexpr int kUnroll = 4;
    for (uint32_t g0 = tid; g0 < ngroups; g0 += kT * kUnroll) {
      uint4 s[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const uint32_t g = g0 + u * kT;
        if (g < ngroups) s[u] = __ldcs(reinterpret_cast<const uint4*>(sm + gbase + 16ull * g));
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const uint32_t g = g0 + u * kT;
        if (g < ngroups) {
          const uint4 e = reinterpret_cast<const uint4*>(buf)[g];
          uint4 o0, o1;
          merge16(s[u], e, o0, o1);
          uint16_t* dst = out + gbase + 16ull * g;
          if (g >= lo_full && g < hi_full) {
            __stcs(reinterpret_cast<uint4*>(dst), o0);
            __stcs(reinterpret_cast<uint4*>(dst) + 1, o1);
          } else {
            const uint32_t first = 16 * g;
            const uint32_t words[8] = {o0.x, o0.y, o0.z, o0.w, o1.x, o1.y, o1.z, o1.w};
#pragma unroll
            for (int j = 0; j < 16; ++j) {
              const uint32_t pos = first + j;
              if (pos >= align && pos < align + expected)
                dst[j] = static_cast<uint16_t>(words[j >> 1] >> ((j & 1) * 16));
            }
          }
        }
      }
    }
  } else {
    for (uint32_t j = tid; j < expected; j += kT) out[out_begin + j] = merge1(sm[out_begin + j], buf[align + j]);
  }
}

#endif  // __CUDACC__

}  // namespace df11::cuda::detail
