#include <algorithm>
#include <cstring>

#include "bf16_codec.h"
#define XXH_INLINE_ALL
#include <xxhash.h>
#include "parallel.h"

namespace df11 {

namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "df11 assumes a little-endian host");

// Tensors below this many elements per thread are encoded by one thread:
// the split's fixed costs would outweigh the gain.
constexpr uint64_t kMinElemsPerSegment = uint64_t{1} << 20;

struct Segment {
  uint64_t begin = 0, end = 0;      // element range
  uint64_t bit_begin = 0, bit_end = 0;
  Histogram hist{};
  std::vector<uint32_t> words;      // private stream words starting at word bit_begin / 32
};

// Splits weights into exponent bytes and sign+mantissa bytes (a loop the
// compiler vectorises), so the serial coding loop reads one byte per weight.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx2", "default")))  // wider vectors where the CPU has them
#endif
void split_bf16(const uint16_t* w, uint64_t n, uint8_t* exps, uint8_t* sm) {
  for (uint64_t i = 0; i < n; ++i) {
    const uint32_t v = w[i];
    exps[i] = static_cast<uint8_t>(v >> 7);
    sm[i] = static_cast<uint8_t>(((v >> 8) & 0x80) | (v & 0x7F));
  }
}

// Encodes exponents [s.begin, s.end) whose first code starts at s.bit_begin.
// `out` receives words starting at global word s.bit_begin / 32. Gap and block
// entries are recorded for every chunk whose first code lies in this range.
// single[e] = code << 8 | length; pair[e0 | e1 << 8] = the two codes joined.
void encode_segment(const uint8_t* exps, const Segment& s, const uint32_t* single, const uint32_t* pair,
                    uint32_t* out, uint8_t* gaps_unpacked, uint64_t* block_out) {
  uint64_t acc = 0;
  uint32_t nacc = static_cast<uint32_t>(s.bit_begin & 31);
  uint64_t wi = 0;
  uint64_t p = s.bit_begin;
  // The first chunk this segment may open: the one after the chunk where the
  // previous code (the last of the previous segment) starts. Not
  // align_up(p): a segment that starts mid-chunk with that chunk's first code
  // must record its gap and block entry.
  uint64_t next_boundary = 0;
  if (s.begin > 0) next_boundary = ((p - (single[exps[s.begin - 1]] & 0xFF)) / kChunkBits + 1) * kChunkBits;
  // Records chunk starts: gap of the chunk, and the block's first index.
  auto mark = [&](uint64_t start, uint64_t i) {
    if (start >= next_boundary) {
      const uint64_t c = start / kChunkBits;
      gaps_unpacked[c] = static_cast<uint8_t>(start % kChunkBits);
      if (c % kBlockThreads == 0) block_out[c / kBlockThreads] = i;
      next_boundary = (c + 1) * kChunkBits;
    }
  };
  // Branchless append of up to 24 bits: always store the top word, advance
  // only when it is full (nacc stays < 32 between appends).
  auto append = [&](uint32_t entry) {
    const uint32_t len = entry & 0xFF;
    acc = (acc << len) | (entry >> 8);
    // nacc + len < 64: bit 5 says whether a word filled up; the low bits are
    // the new pending count. Two cycles of dependency instead of five.
    const uint32_t sum = nacc + len;
    nacc = sum & 31;
    out[wi] = static_cast<uint32_t>(acc >> nacc);
    wi += sum >> 5;
  };
  uint64_t i = s.begin;
  // Two codes per table lookup and append halve the serial chain through acc.
  for (; i + 2 <= s.end; i += 2) {
    uint16_t two;
    std::memcpy(&two, exps + i, 2);
    const uint32_t entry = pair[two];
    if (__builtin_expect(p + kMaxCodeLength >= next_boundary, 0)) {
      mark(p, i);
      mark(p + (single[exps[i]] & 0xFF), i + 1);
    }
    p += entry & 0xFF;
    append(entry);
  }
  for (; i < s.end; ++i) {
    const uint32_t t = single[exps[i]];
    mark(p, i);
    p += t & 0xFF;
    append(t);
  }
  if (nacc) out[wi] = static_cast<uint32_t>(acc << (32 - nacc));
}

}  // namespace

EncodedBf16 encode_bf16(const uint16_t* w, uint64_t n, unsigned threads) {
  EncodedBf16 r;
  encode_bf16_into(w, n, threads, &r);
  return r;
}

