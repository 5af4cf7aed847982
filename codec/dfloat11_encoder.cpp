#include "dfloat11_encoder.h"

#include <algorithm>
#include <thread>

#include "huffman.h"
#include "parallel.h"

namespace df11 {

const char* df11_limit_name(Df11Limit l) noexcept {
  switch (l) {
    case Df11Limit::None: return "None";
    case Df11Limit::ExponentSymbol: return "ExponentSymbol";
    case Df11Limit::SubTables: return "SubTables";
    case Df11Limit::SharedMemory: return "SharedMemory";
    case Df11Limit::Elements: return "Elements";
  }
  return "Unknown";
}

namespace {

using Lengths = std::array<uint8_t, 256>;
using Codes = std::array<uint32_t, 256>;

constexpr uint64_t kChunk = uint64_t{1} << 20;  // elements per encoding task


// Canonical codes (DEFLATE order) for lengths up to 32 bits; the code need not
// be complete (Kraft sum <= 1), which the shared-memory fallback relies on.
Codes canonical_codes32(const Lengths& len) {
  uint64_t count[kDf11MaxCodeLength + 1] = {};
  for (int s = 0; s < 256; ++s)
    if (len[s]) ++count[len[s]];
  uint64_t next[kDf11MaxCodeLength + 1] = {};
  uint64_t code = 0;
  for (uint32_t l = 1; l <= kDf11MaxCodeLength; ++l) {
    code = (code + (l > 1 ? count[l - 1] : 0)) << 1;
    next[l] = code;
  }
  Codes c{};
  for (int s = 0; s < 256; ++s)
    if (len[s]) c[s] = static_cast<uint32_t>(next[len[s]]++);
  return c;
}

// Sub-tables, as sorted keys (depth << 32 | prefix): one per distinct 8-bit,
// 16-bit and 24-bit prefix of a longer code. Row r (1-based) is keys[r-1], so
// rows are ordered by depth, then prefix, as DFloat11's get_luts orders them.
std::vector<uint64_t> sub_table_keys(const Lengths& len, const Codes& code) {
  std::vector<uint64_t> keys;
  for (int s = 0; s < 256; ++s)
    for (uint32_t k = 1; 8 * k < len[s]; ++k)
      keys.push_back(uint64_t{k} << 32 | (code[s] >> (len[s] - 8 * k)));
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  return keys;
}

// DF11's `luts`: row 0 the root, rows 1..R the sub-tables, the last row the
// code length of each symbol. Every slot of every decode row holds a symbol
// of non-zero length or a pointer (256 - row): slots no code reaches (only in
// an incomplete code) get the most frequent symbol, so that threads decoding
// padding past the end always make progress.
void build_luts(const Lengths& len, const Codes& code, const Histogram& hist, Df11Unit* u) {
  const std::vector<uint64_t> keys = sub_table_keys(len, code);
  const uint32_t rows = 1 + static_cast<uint32_t>(keys.size());
  auto row_of = [&](uint32_t depth, uint32_t prefix) {
    const uint64_t key = uint64_t{depth} << 32 | prefix;
    return 1 + static_cast<uint32_t>(std::lower_bound(keys.begin(), keys.end(), key) - keys.begin());
  };
  std::vector<int> tab(size_t{rows} * 256, -1);
  int fallback = -1;
  for (int s = 0; s < 256; ++s) {
    const uint32_t l = len[s];
    if (!l) continue;
    if (fallback < 0 || hist[s] > hist[fallback]) fallback = s;
    const uint32_t c = code[s];
    uint32_t row = 0;
    for (uint32_t k = 0;; ++k) {
      if (l <= 8 * (k + 1)) {  // the code ends in this byte: a symbol over 2^(8-r) slots
        const uint32_t r = l - 8 * k;
        const uint32_t first = (c & ((1u << r) - 1)) << (8 - r);
        for (uint32_t j = first; j < first + (1u << (8 - r)); ++j) tab[row * 256 + j] = s;
        break;
      }
      const uint32_t prefix = c >> (l - 8 * (k + 1));  // the first 8(k+1) bits
      const uint32_t next = row_of(k + 1, prefix);
      tab[row * 256 + (prefix & 0xFF)] = static_cast<int>(256 - next);
      row = next;
    }
  }
  u->n_luts = rows + 1;
  u->luts.assign(size_t{u->n_luts} * 256, 0);
  for (size_t i = 0; i < tab.size(); ++i) u->luts[i] = static_cast<uint8_t>(tab[i] < 0 ? fallback : tab[i]);
  for (int s = 0; s < 256; ++s) u->luts[size_t{rows} * 256 + s] = len[s];
}

struct ChunkEdge {
  uint64_t byte = 0;  // output byte shared with a neighbouring chunk
  uint8_t value = 0;
  bool used = false;
};

// Encodes with the given code: stream, sign/mantissa bytes, gaps and block
// positions, chunk by chunk in parallel. chunk_bits[c] is chunk c's bit count.
void encode_stream(const uint16_t* w, uint64_t n, unsigned threads, const Lengths& len, const Codes& code,
                   const std::vector<uint64_t>& chunk_start, uint64_t total_bits, Df11Unit* u) {
  const uint64_t n_bytes = (total_bits + 7) / 8;
  const uint64_t blocks = (n_bytes + kDf11BlockBits / 8 - 1) / (kDf11BlockBits / 8);
  const uint64_t windows = blocks * kDf11ThreadsPerBlock;
  const uint64_t chunks = chunk_start.size();
  u->encoded_exponent.assign(n_bytes, 0);
  u->sign_mantissa.resize(n);
  u->output_positions.assign(blocks + 1, static_cast<uint32_t>(n));  // blocks without a code start: n
  std::vector<uint8_t> gap(windows, 0);                              // windows without a code start: 0
  std::vector<ChunkEdge> head(chunks), tail(chunks);

  parallel_for(chunks, threads, [&](uint64_t c) {
    const uint64_t i0 = c * kChunk, i1 = std::min(n, i0 + kChunk);
    const uint64_t start = chunk_start[c];
    const uint64_t end = c + 1 < chunks ? chunk_start[c + 1] : total_bits;
    uint64_t p = start;
    // The window and block of the previous code's start: a window's gap and a
    // block's first element belong to the chunk where its first code starts.
    uint64_t last_window = UINT64_MAX, last_block = UINT64_MAX;
    if (c > 0) {
      const uint64_t prev = start - len[(w[i0 - 1] >> 7) & 0xFF];
      last_window = prev >> 6;
      last_block = prev / kDf11BlockBits;
    }
    const uint64_t first_byte = start / 8, end_byte = (end + 7) / 8;
    std::vector<uint8_t> buf(end_byte - first_byte + 8, 0);
    size_t o = 0;
    uint64_t acc = 0;
    uint32_t nacc = static_cast<uint32_t>(start & 7);  // leading bits belong to the previous chunk: zeros here
    uint8_t* sm = u->sign_mantissa.data();
    uint32_t* opos = u->output_positions.data();
    for (uint64_t i = i0; i < i1; ++i) {
      const uint16_t x = w[i];
      const uint32_t e = (x >> 7) & 0xFF;
      sm[i] = static_cast<uint8_t>(((x >> 8) & 0x80) | (x & 0x7F));
      const uint64_t win = p >> 6;
      if (win != last_window) {
        gap[win] = static_cast<uint8_t>(p & 63);
        last_window = win;
        const uint64_t blk = p / kDf11BlockBits;
        if (blk != last_block) {
          opos[blk] = static_cast<uint32_t>(i);
          last_block = blk;
        }
      }
      const uint32_t l = len[e];
      acc = (acc << l) | code[e];
      nacc += l;
      p += l;
      if (nacc >= 32) {
        nacc -= 32;
        const uint32_t v = static_cast<uint32_t>(acc >> nacc);
        buf[o] = static_cast<uint8_t>(v >> 24);
        buf[o + 1] = static_cast<uint8_t>(v >> 16);
        buf[o + 2] = static_cast<uint8_t>(v >> 8);
        buf[o + 3] = static_cast<uint8_t>(v);
        o += 4;
        acc &= (uint64_t{1} << nacc) - 1;
      }
    }
    while (nacc >= 8) {
      nacc -= 8;
      buf[o++] = static_cast<uint8_t>(acc >> nacc);
    }
    if (nacc > 0) buf[o++] = static_cast<uint8_t>(acc << (8 - nacc));  // zero-filled
    // Bytes wholly inside this chunk are copied now; the partial first and
    // last bytes are ORed in afterwards, one chunk at a time.
    uint64_t lo = first_byte, hi = end_byte;
    if (start & 7) head[c] = {lo++, buf[0], true};
    if ((end & 7) && hi > lo) tail[c] = {--hi, buf[hi - first_byte], true};
    if (hi > lo) std::copy(buf.begin() + (lo - first_byte), buf.begin() + (hi - first_byte), u->encoded_exponent.begin() + lo);
  });
  for (uint64_t c = 0; c < chunks; ++c) {
    if (head[c].used) u->encoded_exponent[head[c].byte] |= head[c].value;
    if (tail[c].used) u->encoded_exponent[tail[c].byte] |= tail[c].value;
  }
  // The padding of the last byte starts a window of its own when the last
  // code started in an earlier one (DFloat11's encode() records it the same
  // way; its block entry is n, as initialised).
  if ((total_bits & 7) && n > 0) {
    const uint64_t last_start = total_bits - len[(w[n - 1] >> 7) & 0xFF];
    if ((total_bits >> 6) != (last_start >> 6)) gap[total_bits >> 6] = static_cast<uint8_t>(total_bits & 63);
  }
  // 5-bit fields, MSB-first: 8 fields are exactly 5 bytes (windows is a multiple of 512).
  u->gaps.assign(windows / 8 * 5, 0);
  parallel_for((windows / 8 + 4095) / 4096, threads, [&](uint64_t g) {
    const uint64_t a = g * 4096, b = std::min(windows / 8, a + 4096);
    for (uint64_t k = a; k < b; ++k) {
      uint64_t v = 0;
      for (int j = 0; j < 8; ++j) v = (v << 5) | (gap[8 * k + j] & 31u);
      for (int j = 0; j < 5; ++j) u->gaps[5 * k + j] = static_cast<uint8_t>(v >> (32 - 8 * j));
    }
  });
  uint64_t most = 0;
  for (uint64_t b = 0; b < blocks; ++b)
    most = std::max<uint64_t>(most, u->output_positions[b + 1] - u->output_positions[b]);
  u->max_block_elements = most;
  u->shared_mem_bytes = 4ull * kDf11ThreadsPerBlock + 4 + 2 * most;
}

}  // namespace

uint32_t df11_sub_tables(const std::array<uint8_t, 256>& lengths) {
  return static_cast<uint32_t>(sub_table_keys(lengths, canonical_codes32(lengths)).size());
}

Df11Limit encode_dfloat11(const uint16_t* w, uint64_t n, unsigned threads, Df11Unit* out, std::string* detail,
                          const Df11EncodeParams& params) {
  auto fail = [&](Df11Limit l, const std::string& why) {
    if (detail) *detail = why;
    return l;
  };
  threads = resolve_threads(threads);
  if (n == 0) return fail(Df11Limit::Elements, "no elements");
  if (n > params.max_elements)
    return fail(Df11Limit::Elements, std::to_string(n) + " elements, the kernel takes at most " +
                                         std::to_string(params.max_elements));
  const uint64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<Histogram> chunk_hist(chunks);
  parallel_for(chunks, threads, [&](uint64_t c) {
    const uint64_t i0 = c * kChunk;
    chunk_hist[c] = exponent_histogram(w + i0, std::min(kChunk, n - i0));
  });
  Histogram hist{};
  for (const auto& h : chunk_hist)
    for (int s = 0; s < 256; ++s) hist[s] += h[s];
  for (int s = 255; s >= static_cast<int>(kDf11PointerThreshold); --s)
    if (hist[s])
      return fail(Df11Limit::ExponentSymbol,
                  "exponent " + std::to_string(s) + (s == 255 ? " (Inf/NaN)" : " (|x| >= 2^113)") + " occurs " +
                      std::to_string(hist[s]) + " time(s); the kernel reads values >= 240 as table pointers");

  Df11Unit& u = *out;
  u = Df11Unit();
  // Longest codes first (optimal); shorten them until the tables fit in 16 sub-tables.
  Lengths len{};
  uint32_t limit = std::min(params.max_code_length, kDf11MaxCodeLength);
  uint32_t first_tables = 0;
  for (;; --limit) {
    len = build_code_lengths(hist, limit);
    const uint32_t t = df11_sub_tables(len);
    if (limit == std::min(params.max_code_length, kDf11MaxCodeLength)) first_tables = t;
    if (t <= kDf11MaxSubTables) break;
    if (limit == 8) return fail(Df11Limit::SubTables, std::to_string(t) + " sub-tables with 8-bit codes");
  }
  if (first_tables > kDf11MaxSubTables)
    u.adjustments.push_back("SubTables: code lengths limited to " + std::to_string(limit) + " bits (the optimal code needs " +
                            std::to_string(first_tables) + " sub-tables, the kernel reads at most 16)");

  for (int attempt = 0;; ++attempt) {
    const Codes code = canonical_codes32(len);
    std::vector<uint64_t> start(chunks);
    uint64_t total_bits = 0;
    for (uint64_t c = 0; c < chunks; ++c) {
      start[c] = total_bits;
      for (int s = 0; s < 256; ++s) total_bits += chunk_hist[c][s] * len[s];
    }
    if ((total_bits + 7) / 8 > kDf11MaxElements)
      return fail(Df11Limit::Elements, "encoded stream of " + std::to_string((total_bits + 7) / 8) +
                                           " bytes, the kernel takes fewer than 2^31");
    build_luts(len, code, hist, &u);
    encode_stream(w, n, threads, len, code, start, total_bits, &u);
    u.code_lengths = len;
    u.max_code_length = *std::max_element(len.begin(), len.end());
    if (u.shared_mem_bytes <= kDf11SharedMemLimit) break;
    if (attempt > 0)
      return fail(Df11Limit::SharedMemory, std::to_string(u.max_block_elements) + " elements start in one block");
    // Too many codes start in one 4096-byte block (codes of ~1.4 bits or less
    // on average): give every code at least 2 bits, so that at most 16384
    // start in a block. The code becomes incomplete; build_luts fills the gaps.
    u.adjustments.push_back("SharedMemory: shortest code raised to 2 bits (" + std::to_string(u.max_block_elements) +
                            " elements started in one block, " + std::to_string(u.shared_mem_bytes) +
                            " bytes of shared memory; the limit is 49152)");
    for (auto& l : len)
      if (l == 1) l = 2;
  }
  return Df11Limit::None;
}

}  // namespace df11
