// The df11 BF16 decode kernels (docs/FORMAT.md section 4; codec/bf16_decoder.cpp
// is the CPU decoder that walks the same arrays with the same checks).
// Production since 2026-11-22: decode_loop_kernel<4, true> in decode_loop.cuh
// (one loop per segment, pass-1 accumulate table, packed pass-2 stores), which
// keeps the block structure, checks and merge of the kernels below. The
// description below is of decode_kernel, one thread per chunk, which the split
// kernel (end of this file: 4 threads per chunk, speculative segments
// resynchronised exactly) extends; docs/PERFORMANCE.md "GPU decoder" compares
// all variants.
//
// One CUDA block of 64 threads decodes one format block (64 chunks of 1024
// stream bits); one launch covers a whole batch of tensors, each block finding
// its tensor by a 32-ary search of the block prefix.
//
//   1. the tensor's decode table (global -> shared, 16-byte loads); each thread
//      loads its chunk's 32 stream words + 1 following word into registers
//      (8 x 16-byte loads + 1 word);
//   2. pass 1 counts the codes that start in [gap, min(1024, total_bits - 1024 t))
//      of its chunk;
//   3. a block exclusive scan of the counts gives each thread its output offset;
//      the block's total must equal block_out[b+1] - block_out[b];
//   4. pass 2 decodes again, writing exponent bytes into a shared buffer offset by
//      block_out[b] & 15 so that buffer position and global index agree mod 16;
//   5. the block merges exponents with the sign+mantissa bytes, 16 weights per
//      thread step: one 16-byte load of sign-mantissa bytes, one 16-byte shared
//      load of exponents, two 16-byte stores (scalar stores only in the two
//      ragged groups at the block's ends).
//
// Decoding keeps the stream in registers (fully unrolled loop over the 32 words,
// so no dynamic register indexing): window = w[k]:w[k+1], position p in [0, 32).
// kMulti: the shared table is the uint32 multi-symbol table (up to 3 codes per
// L-bit lookup (L = kLutBits), all starting inside the window); near the chunk end (where a
// later code of the window could start past the chunk end) it falls back to
// the single-symbol uint16 table, read through the read-only cache.
//
// Safety: every read is at a position fixed by the (host-validated) geometry,
// never by stream contents; writes go only to [block_out[b], block_out[b+1])
// and to the shared buffer: a block whose count is wrong writes nothing.
// Inconsistencies are reported through atomicMin on a 64-bit status key
// (block, chunk, code) so that the first error is the one the CPU decoder reports.
#pragma once
#include <cstdint>

#include <cuda_runtime.h>

#include "huffman.h"
#include "layout.h"

// The chunk decoder and the merge are also compiled for the host, so that the
// kernel's arithmetic can be checked without a GPU.
#if defined(__CUDA_ARCH__)
#define DF11_LDG(p) __ldg(p)
#define DF11_UNROLL _Pragma("unroll")
#else
#define DF11_LDG(p) (*(p))
#define DF11_UNROLL
#endif

