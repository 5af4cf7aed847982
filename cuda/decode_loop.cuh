// The "loop" decode kernel (production; docs/PERFORMANCE.md "GPU decoder"):
// P threads per 1024-bit chunk (segments of 1024/P bits), every segment decoded
// by ONE loop over table lookups, so that the lanes of a warp diverge only
// where their segments end:
//
//   * the block's tables (20 KB, already in the kernel's format: upload(),
//     which lays out kLoopTableCopies copies so that the blocks' reads spread
//     over more L2 lines) arrive by two bulk copies of the copy engine (TMA, on
//     an mbarrier; sm_90) or cp.async (sm_80-89), its stream words by
//     cp.async, all in flight at once: one memory round trip per block, no
//     registers, no conversion; the L2 prefetch of its sign-mantissa bytes
//     follows once the stream is in;
//   * the stream is read through a 3-word bit reader (hi, lo, next; two
//     lookups share one refill where the loops allow: kOptPair1/2): the L-bit
//     window (L = kLutBits) is funnelshift(lo, hi, q) >> (32 - L); when q passes 32 the words move
//     down and the word after `next` is loaded from the padded shared-memory
//     copy of the block's stream, so the load has a whole word of decoding to
//     arrive;
//   * pass 1 runs the same code on every lane: segment 0 from its gap, the
//     others speculatively from their first bit, recording the code starts of
//     their first word. It adds one entry of the "accumulate" table per L-bit
//     window to a single register (position + codes << 11 + invalid codes << 22:
//     every code that lies wholly inside the window); near the end of a segment
//     the mask table (where those codes start) gives exact counts;
//   * the true parse is handed from segment to segment in rounds in which every
//     lane walks at once from its neighbour's end until it meets its own
//     recorded starts; Huffman codes resynchronise within a few codes, so the
//     first round is nearly always exact and a second round finds nothing to
//     change (a segment whose predecessor's end moved is walked again);
//   * pass 2 decodes with the 3-symbol table and stops after the segment's
//     count (known from pass 1), so it needs no end test and no single-symbol
//     tail; exponent bytes are packed into 32-bit shared-memory stores (the
//     partial last word of each segment is stored byte by byte after a barrier).
//
// Checks (same verdicts as codec/bf16_decoder.cpp, see kCode* in decode_kernel.cuh),
// all from pass 1: per group of 4 chunks (the CPU decoder's unit): BadGaps if a
// chunk ends elsewhere than the next chunk's gap, else StreamCorrupt if a code
// of the true parse is not a code; then StreamCorrupt for the block if its count
// differs from block_out[b+1] - block_out[b] (and then the block writes nothing).
//
// Shared memory: [pass-2 table 8 KB | stream copy (kSmemStream) | pass-1 tables
// 12 KB, overlaid after pass 1 by the exponent buffer].
#pragma once

#include "decode_kernel.cuh"

