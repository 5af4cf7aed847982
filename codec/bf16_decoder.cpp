#include <algorithm>
#include <cstring>
#include <memory>
#include <functional>
#include <mutex>

#include "bf16_codec.h"
#include "cpu_clones.h"
#include "parallel.h"

namespace df11 {

namespace {

// kLutBits bits of the stream starting at bit p (MSB-first words). The stream has
// one word of padding past the last chunk, so p < n_threads * kChunkBits keeps
// the 8-byte read inside it.
inline uint32_t peek12(const uint32_t* stream, uint64_t p) {
  uint64_t raw;
  std::memcpy(&raw, stream + (p >> 5), 8);
  const uint64_t window = (raw << 32) | (raw >> 32);  // word p>>5 in the high half
  return static_cast<uint32_t>((window << (p & 31)) >> (64 - kLutBits));
}

struct FirstError {
  std::mutex mu;
  uint64_t where = UINT64_MAX;
  Error err = Error::Ok;
  void report(uint64_t at, Error e) {
    std::lock_guard<std::mutex> lock(mu);
    if (at < where) { where = at; err = e; }
  }
};

// Exponents of one GPU block, chunk by chunk (each chunk holds at most 1024
// codes: every code is at least one bit and a chunk spans 1024 bits).
struct BlockScratch {
  uint8_t exps[kBlockThreads][kChunkBits + 8];  // + 8: a multi-symbol store may spill 7 bytes
  uint32_t counts[kBlockThreads];
};

// The CPU's multi-symbol table (huffman.h: up to five codes per window).
struct MultiLut {
  uint64_t e[kLutSize];
};

// Decodes LANES chunks at once: each chunk's decode is a serial dependency
// chain (bit position -> table lookup -> length -> next position), so
// interleaving independent chunks is what makes the CPU decoder fast.
// v.stream holds the stream from bit bit_base on (a window; 0 for the whole
// stream): positions below are relative to it, chunk indices global.
template <int LANES>
Error decode_chunks(const Bf16View& v, const uint16_t* lut, const MultiLut* multi, uint64_t t0, BlockScratch& s,
                    uint64_t block_t0, uint64_t bit_base) {
  const Bf16Geometry& g = v.geom;
  uint64_t p[LANES], end[LANES];
  uint8_t* out[LANES];
  uint32_t bad = 0;
  for (int l = 0; l < LANES; ++l) {
    const uint64_t t = t0 + l;
    p[l] = t * kChunkBits + gap_at(v.gaps, t) - bit_base;
    end[l] = std::min<uint64_t>((t + 1) * kChunkBits, g.total_bits) - bit_base;
    out[l] = s.exps[t - block_t0];
  }
  uint8_t* begin[LANES];
  for (int l = 0; l < LANES; ++l) begin[l] = out[l];
  // Multi-symbol steps while every code of the window starts before the
  // chunk's end (windows are kLutBits bits), then one code at a time.
  // A step consumes at most kLutBits bits, so `steps` steps stay safe for
  // every lane without a check per step (the check cost as much as a tenth
  // of the loop); then the count is worked out again from where lanes are.
  uint64_t bad_multi = 0;
  while (multi) {
    uint64_t steps = UINT64_MAX;
    for (int l = 0; l < LANES; ++l)
      steps = std::min(steps, p[l] + kMaxCodeLength <= end[l] ? (end[l] - p[l] - kMaxCodeLength) / kLutBits + 1 : 0);
    if (steps == 0) break;
    for (; steps > 0; --steps) {
      for (int l = 0; l < LANES; ++l) {
        const uint64_t e = multi->e[peek12(v.stream, p[l])];
        bad_multi |= e;
        std::memcpy(out[l], &e, 8);
        out[l] += (e >> 44) & 7;
        p[l] += (e >> 40) & 0xF;
      }
    }
  }
  if (bad_multi & kMultiInvalid64) bad |= kLutInvalid;
  // Without the multi-symbol table (small tensors), the lanes still go
  // interleaved, one code each per step, while every lane has room for a
  // step's longest code.
  while (!multi) {
    uint64_t steps = UINT64_MAX;
    for (int l = 0; l < LANES; ++l) steps = std::min(steps, p[l] < end[l] ? (end[l] - p[l]) / kMaxCodeLength : 0);
    if (steps == 0) break;
    for (; steps > 0; --steps) {
      for (int l = 0; l < LANES; ++l) {
        const uint16_t e = lut[peek12(v.stream, p[l])];
        bad |= e;
        *out[l]++ = static_cast<uint8_t>(e);
        p[l] += (e >> 8) & 0xF;
      }
    }
  }
  for (int l = 0; l < LANES; ++l) {
    while (p[l] < end[l]) {
      const uint16_t e = lut[peek12(v.stream, p[l])];
      bad |= e;
      *out[l]++ = static_cast<uint8_t>(e);
      p[l] += (e >> 8) & 0xF;
    }
    const uint64_t t = t0 + l;
    s.counts[t - block_t0] = static_cast<uint32_t>(out[l] - begin[l]);
    const uint64_t expect = t + 1 < g.n_threads ? (t + 1) * kChunkBits + gap_at(v.gaps, t + 1) : g.total_bits;
    if (p[l] + bit_base != expect) return Error::Df11BadGaps;
  }
  return (bad & kLutInvalid) ? Error::Df11StreamCorrupt : Error::Ok;
}

// Decodes block b exactly as the kernel does (chunk starts from the gap
// array, output placed from the block-output array, every count checked) and
// hands each chunk's exponents to sink(first_index, exps, count).
template <typename Sink>
Error decode_block(const Bf16View& v, const uint16_t* lut, const MultiLut* multi, uint64_t b, BlockScratch& s,
                   uint64_t bit_base, Sink&& sink) {
  const uint64_t t0 = b * kBlockThreads;
  const uint64_t t_end = std::min<uint64_t>(t0 + kBlockThreads, v.geom.n_threads);
  uint64_t t = t0;
  for (; t + 4 <= t_end; t += 4) {
    const Error e = decode_chunks<4>(v, lut, multi, t, s, t0, bit_base);
    if (e != Error::Ok) return e;
  }
  // The last one to three chunks (the tensor's last block: one of them is
  // its partial last chunk). Without the multi-symbol table (tensors under
  // kMultiLutMinWeights) they go interleaved too: a 4 KiB tensor has six
  // chunks, and decoding the last two one after the other was a fifth of
  // decompressing a file of them. With it, one at a time: interleaved lanes
  // leave the multi-symbol steps when the shortest lane ends, and the full
  // chunks beside the partial one would finish a code at a time (a review
  // measured 20% slower on a 10,300-weight tensor).
  Error e = Error::Ok;
  switch (multi ? std::min<uint64_t>(t_end - t, 1) : t_end - t) {
    case 3: e = decode_chunks<3>(v, lut, multi, t, s, t0, bit_base); break;
    case 2: e = decode_chunks<2>(v, lut, multi, t, s, t0, bit_base); break;
    case 1:
      for (; t < t_end && e == Error::Ok; ++t) e = decode_chunks<1>(v, lut, multi, t, s, t0, bit_base);
      break;
    default: break;
  }
  if (e != Error::Ok) return e;
  uint64_t out = v.block_out[b];
  const uint64_t out_end = v.block_out[b + 1];
  for (t = t0; t < t_end; ++t) {
    const uint32_t c = s.counts[t - t0];
    if (c > out_end - out) return Error::Df11StreamCorrupt;
    sink(out, s.exps[t - t0], c);
    out += c;
  }
  return out == out_end ? Error::Ok : Error::Df11StreamCorrupt;
}

// The multi-symbol table only for tensors of kMultiLutMinWeights weights or
// more: it saves about two lookups in three, and building it costs about as
// much as decoding 4,000-8,000 weights without it. On a file of 4 KiB tensors
// (2,048 weights) its build was over a quarter of decompress's time.
constexpr uint64_t kMultiLutMinWeights = 8192;
struct Tables {
  uint16_t lut[kLutSize];
  MultiLut multi_table;
  const MultiLut* multi = nullptr;  // null: one code per lookup
  Tables(const CodeLengths& lengths, uint64_t n) {
    build_decode_lut(lengths, lut);
    if (n >= kMultiLutMinWeights) {
      build_multi_lut64(lut, multi_table.e);
      multi = &multi_table;
    }
  }
};

// make_sink() gives each task (a group of blocks, decoded on one thread) a
// sink of its own, for state that would otherwise be shared per chunk; it
// is destroyed when the task ends.
template <typename MakeSink>
Error decode_block_tasks(const Bf16View& v, const Tables& tables, uint64_t b0, uint64_t b1, unsigned threads,
                         MakeSink&& make_sink, uint64_t bit_base = 0) {
  const MultiLut* multi = tables.multi;
  // Groups of blocks amortise thread hand-out; the grouping does not change results.
  const uint64_t per_task = 16;
  FirstError first;
  parallel_for(div_ceil(b1 - b0, per_task), threads, [&](uint64_t task) {
    std::unique_ptr<BlockScratch> scratch(new BlockScratch);
    auto sink = make_sink();
    const uint64_t end = std::min(b1, b0 + (task + 1) * per_task);
    for (uint64_t b = b0 + task * per_task; b < end; ++b) {
      const Error e = decode_block(v, tables.lut, multi, b, *scratch, bit_base, sink);
      if (e != Error::Ok) { first.report(b, e); return; }
    }
  });
  return first.err;
}

// The same with one sink for every task (it must be thread-safe).
template <typename Sink>
Error decode_block_range(const Bf16View& v, const Tables& tables, uint64_t b0, uint64_t b1, unsigned threads,
                         Sink&& sink, uint64_t bit_base = 0) {
  return decode_block_tasks(v, tables, b0, b1, threads, [&sink] { return std::ref(sink); }, bit_base);
}

template <typename Sink>
Error decode_all_blocks(const Bf16View& v, unsigned threads, Sink&& sink) {
  const std::unique_ptr<Tables> tables(new Tables(v.lengths, v.geom.n));
  return decode_block_range(v, *tables, 0, v.geom.n_blocks(), threads, sink);
}

}  // namespace

Error validate_bf16(const Bf16View& v, uint64_t* max_block_elems) {
  const Bf16Geometry& g = v.geom;
  if (validate_code_lengths(v.lengths) != Error::Ok) return Error::Df11BadCodeLengths;
  bool any = false;
  uint32_t min_len = kMaxCodeLength;
  for (int s = 0; s < 256; ++s)
    if (v.lengths[s]) { any = true; min_len = std::min<uint32_t>(min_len, v.lengths[s]); }
  if (g.n == 0) {
    if (any || g.total_bits || g.n_threads) return Error::Df11BadIndex;
  } else {
    if (!any) return Error::Df11BadCodeLengths;
    // Every code is 1..kMaxCodeLength bits; the last code starts inside the last chunk.
    if (g.total_bits < g.n * min_len || g.total_bits > g.n * kMaxCodeLength) return Error::Df11BadIndex;
    if (g.n_threads == 0 || (g.n_threads - 1) * kChunkBits >= g.total_bits ||
        g.total_bits > g.n_threads * kChunkBits + kMaxCodeLength)
      return Error::Df11BadIndex;
  }
  for (uint64_t t = 0; t < g.n_threads; ++t) {
    const uint32_t gap = gap_at(v.gaps, t);
    if (gap >= kMaxCodeLength || (t == 0 && gap != 0) || t * kChunkBits + gap >= g.total_bits)
      return Error::Df11BadGaps;
  }
  if ((g.n_threads & 1) && (v.gaps[g.n_threads >> 1] >> 4)) return Error::Df11NonzeroPadding;
  const uint64_t nb = g.n_blocks();
  if (v.block_out[0] != 0 || v.block_out[nb] != g.n) return Error::Df11BadBlockOffsets;
  uint64_t max_elems = 0;
  for (uint64_t b = 0; b < nb; ++b) {
    if (v.block_out[b + 1] < v.block_out[b]) return Error::Df11BadBlockOffsets;
    const uint64_t count = v.block_out[b + 1] - v.block_out[b];
    // A block owns at most kBlockThreads chunks, each code at least min_len
    // bits: at most ceil(65536 / min_len) codes start in it (e.g. 13108 for 5).
    if (count > div_ceil(uint64_t{kBlockThreads} * kChunkBits, min_len)) return Error::Df11BadBlockOffsets;
    max_elems = std::max(max_elems, count);
  }
  // Bits after total_bits MUST be zero.
  const uint64_t words = g.stream_words();
  const uint64_t tw = g.total_bits / 32, tb = g.total_bits % 32;
  if (tw < words && tb && (v.stream[tw] << tb)) return Error::Df11NonzeroPadding;
  for (uint64_t i = tw + (tb ? 1 : 0); i < words; ++i)
    if (v.stream[i]) return Error::Df11NonzeroPadding;
  if (max_block_elems) *max_block_elems = max_elems;
  return Error::Ok;
}

namespace {
DF11_AVX2_CLONES  // wider vectors where the CPU has them
void merge_run(uint16_t* __restrict o, const uint8_t* __restrict m, const uint8_t* __restrict e, uint32_t c) {
  for (uint32_t k = 0; k < c; ++k) o[k] = bf16_merge(m[k], e[k]);  // vectorised by the compiler
}
}  // namespace

Error decode_bf16(const Bf16View& v, uint16_t* out, unsigned threads) {
  const uint8_t* sm = v.sm;
  return decode_all_blocks(v, threads, [out, sm](uint64_t i, const uint8_t* e, uint32_t c) {
    merge_run(out + i, sm + i, e, c);
  });
}

struct Bf16Decoder::Impl {
  Bf16View view;
  Tables tables;
  explicit Impl(const Bf16View& v) : view(v), tables(v.lengths, v.geom.n) {}
};

Bf16Decoder::Bf16Decoder(const Bf16View& v) : impl_(new Impl(v)) {}
Bf16Decoder::~Bf16Decoder() = default;

Error Bf16Decoder::decode_blocks(uint64_t b0, uint64_t b1, uint16_t* out, unsigned threads) const {
  const uint8_t* sm = impl_->view.sm;
  return decode_block_range(impl_->view, impl_->tables, b0, b1, threads,
                            [out, sm](uint64_t i, const uint8_t* e, uint32_t c) { merge_run(out + i, sm + i, e, c); });
}

Error Bf16Decoder::decode_window(uint64_t b0, uint64_t b1, const uint32_t* stream, const uint8_t* sm,
                                 uint16_t* out) const {
  Bf16View w = impl_->view;
  w.stream = stream;
  const uint64_t base = w.block_out[b0];
  return decode_block_range(
      w, impl_->tables, b0, b1, 1,
      [out, sm, base](uint64_t i, const uint8_t* e, uint32_t c) { merge_run(out + (i - base), sm + (i - base), e, c); },
      b0 * kBlockThreads * kChunkBits);
}

Error decode_exponent_histogram(const Bf16View& v, Histogram& hist, unsigned threads) {
  // Each task counts into a histogram of its own and adds it to `hist` once,
  // when it ends: the sink runs per chunk (about a thousand codes), where a
  // lock on a shared table cost a quarter of `df11 info`'s time.
  struct Count {
    Histogram own{};
    Histogram* total;
    std::mutex* mu;
    void operator()(uint64_t, const uint8_t* e, uint32_t c) {
      for (uint32_t k = 0; k < c; ++k) ++own[e[k]];
    }
    ~Count() {
      std::lock_guard<std::mutex> lock(*mu);
      for (int s = 0; s < 256; ++s) (*total)[s] += own[s];
    }
  };
  hist.fill(0);
  std::mutex mu;
  const std::unique_ptr<Tables> tables(new Tables(v.lengths, v.geom.n));
  return decode_block_tasks(v, *tables, 0, v.geom.n_blocks(), threads, [&] { return Count{{}, &hist, &mu}; });
}

Error decode_bf16_reference(const Bf16View& v, uint16_t* out) {
  const Bf16Geometry& g = v.geom;
  if (validate_code_lengths(v.lengths) != Error::Ok) return Error::Df11BadCodeLengths;
  // Canonical decoding (as in DEFLATE's puff.c): symbols sorted by (length,
  // value); the codes of one length are consecutive starting at first[len].
  uint32_t count[kMaxCodeLength + 1] = {};
  uint8_t sorted[256];
  int nsorted = 0;
  for (uint32_t len = 1; len <= kMaxCodeLength; ++len)
    for (int s = 0; s < 256; ++s)
      if (v.lengths[s] == len) { ++count[len]; sorted[nsorted++] = static_cast<uint8_t>(s); }
  const uint64_t stream_bits = g.stream_words() * 32;
  uint64_t p = 0;
  for (uint64_t i = 0; i < g.n; ++i) {
    uint32_t code = 0, first = 0, index = 0;
    int sym = -1;
    for (uint32_t len = 1; len <= kMaxCodeLength; ++len) {
      if (p >= stream_bits) return Error::Df11StreamCorrupt;
      code |= (v.stream[p >> 5] >> (31 - (p & 31))) & 1;
      ++p;
      if (code - first < count[len]) { sym = sorted[index + code - first]; break; }
      index += count[len];
      first = (first + count[len]) << 1;
      code <<= 1;
    }
    if (sym < 0) return Error::Df11StreamCorrupt;
    out[i] = bf16_merge(v.sm[i], static_cast<uint8_t>(sym));
  }
  return p == g.total_bits ? Error::Ok : Error::Df11StreamCorrupt;
}

}  // namespace df11
