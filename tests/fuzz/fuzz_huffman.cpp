// Fuzz target 3: Huffman tables from arbitrary code lengths, and the BF16
// exponent decoders on streams built from them.
//
// Input: byte 0 = mode, then:
//   mode % 4 == 0: 128 bytes of packed 4-bit code lengths (as stored in a
//                  container), then symbol bytes;
//   mode % 4 == 1: a histogram (256 counts from bytes) -> build_code_lengths,
//                  which must always give a valid length-limited code;
//   mode % 4 == 2: like 0, but the rest of the input is taken verbatim as the
//                  sections of a small Bf16View (geometry, gaps, block-output
//                  entries, stream words): any view that validate_bf16 accepts
//                  must decode without touching memory outside it, and a
//                  successful fast decode must agree with the reference;
//   mode % 4 == 3: like 1, then the encoded stream is corrupted at positions
//                  taken from the input and decoded again.
// With valid lengths, the harness encodes the symbol bytes with its own
// straightforward encoder (spec section 4: chunks, gaps, block outputs) and
// requires decode_bf16 (1 and 2 threads) and decode_bf16_reference to return
// exactly the encoded weights.
#include <algorithm>
#include <cstring>
#include <vector>

#include "bf16_codec.h"
#include "fuzz_targets.h"
#include "huffman.h"