namespace df11::cuda::detail {

constexpr int kStreamStride = kWords + 1;                      // smem words per chunk (word 32 = next chunk's word 0)
constexpr int kSmemStreamWords = kThreads * kStreamStride + 4;  // + reads of `next` past the last chunk

// Pass-1 accumulator: bits 0-10 position, 11-21 codes, 22-31 invalid codes;
// the accumulate table's entry is added to it once per lookup.
constexpr uint32_t kAccPos = 0x7FFu;
constexpr int kAccCntShift = 11;
constexpr int kAccInvShift = 22;
// Pass-1 mask entry: bits 0 to L-1 code starts, bit 11 set when the window
// does not start with a code, bits 12-15 the total length. The flag spares
// the walks that need code starts a second table load (the accumulate entry).
constexpr uint32_t kMaskStarts = kLutSize - 1;
constexpr uint32_t kMaskInvalid = 1u << 11;
constexpr int kMaskLenShift = 12;
static_assert(kLutBits <= 11, "code starts below the invalid flag and the length field");

__host__ __device__ __forceinline__ uint32_t ctz32(uint32_t x) {  // x != 0
#if defined(__CUDA_ARCH__)
  return static_cast<uint32_t>(__ffs(static_cast<int>(x)) - 1);
#else
  return static_cast<uint32_t>(__builtin_ctz(x));
#endif
}

// Bit reader over 32-bit MSB-first words aligned to the segment start: the
// window at segment position p is funnelshift(lo, hi, p mod 32) >> (32 - L) while
// p < bound; crossing `bound` moves the words down and loads the word after
// `next`, which then has a whole word of decoding to arrive. Reads are bounded
// by the callers' positions (< end + L < 32 kNW + L: words up to kNW + 2).
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
    return __funnelshift_l(lo, hi, static_cast<uint32_t>(pos)) >> (32 - kLutBits);  // wrap mode: pos mod 32
#else
    return lut_window(hi, lo, pos & 31);
#endif
  }
  // The window at pos where pos may have passed `bound` by less than 32 bits
  // since the last sync(): lets two lookups share one sync() (kOptPair1/2).
  __host__ __device__ __forceinline__ uint32_t window_ahead(int pos) const {
#if defined(__CUDA_ARCH__)
    const bool on = pos >= bound;
    return __funnelshift_l(on ? next : lo, on ? lo : hi, static_cast<uint32_t>(pos)) >> (32 - kLutBits);
#else
    return pos >= bound ? lut_window(lo, next, pos & 31) : lut_window(hi, lo, pos & 31);
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

// Pass-1 tables (host), kLutSize entries each, from the uint16 decode table:
//   acc (uint32): total length of the codes that lie wholly inside the window
//     and start in it, + their number << 11, + (1 << 22) when the window does
//     not start with a code (then 1 code of L bits, as in every other table);
//   mask (uint16): bits 0 to L-1 where those codes start, bit 11 the window does
//     not start with a code, bits 12-15 total length.
inline void build_pass1_luts(const uint16_t* lut, uint32_t* acc, uint16_t* mask) {
  for (uint32_t i = 0; i < kLutSize; ++i) {
    if (lut[i] & kLutInvalid) {
      acc[i] = kMaxCodeLength | (1u << kAccCntShift) | (1u << kAccInvShift);
      mask[i] = static_cast<uint16_t>(1u | kMaskInvalid | (kMaxCodeLength << kMaskLenShift));
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
    mask[i] = static_cast<uint16_t>(m | (off << kMaskLenShift));
  }
}

// The kernel's pass-2 entry from the 3-symbol table (codec/huffman.h):
// bits 0-23 symbols, each rotated right by one bit (merge2_rot), 24-25 their
// count, 28-31 their total length.
__host__ __device__ __forceinline__ uint32_t pass2_entry(uint32_t m) {
  return (rotr1_bytes(m) & 0xFFFFFFu) | (((m >> 28) & 3u) << 24) | (((m >> 24) & 0xFu) << 28);
}

struct Pass1Luts {
  const uint32_t* acc;
  const uint16_t* mask;
};

// Counts from the accumulator's position to `end` (reader synced to it).
// Returns the accumulator: position = the first code start >= end.
template <bool kGlobal, bool kPair = false>
__host__ __device__ __forceinline__ uint32_t count_to_end(BitReader<kGlobal>& r, uint32_t acc, const int end,
                                                          const Pass1Luts& t) {
  const int lim = end - static_cast<int>(kMaxCodeLength);
  int pm = static_cast<int>(acc & kAccPos);
  if (kPair) {
    while (pm <= lim - static_cast<int>(kMaxCodeLength)) {  // two lookups (<= 2 L bits) per sync
      acc += t.acc[r.window(pm)];
      pm = static_cast<int>(acc & kAccPos);
      acc += t.acc[r.window_ahead(pm)];
      pm = static_cast<int>(acc & kAccPos);
      r.sync(pm);
    }
  }
  while (pm <= lim) {  // every code of the window starts before end
    acc += t.acc[r.window(pm)];
    pm = static_cast<int>(acc & kAccPos);
    r.sync(pm);
  }
  while (pm < end) {
    const uint32_t em = t.mask[r.window(pm)];
    const uint32_t m = em & kMaskStarts;
    const uint32_t lm = (1u << (end - pm)) - 1;  // end - pm < L
    const uint32_t hm = m & ~lm;
    const int n = hm ? static_cast<int>(ctz32(hm)) : static_cast<int>(em >> kMaskLenShift);
    acc += (popc32(m & lm) << kAccCntShift) + ((em & kMaskInvalid) << (kAccInvShift - 11)) + static_cast<uint32_t>(n);
    pm += n;
    r.sync(pm);
  }
  return acc;
}

// One lookup of the walks that need code starts (a segment's first word, the
// hand-over): the pass-1 entries of the window at pos, and the codes of the
// window that start before `end` (mv, a mask of their starts).
struct MaskedWindow {
  uint32_t em;  // mask entry
  uint32_t m, lm, mv;  // code starts in the window, the bits before end, starts before end
};
template <bool kGlobal>
__host__ __device__ __forceinline__ MaskedWindow masked_window(const BitReader<kGlobal>& r, int pos, int end,
                                                               const Pass1Luts& t) {
  MaskedWindow x;
  const uint32_t w = r.window(pos);
  x.em = t.mask[w];
  x.m = x.em & kMaskStarts;
  const int rem = end - pos;
  x.lm = rem >= static_cast<int>(kMaxCodeLength) ? kMaskStarts : (1u << rem) - 1;
  x.mv = x.m & x.lm;
  return x;
}

struct LoopSpec {
  uint32_t acc = 0;       // end of the parse from the segment's start: position, codes, invalid codes
  uint32_t mask = 0;      // bit i: a code of that parse starts at i (i < min(32, end))
  uint32_t inv_mask = 0;  // bit i: ... and is not a code
};

// Pass 1 of a segment from `start`: segment 0 from its gap (the true parse),
// the others from 0 (speculative: they do not know their first code start).
// The same code for every lane, so a warp runs it once.
template <bool kGlobal, bool kPair = false, bool kWalk = false>
__host__ __device__ __forceinline__ LoopSpec parse_segment(const uint32_t* base, const int start, const int end,
                                                           const Pass1Luts& t) {
  LoopSpec s;
  BitReader<kGlobal> r;
  r.init(base, start);
  int pm = start;
  uint32_t cnt = 0, inv = 0;
  const int lim = imin(32, end);
  if (kWalk && end >= 32 + static_cast<int>(kMaxCodeLength)) {
    // The usual case: every window of the first word ends before `end`, so
    // all of its codes count and the walk moves by their total length.
    while (pm < 32) {
      const uint32_t em = t.mask[r.window(pm)];
      const uint32_t m = em & kMaskStarts;
      cnt += popc32(m);
      s.mask |= m << pm;
      const uint32_t bad = (em & kMaskInvalid) >> 11;
      s.inv_mask |= bad << pm;
      inv += bad;
      pm += static_cast<int>(em >> kMaskLenShift);
      r.sync(pm);
    }
  }
  while (pm < lim) {  // first word: record the starts
    const MaskedWindow x = masked_window(r, pm, end, t);
    cnt += popc32(x.mv);
    s.mask |= x.mv << pm;
    if (x.em & kMaskInvalid) {
      s.inv_mask |= 1u << pm;
      ++inv;
    }
    const uint32_t hm = x.m & ~x.lm;
    pm += hm ? static_cast<int>(ctz32(hm)) : static_cast<int>(x.em >> kMaskLenShift);
    r.sync(pm);
  }
  s.acc = count_to_end<kGlobal, kPair>(r, static_cast<uint32_t>(pm) | (cnt << kAccCntShift) | (inv << kAccInvShift), end, t);
  return s;
}

// The hand-over walk met the speculative parse at bit s + i (meet's lowest bit,
// i > 0 unless the walk started on it): its codes before that point (those of
// mv below i, and the walk's own invalid code at s, `bad`) plus the
// speculative parse's from there on.
__host__ __device__ __forceinline__ uint32_t met_parse(const LoopSpec& sp, int s, uint32_t meet, uint32_t mv,
                                                       uint32_t bad, uint32_t tc, uint32_t ti) {
  const uint32_t i = ctz32(meet);
  tc += popc32(mv & ((1u << i) - 1));
  if (i > 0) ti += bad;  // an invalid code is alone in mv
  const uint32_t below = (1u << (static_cast<uint32_t>(s) + i)) - 1;  // s + i < 32
  tc += ((sp.acc >> kAccCntShift) & 0x7FFu) - popc32(sp.mask & below);
  ti += (sp.acc >> kAccInvShift) - popc32(sp.inv_mask & below);
  return (sp.acc & kAccPos) | (tc << kAccCntShift) | (ti << kAccInvShift);
}

// The true parse arrives at q: walk it until it meets a speculative start (from
// there on both parses agree), or the end; if neither happens in the first
// word, count the rest from where the walk stopped. Returns the segment's
// accumulator (true end, codes, invalid codes). Needs q < end (0 <= q < L).
template <bool kGlobal, bool kPair = false, bool kWalk = false>
__host__ __device__ __forceinline__ uint32_t resolve(const uint32_t* base, const int q, const int end,
                                                     const LoopSpec& sp, const Pass1Luts& t) {
  BitReader<kGlobal> r;
  r.init(base, q);
  int s = q;
  uint32_t tc = 0, ti = 0;
  if (kWalk && end >= 32 + static_cast<int>(kMaxCodeLength)) {
    // As below, where every window of the first word ends before `end`.
    while (s < 32) {
      const uint32_t em = t.mask[r.window(s)];
      const uint32_t m = em & kMaskStarts;
      const uint32_t bad = (em & kMaskInvalid) >> 11;
      const uint32_t meet = m & (sp.mask >> s);
      if (meet) return met_parse(sp, s, meet, m, bad, tc, ti);
      tc += popc32(m);
      ti += bad;
      s += static_cast<int>(em >> kMaskLenShift);
      r.sync(s);
    }
    return count_to_end<kGlobal, kPair>(r, static_cast<uint32_t>(s) | (tc << kAccCntShift) | (ti << kAccInvShift), end, t);
  }
  for (;;) {
    if (s >= end) return static_cast<uint32_t>(s) | (tc << kAccCntShift) | (ti << kAccInvShift);
    if (s >= 32) return count_to_end<kGlobal, kPair>(r, static_cast<uint32_t>(s) | (tc << kAccCntShift) | (ti << kAccInvShift), end, t);
    const MaskedWindow x = masked_window(r, s, end, t);
    const uint32_t em = x.em, m = x.m, lm = x.lm, mv = x.mv;
    const uint32_t meet = mv & (sp.mask >> s);
    if (meet) return met_parse(sp, s, meet, mv, (em & kMaskInvalid) >> 11, tc, ti);
    tc += popc32(mv);
    if (em & kMaskInvalid) ++ti;
    const uint32_t hm = m & ~lm;
    if (hm) {
      s += static_cast<int>(ctz32(hm));
      return static_cast<uint32_t>(s) | (tc << kAccCntShift) | (ti << kAccInvShift);
    }
    s += static_cast<int>(em >> kMaskLenShift);
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

// x << (s mod 32), and the bits that shift out: (x:0 << (s mod 32)) >> 32.
__host__ __device__ __forceinline__ uint32_t shl_wrap(uint32_t x, uint32_t s) {
#if defined(__CUDA_ARCH__)
  return __funnelshift_l(0u, x, s);
#else
  return x << (s & 31);
#endif
}
__host__ __device__ __forceinline__ uint32_t shl_spill(uint32_t x, uint32_t s) {
#if defined(__CUDA_ARCH__)
  return __funnelshift_l(x, 0u, s);
#else
  return static_cast<uint32_t>((uint64_t{x} << (s & 31)) >> 32);
#endif
}

template <bool kGlobal, bool kPair = false>
__host__ __device__ __forceinline__ Pass2Tail decode_to_buffer(const uint32_t* base, int q, uint32_t cnt,
                                                               const uint32_t* __restrict__ lut2, uint8_t* buf,
                                                               uint32_t o) {
  Pass2Tail tail;
  if (cnt == 0) return tail;
  BitReader<kGlobal> r;
  r.init(base, q);
  // o8: bit position in the buffer; the word being filled is o8 / 32 (wp) and
  // acc holds its bits below o8 mod 32.
  uint32_t* wp = reinterpret_cast<uint32_t*>(buf) + (o >> 2);
  uint32_t o8 = 8 * o;
  const int e8 = static_cast<int>(8 * (o + cnt));
  uint32_t acc = 0;
  int p = q;
  // One lookup: up to 3 symbols into acc, the full word out.
  auto step = [&](uint32_t w) {
    const uint32_t e = lut2[w];
    p += static_cast<int>(e >> 28);
    const uint32_t sy = e & 0xFFFFFFu;
    const uint32_t n8 = o8 + ((e >> 21) & 0x18u);
    acc |= shl_wrap(sy, o8);
    if ((n8 ^ o8) & 32u) {  // the word is full (a lookup adds at most 24 bits)
      *wp = acc;
      ++wp;
      acc = shl_spill(sy, o8);
    }
    o8 = n8;
  };
  if (kPair) {
    while (static_cast<int>(o8) <= e8 - 48) {  // two whole lookups are ours: one sync for both
      step(r.window(p));
      step(r.window_ahead(p));
      r.sync(p);
    }
  }
  while (static_cast<int>(o8) <= e8 - 24) {  // a whole lookup is ours
    step(r.window(p));
    r.sync(p);
  }
  while (static_cast<int>(o8) < e8) {
    const uint32_t e = lut2[r.window(p)];
    p += static_cast<int>(e >> 28);
    const uint32_t sy = e & 0xFFFFFFu;
    uint32_t c8 = (e >> 21) & 0x18u;
    const uint32_t left8 = static_cast<uint32_t>(e8) - o8;
    c8 = c8 < left8 ? c8 : left8;
    const uint32_t n8 = o8 + c8;
    acc |= shl_wrap(sy, o8);
    if ((n8 ^ o8) & 32u) {
      *wp++ = acc;
      acc = shl_spill(sy, o8);
    }
    o8 = n8;
    r.sync(p);
  }
  tail.wi = o8 >> 5;
  tail.acc = acc;
  tail.from = tail.wi == (o >> 2) ? (o & 3) : 0;
  tail.to = (o8 & 31) >> 3;
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

// Hands the true parse from segment to segment (all lanes of a warp together;
// `pend` in: each segment's parse end from parse_segment, true for segment 0).
// Round 1 walks every later segment from its predecessor's speculative end:
// exact for segment 1, and for segment h whenever segment h-1's true end equals
// its speculative end, which resynchronisation makes the rule. A segment whose
// predecessor's end moved is walked again in the next round; the rounds stop
// when no lane changed (at most P rounds). Out: acc (true end, codes, invalid
// codes), start (true first code start) and pend (true end) of every segment.
template <bool kGlobal, bool kPair = false, bool kWalk = false>
__host__ __device__ __forceinline__ int resolve_round(const uint32_t* base, const int q, const int end,
                                                     const LoopSpec& sp, const Pass1Luts& t, uint32_t& acc) {
  if (q < end) {
    acc = resolve<kGlobal, kPair, kWalk>(base, q, end, sp, t);
    return static_cast<int>(acc & kAccPos);
  }
  acc = 0;  // no code starts in this segment
  return q;
}

// cp.async: global -> shared without registers (sm_80+). src_bytes 0 fills zeros.
__device__ __forceinline__ void cp_async16(void* dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(static_cast<uint32_t>(__cvta_generic_to_shared(dst))),
               "l"(src));
}
__device__ __forceinline__ void cp_async4(void* dst, const void* src, uint32_t src_bytes) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" ::"r"(
                   static_cast<uint32_t>(__cvta_generic_to_shared(dst))),
               "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;" ::: "memory"); }


template <int P, bool kSmemStream>
struct LoopLayout {
  static constexpr uint32_t kLut2Bytes = kLutSize * 4;
  static constexpr uint32_t kStreamBytes = kSmemStream ? ((kSmemStreamWords * 4 + 15) / 16) * 16 : 0;
  static constexpr uint32_t kFixed = kLut2Bytes + kStreamBytes;  // then the pass-1 tables / exponent buffer
  static constexpr uint32_t kPass1Bytes = kLutSize * 4 + kLutSize * 2;
};

// Shared memory of one block's decode.
struct LoopSmem {
  const uint32_t* lut2;
  uint32_t lut2_bar;  // its mbarrier (sm_90: wait before pass 2)
  Pass1Luts t1;
  uint32_t* sstream;
  uint8_t* buf;
  uint32_t* warp_total;  // one entry per warp
};

// What a thread needs to know about format block b of tensor d before decoding it.
template <int P>
struct LoopBlock {
  uint64_t b = 0, t = 0;
  bool active = false, range_ok = false;
  uint32_t m_active = 0, expected = 0, align = 0;
  int gap = 0, end = 0, expect = 0;  // segment-relative
  uint64_t out_begin = 0;

  __device__ __forceinline__ void load(const TensorDesc& d, uint64_t b_, uint32_t c, uint32_t h, uint32_t buf_bytes) {
    b = b_;
    const uint64_t n_threads = d.n_threads;
    t = b * kThreads + c;
    active = t < n_threads;
    const uint64_t chunks_left = n_threads - b * kThreads;
    m_active = chunks_left < kThreads ? static_cast<uint32_t>(chunks_left) : kThreads;
    gap = end = expect = 0;
    if (active) chunk_geometry<P>(d, t, h, gap, end, expect);
    out_begin = __ldg(d.block_out + b);
    const uint64_t out_end = __ldg(d.block_out + b + 1);
    range_ok = out_begin <= out_end && out_end <= d.n && out_end - out_begin + 32 <= buf_bytes;
    expected = range_ok ? static_cast<uint32_t>(out_end - out_begin) : 0;
    align = static_cast<uint32_t>(out_begin & 15);
  }
};

// The block's stream words: chunk c's words 0..32 at sstream[33 c ...] (word
// 32 is the next chunk's word 0; the stride of 33 keeps a warp's reads in
// different banks). Word w of the block goes to w + w / 32, so each copy
// instruction of a warp reads 128 contiguous bytes; then the first 64 threads
// copy word 32 of each chunk. Completes with cp_async_wait_all().
template <int kT>
__device__ __forceinline__ void stage_stream(const TensorDesc& d, uint64_t b, uint32_t tid, uint32_t* sstream) {
  static_assert(kThreads * kWords % kT == 0, "whole rounds of copies");
  const uint64_t w0 = b * kThreads * kWords;
  const uint64_t avail64 = d.n_threads * kWords + 1 - w0;  // stream words from w0 on
  const uint32_t* src = d.stream + w0 + tid;
  uint32_t* dst = sstream + tid + tid / 32;
  constexpr uint32_t kRounds = kThreads * kWords / kT;
  if (avail64 >= kThreads * kWords + 1) {
#pragma unroll
    for (uint32_t k = 0; k < kRounds; ++k) cp_async4(dst + k * (kT + kT / 32), src + k * kT, 4);
    if (tid < kThreads) cp_async4(sstream + tid * kStreamStride + kWords, d.stream + w0 + (tid + 1) * kWords, 4);
  } else {
    const uint32_t avail = static_cast<uint32_t>(avail64);
#pragma unroll
    for (uint32_t k = 0; k < kRounds; ++k) {
      const bool ok = tid + k * kT < avail;
      cp_async4(dst + k * (kT + kT / 32), ok ? src + k * kT : d.stream, ok ? 4 : 0);
    }
    if (tid < kThreads) {
      const bool ok = (tid + 1) * kWords < avail;
      cp_async4(sstream + tid * kStreamStride + kWords, ok ? d.stream + w0 + (tid + 1) * kWords : d.stream,
                ok ? 4 : 0);
    }
  }
  if (tid < 4) sstream[kThreads * kStreamStride + tid] = 0;
}

// The block's sign-mantissa bytes into L2 ahead of the merge. sm_90: one bulk
// prefetch, issued by one thread and run by the copy engine (+2.5% on a 4096x4096
// tensor against one prefetch instruction per 128-byte line: round 6);
// elsewhere those per-line prefetches, spread over the block's threads.
template <int kT>
__device__ __forceinline__ void prefetch_sm(const TensorDesc& d, uint64_t out_begin, uint32_t expected,
                                            uint32_t tid) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (tid != 0 || expected == 0) return;
  const uint64_t a = out_begin & ~uint64_t{15};
  const uint32_t bytes = static_cast<uint32_t>((out_begin + expected - a + 15) & ~uint64_t{15});  // sm is padded to 16
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(d.sm + a), "r"(bytes) : "memory");
#else
  const uint8_t* pbase = d.sm + (out_begin & ~uint64_t{127});
  const uint64_t lines = (out_begin + expected - (out_begin & ~uint64_t{127}) + 127) >> 7;
  for (uint64_t l = tid; l < lines; l += kT) asm volatile("prefetch.global.L2 [%0];" ::"l"(pbase + (l << 7)));