void encode_bf16_into(const uint16_t* w, uint64_t n, unsigned threads, EncodedBf16* out, const EncodeHooks& hooks) {
  uint64_t* const input_xxh64 = hooks.input_xxh64;
  EncodedBf16& r = *out;
  r.geom = Bf16Geometry{};
  r.geom.n = n;
  r.hist.fill(0);
  if (n == 0) {
    if (input_xxh64) *input_xxh64 = XXH64(w, 0, 0);
    r.lengths.fill(0);
    r.block_out.assign(1, 0);
    r.stream.assign(r.geom.stream_words(), 0);
    r.gaps.clear();
    r.sm.clear();
    return;
  }
  const uint64_t nseg = std::max<uint64_t>(1, std::min<uint64_t>(threads, n / kMinElemsPerSegment));
  std::vector<Segment> segs(nseg);
  for (uint64_t k = 0; k < nseg; ++k) {
    segs[k].begin = n * k / nseg;
    segs[k].end = n * (k + 1) / nseg;
  }
  r.sm.resize(n);
  r.scratch_exps.resize(n);
  uint8_t* exps = r.scratch_exps.data();
  if (input_xxh64 && nseg == 1) {
    // One thread: hash each piece of the input while the split reads it, so
    // the weights come from memory once instead of twice.
    XXH64_state_t state;
    XXH64_reset(&state, 0);
    constexpr uint64_t kPiece = 16384;  // elements (32 KB)
    for (uint64_t b = 0; b < n; b += kPiece) {
      const uint64_t len = std::min(kPiece, n - b);
      XXH64_update(&state, w + b, 2 * len);
      split_bf16(w + b, len, exps + b, r.sm.data() + b);
      if (hooks.on_input_done) hooks.on_input_done(b + len);
    }
    *input_xxh64 = XXH64_digest(&state);
    segs[0].hist = byte_histogram(exps, n);
  } else {
    if (input_xxh64) *input_xxh64 = XXH64(w, 2 * n, 0);
    parallel_for(nseg, threads, [&](uint64_t k) {
      const uint64_t b = segs[k].begin, len = segs[k].end - segs[k].begin;
      split_bf16(w + b, len, exps + b, r.sm.data() + b);
      segs[k].hist = byte_histogram(exps + b, len);
    });
  }
  for (const auto& s : segs)
    for (int e = 0; e < 256; ++e) r.hist[e] += s.hist[e];
  r.lengths = build_code_lengths(r.hist);
  const auto codes = canonical_codes(r.lengths);
  uint32_t table[256];
  for (int e = 0; e < 256; ++e) table[e] = (codes[e] << 8) | r.lengths[e];
  // Pair table, filled only for present exponents (the only ones looked up).
  std::vector<int> present;
  for (int e = 0; e < 256; ++e)
    if (r.lengths[e]) present.push_back(e);
  r.scratch_pairs.resize(65536);
  uint32_t* pair = r.scratch_pairs.data();
  for (int e0 : present)
    for (int e1 : present)
      pair[e0 | (e1 << 8)] = (((codes[e0] << r.lengths[e1]) | codes[e1]) << 8) | (r.lengths[e0] + r.lengths[e1]);

  uint64_t bit = 0;
  for (auto& s : segs) {
    s.bit_begin = bit;
    for (int e = 0; e < 256; ++e) bit += s.hist[e] * r.lengths[e];
    s.bit_end = bit;
  }
  r.geom.total_bits = bit;
  const uint64_t last_start = bit - r.lengths[exps[n - 1]];
  r.geom.n_threads = last_start / kChunkBits + 1;

  // Buffers are reused across calls: resize without zeroing what the encoder
  // overwrites anyway, which saves page faults and a pass over memory.
  if (hooks.on_layout) hooks.on_layout(r);
  r.block_out.assign(r.geom.block_out_entries(), 0);
  r.block_out.back() = n;
  std::vector<uint8_t> gaps_unpacked(r.geom.n_threads, 0);

  if (nseg == 1) {
    r.stream.resize(r.geom.stream_words());
    // The loop stores every word up to total_bits / 32; the rest is padding.
    const uint64_t written = r.geom.total_bits / 32;
    std::fill(r.stream.begin() + static_cast<std::ptrdiff_t>(written), r.stream.end(), 0u);
    encode_segment(exps, segs[0], table, pair, r.stream.data(), gaps_unpacked.data(), r.block_out.data());
  } else {
    r.stream.assign(r.geom.stream_words(), 0);
    parallel_for(nseg, threads, [&](uint64_t k) {
      Segment& s = segs[k];
      s.words.assign((s.bit_end + 31) / 32 - s.bit_begin / 32 + 1, 0);
      encode_segment(exps, s, table, pair, s.words.data(), gaps_unpacked.data(), r.block_out.data());
    });
    // Interior words belong to one segment; the first and last may be shared
    // with neighbours, so they are OR-ed in.
    for (const auto& s : segs) {
      if (s.bit_end == s.bit_begin) continue;
      const uint64_t w0 = s.bit_begin / 32, w1 = (s.bit_end - 1) / 32;
      r.stream[w0] |= s.words[0];
      if (w1 > w0) {
        if (w1 > w0 + 1)
          std::memcpy(&r.stream[w0 + 1], &s.words[1], (w1 - w0 - 1) * sizeof(uint32_t));
        r.stream[w1] |= s.words[w1 - w0];
      }
    }
  }
  r.gaps.assign(r.geom.gap_bytes(), 0);
  for (uint64_t t = 0; t < r.geom.n_threads; ++t)
    r.gaps[t >> 1] |= static_cast<uint8_t>(gaps_unpacked[t] << ((t & 1) * 4));
}

Bf16View view_of(const EncodedBf16& e) {
  Bf16View v;
  v.geom = e.geom;
  v.lengths = e.lengths;
  v.block_out = e.block_out.data();
  v.gaps = e.gaps.data();
  v.stream = e.stream.data();
  v.sm = e.sm.data();
  return v;
}

}  // namespace df11