namespace {

using namespace df11;

struct Input {
  const uint8_t* p;
  size_t n;
  size_t at = 0;
  uint8_t byte() { return at < n ? p[at++] : 0; }
  uint64_t u(int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= uint64_t{byte()} << (8 * i);
    return v;
  }
  size_t left() const { return n - at; }
};

// Owned sections of one tensor, per spec section 4, with a view onto them.
struct Owned {
  Bf16Geometry g;
  CodeLengths lengths{};
  std::vector<uint64_t> block_out;
  std::vector<uint8_t> gaps;
  std::vector<uint32_t> stream;
  std::vector<uint8_t> sm;
  Bf16View view() const {
    Bf16View v;
    v.geom = g;
    v.lengths = lengths;
    v.block_out = block_out.data();
    v.gaps = gaps.data();
    v.stream = stream.data();
    v.sm = sm.data();
    return v;
  }
};

// Reference encoder, written from the spec only.
Owned encode(const CodeLengths& len, const std::vector<uint8_t>& exps, const std::vector<uint8_t>& sm) {
  const auto codes = canonical_codes(len);
  Owned o;
  o.lengths = len;
  o.g.n = exps.size();
  o.sm = sm;
  std::vector<uint64_t> starts(exps.size());
  uint64_t bits = 0;
  for (size_t i = 0; i < exps.size(); ++i) {
    starts[i] = bits;
    bits += len[exps[i]];
  }
  o.g.total_bits = bits;
  o.g.n_threads = exps.empty() ? 0 : starts.back() / kChunkBits + 1;
  o.stream.assign(o.g.stream_words(), 0);
  for (size_t i = 0; i < exps.size(); ++i)
    for (uint32_t k = 0; k < len[exps[i]]; ++k) {
      const uint64_t bit = starts[i] + k;
      const uint32_t v = (codes[exps[i]] >> (len[exps[i]] - 1 - k)) & 1;
      o.stream[bit / 32] |= v << (31 - bit % 32);
    }
  o.gaps.assign(std::max<uint64_t>(1, o.g.gap_bytes()), 0);
  o.block_out.assign(o.g.block_out_entries(), 0);
  o.block_out.back() = o.g.n;
  uint64_t next_chunk = 0;
  for (size_t i = 0; i < exps.size(); ++i) {
    const uint64_t c = starts[i] / kChunkBits;
    if (c < next_chunk) continue;
    DF11_FUZZ_CHECK(c == next_chunk);  // a chunk holds at least one code start
    const uint64_t gap = starts[i] % kChunkBits;
    o.gaps[c / 2] |= static_cast<uint8_t>(gap << (4 * (c % 2)));
    if (c % kBlockThreads == 0) o.block_out[c / kBlockThreads] = i;
    next_chunk = c + 1;
  }
  return o;
}

// Properties of the canonical code and the decode table for valid lengths.
void check_tables(const CodeLengths& len) {
  const auto codes = canonical_codes(len);
  uint16_t lut[kLutSize];
  build_decode_lut(len, lut);
  int present = 0;
  for (int s = 0; s < 256; ++s) {
    if (!len[s]) continue;
    ++present;
    DF11_FUZZ_CHECK(len[s] <= kMaxCodeLength);
    DF11_FUZZ_CHECK(codes[s] < (1u << len[s]));
    const uint32_t first = codes[s] << (kMaxCodeLength - len[s]);
    for (uint32_t i = 0; i < (1u << (kMaxCodeLength - len[s])); ++i) {
      const uint16_t e = lut[first + i];
      DF11_FUZZ_CHECK(!(e & kLutInvalid) && (e & 0xFF) == s && ((e >> 8) & 0xF) == len[s]);
    }
  }
  // Complete code: every table entry is a code; one-symbol code: half of them.
  int invalid = 0;
  for (uint32_t i = 0; i < kLutSize; ++i) {
    invalid += (lut[i] & kLutInvalid) != 0;
    DF11_FUZZ_CHECK(((lut[i] >> 8) & 0xF) >= 1);  // a decoder always advances
  }
  if (present >= 2) DF11_FUZZ_CHECK(invalid == 0);
  if (present == 1) DF11_FUZZ_CHECK(invalid == static_cast<int>(kLutSize / 2));
}

// Decoding a view that validate_bf16 accepts: memory-safe (ASan watches the
// exact-size vectors) and consistent across decoders and thread counts.
void decode_and_compare(const Bf16View& v, const std::vector<uint16_t>* expect) {
  std::vector<uint16_t> a(v.geom.n), b(v.geom.n), ref(v.geom.n);
  const Error ea = decode_bf16(v, a.data(), 1);
  const Error eb = decode_bf16(v, b.data(), 2);
  const Error er = decode_bf16_reference(v, ref.data());
  DF11_FUZZ_CHECK(ea == eb);
  if (ea == Error::Ok) {
    DF11_FUZZ_CHECK(a == b);
    DF11_FUZZ_CHECK(er == Error::Ok);
    DF11_FUZZ_CHECK(a == ref);
    Histogram h;
    DF11_FUZZ_CHECK(decode_exponent_histogram(v, h, 2) == Error::Ok);
    Histogram h2{};
    for (uint16_t w : a) ++h2[(w >> 7) & 0xFF];
    DF11_FUZZ_CHECK(h == h2);
  } else {
    DF11_FUZZ_CHECK(ea == Error::Df11BadGaps || ea == Error::Df11StreamCorrupt);
  }
  if (expect) {
    DF11_FUZZ_CHECK(ea == Error::Ok && er == Error::Ok);
    DF11_FUZZ_CHECK(a == *expect && ref == *expect);
  }
}

CodeLengths unpack(Input& in) {
  CodeLengths len{};
  for (int k = 0; k < 128; ++k) {
    const uint8_t b = in.byte();
    len[2 * k] = b & 0xF;
    len[2 * k + 1] = b >> 4;
  }
  return len;
}

}  // namespace