#endif
}

// When a block prefetches its sign-mantissa bytes: a block of the
// launch's first wave right after its prologue, where nothing else competes
// for memory yet; any later block after pass 1, so that the prefetch does not
// delay the stream loads of the blocks starting beside it (round 6: +2% on a
// 4096x14336 tensor, +1% on the Llama layer, against after the prologue for all).
__device__ __forceinline__ bool prefetch_late(const LaunchParams& prm, uint64_t gblock) {
  return gblock >= prm.resident;
}

// The stream words and block-output entry of the block that will most likely
// take this block's place (the one prm.resident blocks on, if it is of the
// same tensor) into L2: that block's own loads then wait for L2, not for DRAM
// queues full of the merges of the blocks before it.
__device__ __forceinline__ void prefetch_ahead(const LaunchParams& prm, const TensorDesc& d, uint64_t tensor_blocks,
                                               uint64_t b, uint32_t tid) {
  const uint64_t nb = b + prm.resident;
  if (prm.resident == 0 || nb >= tensor_blocks) return;
  constexpr uint32_t kLines = (kThreads * kWords * 4 + 128) / 128 + 1;  // the block's stream words (+ 1 past), any alignment
  const uint64_t w0 = nb * kThreads * kWords;
  const uint64_t avail = 4 * (d.n_threads * kWords + 1 - w0);  // stream bytes from w0 on (nb < blocks: > 0)
  const char* s = reinterpret_cast<const char*>(d.stream + w0);
  if (tid < kLines && 128 * tid < avail) asm volatile("prefetch.global.L2 [%0];" ::"l"(s + 128 * tid));
  if (tid == kLines) asm volatile("prefetch.global.L2 [%0];" ::"l"(d.block_out + nb));
  if (tid == kLines + 1) asm volatile("prefetch.global.L2 [%0];" ::"l"(d.gaps + nb * (kThreads / 2)));
}

