#include <algorithm>
#include <atomic>
#include <cstring>

#include "bf16_codec.h"
#include "cpu_clones.h"
#include "parallel.h"

namespace df11 {

namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "df11 assumes a little-endian host");

// Tensors below this many elements per thread are encoded by one thread:
// the split's fixed costs would outweigh the gain.
constexpr uint64_t kMinElemsPerSegment = uint64_t{1} << 20;
std::atomic<uint64_t> g_min_segment_elems{0};  // testing hook; 0: kMinElemsPerSegment

uint64_t min_segment_elems() {
  const uint64_t e = g_min_segment_elems.load(std::memory_order_relaxed);
  return e ? e : kMinElemsPerSegment;
}

struct Segment {
  uint64_t begin = 0, end = 0;      // element range
  uint64_t bit_begin = 0, bit_end = 0;
  Histogram hist{};
  std::vector<uint32_t> words;      // private stream words starting at word bit_begin / 32
};

}  // namespace

// Splits weights into exponent bytes and sign+mantissa bytes (a loop the
// compiler vectorises), so the serial coding loop reads one byte per weight.
DF11_AVX2_CLONES  // wider vectors where the CPU has them
void split_bf16(const uint16_t* w, uint64_t n, uint8_t* exps, uint8_t* sm) {
  for (uint64_t i = 0; i < n; ++i) {
    const uint32_t v = w[i];
    exps[i] = static_cast<uint8_t>(v >> 7);
    sm[i] = static_cast<uint8_t>(((v >> 8) & 0x80) | (v & 0x7F));
  }
}

void Bf16EncodeTables::set(const CodeLengths& l) {
  lengths = l;
  pair.resize(65536);  // zeros the first time only
  const auto codes = canonical_codes(lengths);
  for (int e = 0; e < 256; ++e) single[e] = (codes[e] << 8) | lengths[e];
  // Pair table, filled only for present exponents (the only ones looked up).
  std::vector<int> present;
  for (int e = 0; e < 256; ++e)
    if (lengths[e]) present.push_back(e);
  for (int e0 : present)
    for (int e1 : present)
      pair[e0 | (e1 << 8)] = (((codes[e0] << lengths[e1]) | codes[e1]) << 8) | (lengths[e0] + lengths[e1]);
}