namespace df11::cuda::detail {

constexpr int kThreads = 64;           // = kBlockThreads of the format
// Copies of decode_loop.cuh's 20 KB of tables that upload() places one after
// another: every block of a launch reads its tensor's tables, and with one copy
// those few L2 lines were a hot spot (block b reads copy b mod 4; 4, 8 and 16
// copies measured alike, 32 slower: docs/PERFORMANCE.md round 5).
constexpr uint32_t kLoopTableCopies = 4;
constexpr int kWords = 32;             // = kChunkWords
using ::df11::kMultiInvalid;  // codec/huffman.h: the 3-symbol table is built by df11::build_multi_lut

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
  const uint16_t* lut;
  const uint32_t* lut_multi;
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

struct KernelConfig {
  bool multi;        // multi-symbol table
  bool prefetch;     // L2 prefetch of the block's sign-mantissa bytes at block start
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

// Decodes the codes of one chunk that start in [p0, end) (chunk-relative bits),
// handing each lookup's symbols to sink.put(symbols, count) (symbol i in byte i,
// count 1..3; bytes past count are zero). Returns the end position and ORs the
// table entries' invalid flags into bit 31 of `bad`.
//
// kNW: words in the range (the array holds kNW + 1). kTrack: *last_inv gets the
// position of the last code that is not a code (-1 if none), for speculative decoding.
template <bool kMulti, class Sink, int kNW = kWords, bool kTrack = false>
__host__ __device__ __forceinline__ int decode_chunk(const uint32_t (&w)[kNW + 1], int p, const int end,
                                                     const void* lut_smem, const uint16_t* __restrict__ lut_global,
                                                     Sink& sink, uint32_t& bad, int* last_inv = nullptr) {
DF11_UNROLL
  for (int k = 0; k < kNW; ++k) {
    const uint32_t hi = w[k], lo = w[k + 1];
    const int rem = end - 32 * k;  // chunk bits left from the start of word k
    if (kMulti) {
      const uint32_t* lutm = static_cast<const uint32_t*>(lut_smem);
      const int lim_m = imin(32, rem - static_cast<int>(kMaxCodeLength - 1));  // every code of the window starts before `end`
      while (p < lim_m) {
        const uint32_t e = lutm[lut_window(hi, lo, p)];
        bad |= e;
        if (kTrack && (e & kMultiInvalid)) *last_inv = 32 * k + p;
        sink.put(e & 0xFFFFFFu, (e >> 28) & 3);  // invalid entries: count 1
        p += (e >> 24) & 0xF;
      }
      const int lim_s = imin(32, rem);
      while (p < lim_s) {
        const uint32_t e = lut_global[lut_window(hi, lo, p)];
        bad |= e << 19;  // kLutInvalid (bit 12) -> bit 31
        if (kTrack && (e & kLutInvalid)) *last_inv = 32 * k + p;
        sink.put(e & 0xFFu, 1);
        p += (e >> 8) & 0xF;
      }
    } else {
      const uint16_t* luts = static_cast<const uint16_t*>(lut_smem);
      const int lim_s = imin(32, rem);
      while (p < lim_s) {
        const uint32_t e = luts[lut_window(hi, lo, p)];
        bad |= e << 19;
        if (kTrack && (e & kLutInvalid)) *last_inv = 32 * k + p;
        sink.put(e & 0xFFu, 1);
        p += (e >> 8) & 0xF;
      }
    }
    p -= 32;
  }
  return p + 32 * kNW;
}

struct CountSink {
  uint32_t n = 0;
  __host__ __device__ __forceinline__ void put(uint32_t, uint32_t c) { n += c; }
};

// Exponent bytes into the shared block buffer.
struct SmemSink {
  uint8_t* buf;
  uint32_t o;
  __host__ __device__ __forceinline__ void put(uint32_t s, uint32_t c) {
    buf[o] = static_cast<uint8_t>(s);
    if (c > 1) buf[o + 1] = static_cast<uint8_t>(s >> 8);
    if (c > 2) buf[o + 2] = static_cast<uint8_t>(s >> 16);
    o += c;
  }
};

// ---- split chunks: P threads per 1024-bit chunk -----------------------------------
// Segment h of a chunk covers bits [S, S + 1024/P), S = h * 1024/P. Segment 0
// starts at the gap. A later segment does not know where its first code starts,
// so pass 1 decodes it speculatively from S, remembering which positions of its
// first word were code starts (`mask`). Huffman codes resynchronise: the true
// parse, which arrives at q in [S, S + L) from the previous segment, usually
// meets one of those starts within a few codes; from there the speculative
// parse is the true one. resolve_segment() walks the true parse from q to that
// meeting point (or, if none within the first word, decodes the segment again
// from q), giving the segment's exact count, end and error flag. Pass 2 then
// decodes every segment from its true start. Positions are segment-relative.
struct SegSpec {
  uint32_t cnt = 0;   // codes of the speculative parse
  int pend = 0;       // its end position
  uint32_t mask = 0;  // bit i: a speculative code starts at i (i < 32)
  int last_inv = -1;  // last speculative position that was not a code
  uint32_t bad = 0;
};

template <bool kMulti, int kNW>
__host__ __device__ __forceinline__ SegSpec speculate_segment(const uint32_t (&w)[kNW + 1], int end,
                                                              const void* lut_smem,
                                                              const uint16_t* __restrict__ lut_global) {
  SegSpec r;
  int p = 0;
  const int lim = imin(32, end);
  while (p < lim) {  // first word one code at a time, recording the starts
    const uint32_t e = lut_global[lut_window(w[0], w[1], p)];
    r.mask |= 1u << p;
    if (e & kLutInvalid) r.last_inv = p;
    ++r.cnt;
    p += (e >> 8) & 0xF;
  }
  CountSink c;
  uint32_t bad_rest = 0;
  r.pend = decode_chunk<kMulti, CountSink, kNW, true>(w, p, end, lut_smem, lut_global, c, bad_rest, &r.last_inv);
  r.cnt += c.n;
  return r;
}

struct SegTrue {
  uint32_t cnt;
  int pend;      // true end (first code start >= end)
  uint32_t bad;  // bit 31: a true code of this segment is not a code
};

template <bool kMulti, int kNW>
__host__ __device__ __forceinline__ SegTrue resolve_segment(const uint32_t (&w)[kNW + 1], int q, int end,
                                                            const SegSpec& sp, const void* lut_smem,
                                                            const uint16_t* __restrict__ lut_global) {
  SegTrue r{0, q, 0};
  int s = q;
  while (s < end && s < 32 && !((sp.mask >> s) & 1)) {
    const uint32_t e = lut_global[lut_window(w[0], w[1], s)];
    r.bad |= e << 19;
    ++r.cnt;
    s += (e >> 8) & 0xF;
  }
  if (s >= end) {
    r.pend = s;
  } else if (s < 32) {  // met the speculative parse at s
    r.cnt += sp.cnt - popc32(sp.mask & ((1u << s) - 1));
    r.pend = sp.pend;
    if (sp.last_inv >= s) r.bad |= kMultiInvalid;
  } else {  // no meeting point in the first word: decode the rest again
    CountSink c;
    uint32_t b = 0;
    r.pend = decode_chunk<kMulti, CountSink, kNW>(w, s, end, lut_smem, lut_global, c, b);
    r.cnt += c.n;
    r.bad |= b;
  }
  return r;
}

// 2 weights: sign-mantissa bytes s (byte i = weight i) and exponents e -> one u32 of 2 BF16.
__host__ __device__ __forceinline__ uint32_t merge2(uint32_t s, uint32_t e, uint32_t sel) {
#if defined(__CUDA_ARCH__)
  const uint32_t v = __byte_perm(s, e, sel);  // (e << 8 | s) per 16-bit lane
#else
  const uint64_t xy = uint64_t{e} << 32 | s;
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>((xy >> (8 * ((sel >> (4 * i)) & 7))) & 0xFF) << (8 * i);
#endif
  return ((v >> 1) & 0x7F807F80u) | (v & 0x007F007Fu) | ((v & 0x00800080u) << 8);
}

__host__ __device__ __forceinline__ uint16_t merge1(uint32_t s, uint32_t e) {
  return static_cast<uint16_t>(((s & 0x80u) << 8) | (e << 7) | (s & 0x7Fu));
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

// Weights straight to global memory (no shared buffer): a thread's exponents
// gather in a 64-bit register until a globally aligned group of 8 weights is
// complete; the group is merged with its 8 sign-mantissa bytes (loaded two
// groups ahead) and stored with one 16-byte store. The groups at both ends of
// the thread's range [lo, hi), shared with its neighbours, are stored element
// by element, as is everything when the output is not 16-byte aligned.
// Reads up to 24 bytes past hi in `sm` (the device copy is padded for it).
struct DirectSink {
  uint16_t* out;
  const uint8_t* sm;
  uint64_t lo, hi;  // the thread's outputs
  uint64_t g;       // current group's first index (multiple of 8)
  uint64_t acc;     // exponent bytes of the current group (byte j = weight g + j)
  uint32_t n;       // weights of the current group before the next one (incl. those before lo)
  bool vec;
  uint2 s0, s1, s2;  // sign-mantissa bytes of groups g, g + 8, g + 16

  __host__ __device__ __forceinline__ static uint2 load8(const uint8_t* p) {
    return DF11_LDG(reinterpret_cast<const uint2*>(p));
  }
  __host__ __device__ __forceinline__ void init(uint16_t* o, const uint8_t* s, uint64_t first, uint64_t last,
                                                bool aligned) {
    out = o;
    sm = s;
    lo = first;
    hi = last;
    g = first & ~uint64_t{7};
    n = static_cast<uint32_t>(first & 7);
    acc = 0;
    vec = aligned;
    s0 = load8(sm + g);
    s1 = load8(sm + g + 8);
    s2 = load8(sm + g + 16);
  }
  __host__ __device__ __forceinline__ void store(uint2 s) {
    const uint32_t e0 = static_cast<uint32_t>(acc), e1 = static_cast<uint32_t>(acc >> 32);
    uint4 v;
    v.x = merge2(s.x, e0, 0x5140);
    v.y = merge2(s.x, e0, 0x7362);
    v.z = merge2(s.y, e1, 0x5140);
    v.w = merge2(s.y, e1, 0x7362);
    if (vec && g >= lo && g + 8 <= hi) {
      *reinterpret_cast<uint4*>(out + g) = v;
    } else {
      store_partial(v);
    }
  }
  __host__ __device__ void store_partial(const uint4 v) const {
    const uint32_t words[4] = {v.x, v.y, v.z, v.w};
    for (int j = 0; j < 8; ++j)
      if (g + j >= lo && g + j < hi) out[g + j] = static_cast<uint16_t>(words[j >> 1] >> ((j & 1) * 16));
  }
  __host__ __device__ __forceinline__ void put(uint32_t s, uint32_t c) {
    const uint32_t sh = 8 * n;  // n <= 7
    acc |= uint64_t{s} << sh;
    n += c;
    if (n >= 8) {
      store(s0);
      acc = uint64_t{s} >> (64 - sh);  // the bytes that did not fit (n was >= 5: shift 8..24)
      n -= 8;
      g += 8;
      s0 = s1;
      s1 = s2;
      s2 = load8(sm + g + 16);
    }
  }
  __host__ __device__ __forceinline__ void finish() {
    if (n > 0 && g < hi) store(s0);
  }
};

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

// 8 weights: sign-mantissa bytes s, exponents e (kRot: rotated) -> 8 BF16.
template <bool kRot>
__host__ __device__ __forceinline__ uint4 merge8(const uint2 s, const uint2 e) {
  if (kRot)
    return make_uint4(merge2_rot(s.x, e.x, 0x1100), merge2_rot(s.x, e.x, 0x3322), merge2_rot(s.y, e.y, 0x1100),
                      merge2_rot(s.y, e.y, 0x3322));
  return make_uint4(merge2(s.x, e.x, 0x5140), merge2(s.x, e.x, 0x7362), merge2(s.y, e.y, 0x5140),
                    merge2(s.y, e.y, 0x7362));
}

// The block's last step, shared by every kernel: merge the exponent buffer
// (buffer position 0 = global index out_begin - align, 16-aligned) with the
// sign-mantissa bytes and store BF16, 8 weights per step with 8-byte loads
// and 16-byte stores; scalar stores only in the two ragged groups at the block's ends.
template <int kT, bool kRot = false>  // kRot: the buffer holds rotated exponents (merge2_rot)
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
      if (first) __stcs(outp + u0, merge8<kRot>(sv[0], bufp[u0]));
#pragma unroll
      for (int k = 1; k < kUnroll; ++k) __stcs(outp + u0 + k * kT, merge8<kRot>(sv[k], bufp[u0 + k * kT]));
    }
    if (u0 < hi_full) {
      uint2 sv[kUnroll];
#pragma unroll
      for (int k = 0; k < kUnroll; ++k)
        if (u0 + k * kT >= lo_full && u0 + k * kT < hi_full) sv[k] = __ldcs(smp + u0 + k * kT);
#pragma unroll
      for (int k = 0; k < kUnroll; ++k)
        if (u0 + k * kT >= lo_full && u0 + k * kT < hi_full)
          __stcs(outp + u0 + k * kT, merge8<kRot>(sv[k], bufp[u0 + k * kT]));
    }
    if (left || right) {
      const uint32_t u = ue;
      const uint4 o = merge8<kRot>(es, bufp[u]);
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
      out[out_begin + j] = kRot ? merge1_rot(sm[out_begin + j], buf[align + j]) : merge1(sm[out_begin + j], buf[align + j]);
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

// kDirect: pass 2 writes through DirectSink (no shared exponent buffer: the
// dynamic shared memory is the table alone, so more blocks fit on an SM).
template <bool kMulti, bool kPrefetch, bool kDirect = false>
__global__ void __launch_bounds__(kThreads, kDirect ? 12 : 1) decode_kernel(const LaunchParams prm) {
  constexpr uint32_t kLutBytes = kMulti ? kLutSize * 4 : kLutSize * 2;
  extern __shared__ uint4 smem_u4[];
  uint8_t* const smem = reinterpret_cast<uint8_t*>(smem_u4);
  uint8_t* const buf = smem + kLutBytes;
  __shared__ uint32_t s_warp_total[2];

  const uint32_t tid = threadIdx.x;
  const uint64_t gblock = blockIdx.x;

  const uint32_t ti = find_block_tensor_warp(prm, gblock);
  const TensorDesc& d = prm.table[ti];
  const uint64_t b = gblock - prm.block_begin[ti];
  const uint64_t n_threads = d.n_threads;
  const uint64_t t = b * kThreads + tid;
  const bool active = t < n_threads;

  // Decode table -> shared memory.
  {
    const uint4* src = kMulti ? reinterpret_cast<const uint4*>(d.lut_multi) : reinterpret_cast<const uint4*>(d.lut);
#pragma unroll
    for (uint32_t i = tid; i < kLutBytes / 16; i += kThreads) smem_u4[i] = __ldg(src + i);
  }

  // The chunk's stream words.
  uint32_t w[kWords + 1];
  int p0 = 0, end = 0, expect = 0;
  if (active) {
    const uint4* s4 = reinterpret_cast<const uint4*>(d.stream + t * kWords);
#pragma unroll
    for (int j = 0; j < kWords / 4; ++j) {
      const uint4 q = __ldg(s4 + j);
      w[4 * j] = q.x;
      w[4 * j + 1] = q.y;
      w[4 * j + 2] = q.z;
      w[4 * j + 3] = q.w;
    }
    w[kWords] = __ldg(d.stream + t * kWords + kWords);
    const uint8_t g2 = __ldg(d.gaps + (t >> 1));
    p0 = (g2 >> ((t & 1) * 4)) & 0xF;
    const uint64_t chunk_start = t * 1024;
    const uint64_t left = d.total_bits - chunk_start;  // > 0 (validated)
    end = left < 1024 ? static_cast<int>(left) : 1024;
    if (t + 1 < n_threads) {
      const uint8_t gn = __ldg(d.gaps + ((t + 1) >> 1));
      expect = 1024 + ((gn >> (((t + 1) & 1) * 4)) & 0xF);
    } else {
      expect = static_cast<int>(left);  // <= 1024 + L
    }
  } else {
#pragma unroll
    for (int j = 0; j <= kWords; ++j) w[j] = 0;
  }
  const uint64_t out_begin = __ldg(d.block_out + b);
  const uint64_t out_end = __ldg(d.block_out + b + 1);
  const bool range_ok = out_begin <= out_end && out_end <= d.n &&
                        (kDirect ? out_end - out_begin <= 65536 : out_end - out_begin + 32 <= prm.buf_bytes);
  const uint32_t expected = range_ok ? static_cast<uint32_t>(out_end - out_begin) : 0;
  const uint32_t align = static_cast<uint32_t>(out_begin & 15);
  if (kPrefetch && range_ok) {
    const uint8_t* base = d.sm + (out_begin & ~uint64_t{127});
    const uint64_t lines = (out_end - (out_begin & ~uint64_t{127}) + 127) >> 7;
    for (uint64_t l = tid; l < lines; l += kThreads)
      asm volatile("prefetch.global.L2 [%0];" ::"l"(base + (l << 7)));
  }
  __syncthreads();  // table ready

  // Pass 1: count.
  uint32_t bad = 0;
  int pend = 0;
  CountSink counter;
  if (active) pend = decode_chunk<kMulti>(w, p0, end, smem, d.lut, counter, bad);
  const uint32_t cnt = counter.n;

  // Block exclusive scan of the counts.
  const uint32_t lane = tid & 31, warp = tid >> 5;
  uint32_t incl = cnt;
#pragma unroll
  for (int off = 1; off < 32; off <<= 1) {
    const uint32_t v = __shfl_up_sync(0xFFFFFFFFu, incl, off);
    if (lane >= static_cast<uint32_t>(off)) incl += v;
  }
  if (lane == 31) s_warp_total[warp] = incl;
  __syncthreads();
  if (warp == 1) incl += s_warp_total[0];
  const uint32_t total = s_warp_total[0] + s_warp_total[1];
  const uint32_t excl = incl - cnt;

  // Checks, in the CPU decoder's order: per chunk (over-count, invalid pattern,
  // wrong end), then the block's total.
  if (!range_ok) {
    if (tid == 0) report(prm.status, gblock, 0, kCodeBadBlockOffsets);
    return;
  }
  if (active) {
    const uint32_t code = incl > expected                ? kCodeStreamCorrupt
                          : (bad & kMultiInvalid) != 0   ? kCodeStreamCorrupt
                          : pend != expect               ? kCodeBadGaps
                                                         : 0u;
    if (code) report(prm.status, gblock, tid, code);
  }
  if (total != expected) {  // block-uniform: write nothing
    if (tid == 0 && total < expected) report(prm.status, gblock, kThreads, kCodeStreamCorrupt);
    return;
  }

  if (kDirect) {
    if (active && cnt > 0) {
      DirectSink sink;
      sink.init(d.out, d.sm, out_begin + excl, out_begin + excl + cnt, d.out_aligned != 0);
      decode_chunk<kMulti>(w, p0, end, smem, d.lut, sink, bad);
      sink.finish();
    }
    return;
  }

  // Pass 2: exponents into the shared buffer.
  if (active) {
    SmemSink sink{buf, align + excl};
    decode_chunk<kMulti>(w, p0, end, smem, d.lut, sink, bad);
  }
  __syncthreads();

  merge_store_block<kThreads>(d, out_begin, align, expected, buf, tid);
}

}  // namespace df11::cuda::detail

namespace df11::cuda::detail {

// P threads per chunk (P = 2 or 4; 64 P threads per block); otherwise as
// decode_kernel<kMulti, kPrefetch, false>: same checks, same shared buffer and merge.
// kLut16: the uint16 single-symbol table is copied to shared memory too (8 KB
// more per block) instead of being read through the L1 cache.
template <int P, bool kPrefetch, bool kLut16 = false>
__global__ void __launch_bounds__(kThreads * P) decode_split_kernel(const LaunchParams prm) {
  constexpr bool kMulti = true;
  constexpr int kT = kThreads * P;        // threads per block
  constexpr int kNW = kWords / P;         // words per segment
  constexpr int kSegBits = 32 * kNW;
  constexpr uint32_t kLutBytes = kLutSize * 4 + (kLut16 ? kLutSize * 2 : 0);
  extern __shared__ uint4 smem_u4[];
  uint8_t* const smem = reinterpret_cast<uint8_t*>(smem_u4);
  uint8_t* const buf = smem + kLutBytes;
  __shared__ uint32_t s_warp_total[kT / 32];

  const uint32_t tid = threadIdx.x;
  const uint32_t h = tid % P;          // segment of the chunk
  const uint32_t c = tid / P;          // chunk of the block
  const uint64_t gblock = blockIdx.x;

  const uint32_t ti = find_block_tensor_warp(prm, gblock);
  const TensorDesc& d = prm.table[ti];
  const uint64_t b = gblock - prm.block_begin[ti];
  const uint64_t n_threads = d.n_threads;
  const uint64_t t = b * kThreads + c;
  const bool active = t < n_threads;

  {
    const uint4* src = reinterpret_cast<const uint4*>(d.lut_multi);
#pragma unroll
    for (uint32_t i = tid; i < kLutSize * 4 / 16; i += kT) smem_u4[i] = __ldg(src + i);
    if (kLut16) {
      const uint4* src16 = reinterpret_cast<const uint4*>(d.lut);
#pragma unroll
      for (uint32_t i = tid; i < kLutSize * 2 / 16; i += kT) smem_u4[kLutSize * 4 / 16 + i] = __ldg(src16 + i);
    }
  }
  const uint16_t* const lut16 = kLut16 ? reinterpret_cast<const uint16_t*>(smem + kLutSize * 4) : d.lut;

  uint32_t w[kNW + 1];
  int gap = 0, end = 0, expect = 0;  // segment-relative
  if (active) {
    const uint32_t* src = d.stream + t * kWords + h * kNW;
    const uint4* s4 = reinterpret_cast<const uint4*>(src);
#pragma unroll
    for (int j = 0; j < kNW / 4; ++j) {
      const uint4 q = __ldg(s4 + j);
      w[4 * j] = q.x;
      w[4 * j + 1] = q.y;
      w[4 * j + 2] = q.z;
      w[4 * j + 3] = q.w;
    }
    w[kNW] = __ldg(src + kNW);
    chunk_geometry<P>(d, t, h, gap, end, expect);
  } else {
#pragma unroll
    for (int j = 0; j <= kNW; ++j) w[j] = 0;
  }
  const uint64_t out_begin = __ldg(d.block_out + b);
  const uint64_t out_end = __ldg(d.block_out + b + 1);
  const bool range_ok = out_begin <= out_end && out_end <= d.n && out_end - out_begin + 32 <= prm.buf_bytes;
  const uint32_t expected = range_ok ? static_cast<uint32_t>(out_end - out_begin) : 0;
  const uint32_t align = static_cast<uint32_t>(out_begin & 15);
  if (kPrefetch && range_ok) {
    const uint8_t* base = d.sm + (out_begin & ~uint64_t{127});
    const uint64_t lines = (out_end - (out_begin & ~uint64_t{127}) + 127) >> 7;
    for (uint64_t l = tid; l < lines; l += kT) asm volatile("prefetch.global.L2 [%0];" ::"l"(base + (l << 7)));
  }
  __syncthreads();  // table ready

  // Pass 1: segment 0 exactly, the others speculatively; then the true parse
  // is handed from segment to segment.
  uint32_t cnt = 0, bad = 0;
  int start = 0, pend = 0;  // true start and end of this segment
  SegSpec sp;
  if (active) {
    if (h == 0) {
      CountSink cs;
      start = gap;
      pend = decode_chunk<kMulti, CountSink, kNW>(w, gap, end, smem, lut16, cs, bad);
      cnt = cs.n;
    } else if (end > 0) {
      sp = speculate_segment<kMulti, kNW>(w, end, smem, lut16);
    }
  }
#pragma unroll
  for (int r = 1; r < P; ++r) {
    const int prev_end = __shfl_up_sync(0xFFFFFFFFu, pend, 1) - kSegBits;  // into this segment's frame
    if (active && h == static_cast<uint32_t>(r)) {
      start = prev_end;
      const SegTrue tr = resolve_segment<kMulti, kNW>(w, prev_end, end, sp, smem, lut16);
      cnt = tr.cnt;
      pend = tr.pend;
      bad = tr.bad;
    }
  }
  // Chunk totals in the last segment's lane.
  uint32_t chunk_bad = bad;
#pragma unroll
  for (int off = 1; off < P; off <<= 1) chunk_bad |= __shfl_xor_sync(0xFFFFFFFFu, chunk_bad, off);

  // Block exclusive scan of the counts (chunk-major, segment-minor order).
  const uint32_t incl = scan_publish(cnt, s_warp_total, tid);
  __syncthreads();
  uint32_t excl, total;
  scan_finish<kT>(incl, cnt, s_warp_total, tid, excl, total);

  if (!range_ok) {
    if (tid == 0) report(prm.status, gblock, 0, kCodeBadBlockOffsets);
    return;
  }
  if (active && h == P - 1) {
    const uint32_t code = excl + cnt > expected               ? kCodeStreamCorrupt
                          : (chunk_bad & kMultiInvalid) != 0  ? kCodeStreamCorrupt
                          : pend != expect                    ? kCodeBadGaps
                                                              : 0u;
    if (code) report(prm.status, gblock, c, code);
  }
  if (total != expected) {
    if (tid == 0 && total < expected) report(prm.status, gblock, kThreads, kCodeStreamCorrupt);
    return;
  }

  // Pass 2: every segment from its true start.
  if (active && cnt > 0) {
    SmemSink sink{buf, align + excl};
    uint32_t b2 = 0;
    decode_chunk<kMulti, SmemSink, kNW>(w, start, end, smem, lut16, sink, b2);
  }
  __syncthreads();

  merge_store_block<kT>(d, out_begin, align, expected, buf, tid);
}

#endif  // __CUDACC__

}  // namespace df11::cuda::detail