// One bulk copy (sm_90, one thread) completing on mbarrier bar.
__device__ __forceinline__ void bulk_copy(void* dst, const void* src, uint32_t bytes, uint32_t bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
          static_cast<uint32_t>(__cvta_generic_to_shared(dst))),
      "l"(src), "r"(bytes), "r"(bar)
      : "memory");
#else
  (void)dst;
  (void)src;
  (void)bytes;
  (void)bar;
#endif
}

// Tables -> shared memory. sm_90: bulk copies by the copy engine (TMA), issued
// by thread 0, each completing on its own mbarrier (the caller waits with
// wait_tables): here the pass-1 tables, on bar_pass1; the pass-2 table, which
// pass 1 does not need, by load_lut2() once they are in, so that in a launch's
// first wave the pass-1 tables of 528 blocks do not share L2 bandwidth with
// their pass-2 tables (round 5). No per-thread instructions, and whole-line
// shared-memory writes (16-byte cp.async writes cost 2-4x the ideal
// shared-memory wavefronts: ncu, docs/PERFORMANCE.md round 4). Elsewhere
// cp.async for all 20 KB here (complete after cp_async_wait_all()).
template <int kT>
__device__ __forceinline__ void load_tables(const uint32_t* tables, uint32_t tid, uint8_t* lut2_dst, uint8_t* pass1_dst,
                                            uint32_t bar_pass1) {
  constexpr uint32_t kLut2 = kLutSize * 4, kPass1 = kLutSize * 4 + kLutSize * 2;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  (void)kT;
  (void)lut2_dst;
  if (tid == 0) bulk_copy(pass1_dst, tables + kLut2 / 4, kPass1, bar_pass1);
#else
  (void)bar_pass1;
  static_assert(kLut2 % (16 * kT) == 0 && kPass1 % (16 * kT) == 0, "whole rounds of copies");
  const uint4* src = reinterpret_cast<const uint4*>(tables) + tid;
#pragma unroll
  for (uint32_t k = 0; k < kLut2 / (16 * kT); ++k) cp_async16(reinterpret_cast<uint4*>(lut2_dst) + tid + k * kT, src + k * kT);
  src += kLut2 / 16;
#pragma unroll
  for (uint32_t k = 0; k < kPass1 / (16 * kT); ++k) cp_async16(reinterpret_cast<uint4*>(pass1_dst) + tid + k * kT, src + k * kT);
#endif
}