// Encodes exps[0, count) (weights first .. first + count) whose first code
// starts at bit_begin; prev_len is the code length of weight first - 1 (0 for
// the first weight). `out` receives words starting at global word
// bit_begin / 32 (bits before bit_begin in the first word are zero). Gap and
// block entries are recorded for every chunk whose first code lies in this
// range; gaps are OR-ed in atomically because a gap byte holds two chunks that
// neighbouring windows may own.
uint64_t encode_bf16_window(const Bf16EncodeTables& tables, const uint8_t* exps, uint64_t first, uint64_t count,
                            uint64_t bit_begin, uint32_t prev_len, uint32_t* out, uint8_t* gaps, uint64_t* block_out,
                            uint64_t n_chunks) {
  const uint32_t* single = tables.single;
  const uint32_t* pair = tables.pair.data();
  uint64_t acc = 0;
  uint32_t nacc = static_cast<uint32_t>(bit_begin & 31);
  uint64_t wi = 0;
  uint64_t p = bit_begin;
  // The first chunk this window may open: the one after the chunk where the
  // previous code (the last of the previous window) starts. Not
  // align_up(p): a window that starts mid-chunk with that chunk's first code
  // must record its gap and block entry.
  uint64_t next_boundary = 0;
  if (first > 0) next_boundary = ((p - prev_len) / kChunkBits + 1) * kChunkBits;
  // Records chunk starts: gap of the chunk, and the block's first index.
  auto mark = [&](uint64_t start, uint64_t i) {
    if (start >= next_boundary) {
      const uint64_t c = start / kChunkBits;
      if (c >= n_chunks) {  // past the planned stream: the end position will say so
        next_boundary = UINT64_MAX;
        return;
      }
      const uint8_t nibble = static_cast<uint8_t>((start % kChunkBits) << ((c & 1) * 4));
      if (nibble) __atomic_fetch_or(&gaps[c >> 1], nibble, __ATOMIC_RELAXED);
      if (c % kBlockThreads == 0) block_out[c / kBlockThreads] = first + i;
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
  uint64_t i = 0;
  // Two codes per table lookup and append halve the serial chain through acc.
  for (; i + 2 <= count; i += 2) {
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
  for (; i < count; ++i) {
    const uint32_t t = single[exps[i]];
    mark(p, i);
    p += t & 0xFF;
    append(t);
  }
  if (nacc) out[wi] = static_cast<uint32_t>(acc << (32 - nacc));
  return p;
}

namespace testing {
uint64_t set_encoder_min_segment_elems(uint64_t elems) noexcept { return g_min_segment_elems.exchange(elems); }
}  // namespace testing

EncodedBf16 encode_bf16(const uint16_t* w, uint64_t n, unsigned threads) {
  EncodedBf16 r;
  encode_bf16_into(w, n, threads, &r);
  return r;
}

void encode_bf16_into(const uint16_t* w, uint64_t n, unsigned threads, EncodedBf16* out) {
  EncodedBf16& r = *out;
  r.geom = Bf16Geometry{};
  r.geom.n = n;
  r.hist.fill(0);
  if (n == 0) {
    r.lengths.fill(0);
    r.block_out.assign(1, 0);
    r.stream.assign(r.geom.stream_words(), 0);
    r.gaps.clear();
    r.sm.clear();
    return;
  }
  const uint64_t nseg = std::max<uint64_t>(1, std::min<uint64_t>(threads, n / min_segment_elems()));
  std::vector<Segment> segs(nseg);
  for (uint64_t k = 0; k < nseg; ++k) {
    segs[k].begin = n * k / nseg;
    segs[k].end = n * (k + 1) / nseg;
  }
  r.sm.resize(n);
  r.scratch_exps.resize(n);
  uint8_t* exps = r.scratch_exps.data();
  parallel_for(nseg, threads, [&](uint64_t k) {
    const uint64_t b = segs[k].begin, len = segs[k].end - segs[k].begin;
    split_bf16(w + b, len, exps + b, r.sm.data() + b);
    segs[k].hist = byte_histogram(exps + b, len);
  });
  for (const auto& s : segs)
    for (int e = 0; e < 256; ++e) r.hist[e] += s.hist[e];
  r.lengths = build_code_lengths(r.hist);
  const Bf16EncodeTables tables(r.lengths);

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
  r.block_out.assign(r.geom.block_out_entries(), 0);
  r.block_out.back() = n;
  r.gaps.assign(r.geom.gap_bytes(), 0);
  auto encode = [&](const Segment& s, uint32_t* words) {
    const uint32_t prev_len = s.begin ? r.lengths[exps[s.begin - 1]] : 0;
    // The histogram and the codes come from the same buffer: the end is planned.
    encode_bf16_window(tables, exps + s.begin, s.begin, s.end - s.begin, s.bit_begin, prev_len, words, r.gaps.data(),
                       r.block_out.data(), r.geom.n_threads);
  };

  if (nseg == 1) {
    r.stream.resize(r.geom.stream_words());
    // The loop stores every word up to total_bits / 32; the rest is padding.
    const uint64_t written = r.geom.total_bits / 32;
    std::fill(r.stream.begin() + static_cast<std::ptrdiff_t>(written), r.stream.end(), 0u);
    encode(segs[0], r.stream.data());
  } else {
    r.stream.assign(r.geom.stream_words(), 0);
    parallel_for(nseg, threads, [&](uint64_t k) {
      Segment& s = segs[k];
      s.words.assign((s.bit_end + 31) / 32 - s.bit_begin / 32 + 1, 0);
      encode(s, s.words.data());
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