extern "C" int df11_fuzz_huffman(const uint8_t* data, size_t size) {
  Input in{data, size};
  const int mode = in.byte() % 4;
  CodeLengths len{};
  if (mode == 0 || mode == 2) {
    len = unpack(in);
  } else {
    Histogram hist{};
    const int nsym = 1 + in.byte();  // histogram entries that follow
    for (int k = 0; k < nsym && in.left() >= 2; ++k) {
      const uint8_t sym = in.byte();
      // Spread counts over many magnitudes so that long codes appear.
      const uint8_t c = in.byte();
      hist[sym] += (uint64_t{1} << (c >> 3)) + (c & 7);
    }
    len = build_code_lengths(hist);
    DF11_FUZZ_CHECK(validate_code_lengths(len) == Error::Ok);
    for (int s = 0; s < 256; ++s) DF11_FUZZ_CHECK((len[s] != 0) == (hist[s] != 0));
  }
  const Error lv = validate_code_lengths(len);
  if (lv != Error::Ok) {
    DF11_FUZZ_CHECK(lv == Error::Df11BadCodeLengths);
    return 0;
  }
  std::vector<uint8_t> present;
  for (int s = 0; s < 256; ++s)
    if (len[s]) present.push_back(static_cast<uint8_t>(s));
  if (present.empty()) return 0;
  check_tables(len);

  if (mode == 2) {
    // Arbitrary sections: small geometry from the input.
    Owned o;
    o.lengths = len;
    o.g.n = in.u(2) % 3000;
    o.g.total_bits = in.u(2);
    o.g.n_threads = in.byte() % 5;
    o.block_out.resize(o.g.block_out_entries());
    for (auto& x : o.block_out) x = in.u(2);
    o.gaps.resize(std::max<uint64_t>(1, o.g.gap_bytes()));
    for (auto& x : o.gaps) x = in.byte();
    o.stream.resize(o.g.stream_words());
    for (auto& x : o.stream) x = static_cast<uint32_t>(in.u(4));
    o.sm.resize(o.g.n);
    for (size_t i = 0; i < o.sm.size(); ++i) o.sm[i] = static_cast<uint8_t>(i * 37);
    const Bf16View v = o.view();
    uint64_t max_block = 0;
    if (validate_bf16(v, &max_block) == Error::Ok) {
      DF11_FUZZ_CHECK(max_block <= o.g.n);
      decode_and_compare(v, nullptr);
    }
    return 0;
  }

  // Symbols from the rest of the input (repeated to span several blocks when
  // the last byte asks for it), each mapped onto a present exponent.
  std::vector<uint8_t> exps, sm;
  const size_t rest = in.left();
  const size_t reps = rest && (data[size - 1] & 1) ? 1 + data[size - 1] % 23 : 1;
  for (size_t r = 0; r < reps; ++r)
    for (size_t i = 0; i < rest; ++i) {
      exps.push_back(present[(data[in.at + i] + r) % present.size()]);
      sm.push_back(static_cast<uint8_t>(data[in.at + i] * 31 + r));
    }
  if (exps.empty()) return 0;
  Owned o = encode(len, exps, sm);
  const Bf16View v = o.view();
  DF11_FUZZ_CHECK(validate_bf16(v) == Error::Ok);
  std::vector<uint16_t> expect(exps.size());
  for (size_t i = 0; i < exps.size(); ++i) expect[i] = bf16_merge(sm[i], exps[i]);
  decode_and_compare(v, &expect);

  // The production encoder on the same weights round-trips as well (its
  // lengths come from the histogram, not from the input).
  const EncodedBf16 e = encode_bf16(expect.data(), expect.size(), 1);
  const Bf16View ev = view_of(e);
  const Error ve = validate_bf16(ev);
  if (ve != Error::Ok) std::fprintf(stderr, "encode_bf16 output rejected: %s\n", error_name(ve));
  DF11_FUZZ_CHECK(ve == Error::Ok);
  decode_and_compare(ev, &expect);

  if (mode == 3) {
    // Corrupt single bits of the stream, the gaps or the block outputs: the
    // view either fails validation or decodes safely and consistently.
    for (int k = 0; k < 4 && in.left() >= 3; ++k) {
      Owned c = o;
      const uint8_t what = in.byte();
      const uint64_t pos = in.u(2);
      if (what % 3 == 0) {
        const uint64_t bit = pos % (c.stream.size() * 32);
        c.stream[bit / 32] ^= 1u << (bit % 32);
      } else if (what % 3 == 1) {
        c.gaps[pos % c.gaps.size()] ^= static_cast<uint8_t>(1u << (what >> 5));
      } else {
        c.block_out[pos % c.block_out.size()] += (what >> 2) - 32;
      }
      const Bf16View cv = c.view();
      if (validate_bf16(cv) == Error::Ok) decode_and_compare(cv, nullptr);
    }
  }
  return 0;
}