// The pass-2 table (sm_90; elsewhere load_tables copied it).
__device__ __forceinline__ void load_lut2(const uint32_t* tables, uint32_t tid, uint8_t* lut2_dst, uint32_t bar_lut2) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (tid == 0) bulk_copy(lut2_dst, tables, kLutSize * 4, bar_lut2);
#else
  (void)tables;
  (void)tid;
  (void)lut2_dst;
  (void)bar_lut2;
#endif
}

// mbarrier for load_tables (sm_90): initialised by thread 0; the caller
// synchronises the block before anyone waits on it.
__device__ __forceinline__ void init_tables_bar(uint32_t bar, uint32_t tid) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (tid == 0) asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(bar) : "memory");
  if (tid < 32) __syncwarp();  // the compiler may issue the init for the whole warp (uniform datapath)
  if (tid == 0) asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
#else
  (void)bar;
  (void)tid;
#endif
}

__device__ __forceinline__ void wait_tables(uint32_t bar, uint32_t parity) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "{\n\t.reg .pred done;\n"
      "WAIT_%=:\n\t"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n\t"
      "@!done bra WAIT_%=;\n\t}" ::"r"(bar),
      "r"(parity)
      : "memory");
#else
  (void)bar;
  (void)parity;
#endif
}

constexpr uint32_t kLoopTableBytes = kLutSize * 10;  // one copy of the tables: pass-2 table, acc, mask

// Blocks per SM that the production kernel is compiled for (__launch_bounds__):
// 5 x 256 threads need <= 48 registers (56 unbounded, no spills at 48); with
// format v2's 20 KB of tables a block needs ~42 KB of shared memory, so 5 fit
// in the H100's 228 KB where 4 did before (+4% on the Llama layer: round 6).
constexpr int kLoopMinBlocks = 5;

// Choices of the loop kernel (round 7, docs/PERFORMANCE.md, each measured
// against the kernel without it, all in production): kOptPair1, two pass-1
// lookups per bit-reader sync; kOptPair2, the same in pass 2; kOptWalk, the
// first-word walks (pass 1, hand-over) without the end tests where the segment
// ends more than a window after the first word; kOptInline, descriptors from
// the kernel parameters (kInlineTensors). The kernel and the host model
// (host_sim.cu) use kLoopOpt; the variants that turned them off, and the
// timed, traced and diagnostic ones, left with df11_gpu_bench's variant list
// (git history: bench_variants.cu before issue 12). (Measured and dropped, git 419a651: two funnel
// shifts per paired window, off the lookup chain, and two pairs per loop test
// in pass 2: no change. Git 00ce891: the tables by cp.async instead of TMA,
// 2.5-5% slower; the first wave's later slots delayed before their loads, no
// change: each SM's first block still waits ~3 us for its stream.)
enum : int { kOptPair1 = 1, kOptPair2 = 2, kOptWalk = 4, kOptInline = 16 };
constexpr int kLoopOpt = kOptPair1 | kOptPair2 | kOptWalk | kOptInline;

// Decodes one format block whose tables and stream are in shared memory (the
// block synchronised after they arrived): pass 1, the hand-over, the scan and
// the checks, pass 2, then the merge.
template <int P, bool kSmemStream>
__device__ __forceinline__ void decode_block(const LaunchParams& prm, const TensorDesc& d, uint64_t gblock,
                                             const LoopBlock<P>& blk, const LoopSmem& sm, uint32_t tid) {
  constexpr bool kGlobal = !kSmemStream;
  constexpr int kT = kThreads * P;
  constexpr int kNW = kWords / P;
  constexpr int kSegBits = 32 * kNW;
  const uint32_t h = tid % P;
  const uint32_t c = tid / P;
  const bool active = blk.active;
  // Segment words (the global stream is padded past its extra word: see upload()).
  const uint32_t* const base =
      kSmemStream ? sm.sstream + c * kStreamStride + h * kNW : d.stream + blk.t * kWords + h * kNW;

  // Pass 1: every lane parses its segment (segment 0 from the gap, the others
  // from their first bit), then the true parse is handed on in rounds.
  LoopSpec sp;
  int start = h == 0 ? blk.gap : 0;
  constexpr bool kPair1 = (kLoopOpt & kOptPair1) != 0, kPair2 = (kLoopOpt & kOptPair2) != 0,
                 kWalk = (kLoopOpt & kOptWalk) != 0;
  if (active) sp = parse_segment<kGlobal, kPair1, kWalk>(base, start, blk.end, sm.t1);
  uint32_t acc = sp.acc;  // this segment's true end, codes and invalid codes
  int pend = static_cast<int>(acc & kAccPos);  // past a short last chunk it may be < 0
  if (P > 1) {
    int q_done = -0x7FFFFFFF;  // the start this lane's result is for (segment 0: its gap)
    for (;;) {
      const int q = __shfl_up_sync(0xFFFFFFFFu, pend, 1) - kSegBits;
      const bool redo = active && h != 0 && q != q_done;
      if (redo) {
        q_done = q;
        start = q;
        pend = resolve_round<kGlobal, kPair1, kWalk>(base, q, blk.end, sp, sm.t1, acc);
      }
      if (!__any_sync(0xFFFFFFFFu, redo)) break;
    }
  }
  const uint32_t cnt = (acc >> kAccCntShift) & 0x7FFu;
  uint32_t inv = acc >> kAccInvShift;
#pragma unroll
  for (int off = 1; off < P; off <<= 1) inv |= __shfl_xor_sync(0xFFFFFFFFu, inv, off);

  // Block exclusive scan of the counts (chunk-major, segment-minor).
  const uint32_t incl = scan_publish(cnt, sm.warp_total, tid);
  __syncthreads();  // also: every thread is done with the pass-1 tables
  if (blk.range_ok && prefetch_late(prm, gblock)) prefetch_sm<kT>(d, blk.out_begin, blk.expected, tid);
  wait_tables(sm.lut2_bar, 0);  // the pass-2 table (arrived during pass 1)
  uint32_t excl, total;
  scan_finish<kT>(incl, cnt, sm.warp_total, tid, excl, total);

  if (!blk.range_ok) {
    if (tid == 0) report(prm.status, gblock, 0, kCodeBadBlockOffsets);
    return;
  }
  if (active && h == P - 1) {
    const uint32_t code = pend != blk.expect ? kCodeBadGaps : inv ? kCodeStreamCorrupt : 0u;
    if (code) report(prm.status, gblock, status_pos(c, blk.m_active), code);
  }
  if (total != blk.expected) {  // block-uniform: write nothing
    if (tid == 0) report(prm.status, gblock, kThreads, kCodeStreamCorrupt);
    return;
  }

  // Pass 2: whole words, barrier, then the partial last word of each segment.
  Pass2Tail tail;
  if (active) tail = decode_to_buffer<kGlobal, kPair2>(base, start, cnt, sm.lut2, sm.buf, blk.align + excl);
  __syncthreads();
  tail_bytes(tail, sm.buf);
  __syncthreads();

  merge_store_block<kT>(d, blk.out_begin, blk.align, blk.expected, sm.buf, tid);
}

// One CUDA block per format block. Shared memory: [pass-2 table 8 KB | stream
// copy | pass-1 tables 12 KB, overlaid after pass 1 by the exponent buffer].
// The production kernel is decode_loop_kernel<4, true> (decoder.cu).
template <int P, bool kSmemStream>
__global__ void __launch_bounds__(kThreads * P, kLoopMinBlocks) decode_loop_kernel(const __grid_constant__ LaunchParams prm) {
  using L = LoopLayout<P, kSmemStream>;
  constexpr int kT = kThreads * P;
  extern __shared__ uint4 smem_u4[];
  uint8_t* const smem = reinterpret_cast<uint8_t*>(smem_u4);
  uint8_t* const buf = smem + L::kFixed;
  __shared__ uint32_t s_warp_total[kT / 32];
  __shared__ alignas(8) uint64_t s_tables_bar[2];  // pass-1 tables, pass-2 table
  const uint32_t bar = static_cast<uint32_t>(__cvta_generic_to_shared(&s_tables_bar[0]));
  const LoopSmem sm{reinterpret_cast<const uint32_t*>(smem), bar + 8,
                    Pass1Luts{reinterpret_cast<const uint32_t*>(buf), reinterpret_cast<const uint16_t*>(buf + kLutSize * 4)},
                    reinterpret_cast<uint32_t*>(smem + L::kLut2Bytes), buf, s_warp_total};

  const uint32_t tid = threadIdx.x;
  const uint64_t gblock = blockIdx.x;
  // kOptInline: descriptors and first blocks from the kernel parameters where
  // the launch carries them (one memory round trip less before the data loads).
  const bool inl = (kLoopOpt & kOptInline) != 0 && prm.count <= kInlineTensors;
  const uint64_t* const begins = inl ? prm.inline_begin : prm.block_begin;
  const uint32_t ti = prm.count == 1 ? 0u : find_block_tensor_warp(prm, gblock, begins);
  const TensorDesc& d = inl ? prm.inline_desc[ti] : prm.table[ti];
  const uint64_t tb = begins[ti];  // the tensor's first block

  // Tables, stream and the block's scalars all in flight at once.
  init_tables_bar(bar, tid);
  init_tables_bar(bar + 8, tid);
  const uint32_t* const tables = d.lut_loop + (blockIdx.x % kLoopTableCopies) * (kLoopTableBytes / 4);
  load_tables<kT>(tables, tid, smem, buf, bar);
  if (kSmemStream) stage_stream<kT>(d, gblock - tb, tid, sm.sstream);
  LoopBlock<P> blk;
  blk.load(d, gblock - tb, tid / P, tid % P, prm.buf_bytes);
  cp_async_wait_all();
  __syncthreads();  // stream ready (and the mbarrier initialised)
  // Not before the barrier: in a launch's first wave every block's prefetch at
  // once (13 MB for 4096x4096) delayed the streams that pass 1 waits for (round 5).
  if (blk.range_ok && !prefetch_late(prm, gblock)) prefetch_sm<kT>(d, blk.out_begin, blk.expected, tid);
  if (gblock < prm.resident)  // the first wave only (later, the lines did not stay in L2: round 5)
    prefetch_ahead(prm, d, begins[ti + 1] - tb, gblock - tb, tid);
  wait_tables(bar, 0);
  load_lut2(tables, tid, smem, bar + 8);

  decode_block<P, kSmemStream>(prm, d, gblock, blk, sm, tid);
}

#endif  // __CUDACC__

}  // namespace df11::cuda::detail
