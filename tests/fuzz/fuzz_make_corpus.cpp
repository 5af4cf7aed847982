// Writes the seed corpora of the fuzz targets into DIR/<target>/ (see
// tests/fuzz/fuzz.cmake). Deterministic: rerunning gives the same files.
//   df11_fuzz_make_corpus tests/fuzz/corpus
#include <zstd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "bf16_codec.h"
#include "container_layout.h"
#include "df11.h"
#include "huffman.h"
#include "safetensors_writer.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace df11test;
using Bytes = std::vector<uint8_t>;

namespace {

std::string g_root;

void put(const std::string& target, const std::string& name, const Bytes& b) {
  fs::create_directories(g_root + "/" + target);
  write_file(g_root + "/" + target + "/" + name, b);
}

Bytes bf16_bytes(const std::vector<uint16_t>& w) {
  Bytes b(w.size() * 2);
  if (!w.empty()) std::memcpy(b.data(), w.data(), b.size());
  return b;
}

Bytes compress_bytes(const Bytes& st) {
  TempDir t;
  write_file(t.path + "/m.safetensors", st);
  df11::Options o;
  o.threads = 1;
  const df11::Status s = df11::compress(t.path + "/m.safetensors", t.path + "/m.df11", o, nullptr);
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.message.c_str());
    std::exit(1);
  }
  return read_file(t.path + "/m.df11");
}

// Container with its meta block decompressed in place (fuzz_container mode 2).
Bytes with_raw_meta(const Bytes& c) {
  const uint64_t off = df11::get_u64(c.data() + 40), size = df11::get_u64(c.data() + 48);
  const unsigned long long n = ZSTD_getFrameContentSize(c.data() + off, size);
  Bytes meta(n);
  ZSTD_decompress(meta.data(), n, c.data() + off, size);
  Bytes out(c.begin(), c.begin() + static_cast<std::ptrdiff_t>(off));
  out.insert(out.end(), meta.begin(), meta.end());
  return out;
}

Bytes prefixed(uint8_t b, const Bytes& rest) {
  Bytes out(1 + rest.size(), b);
  if (!rest.empty()) std::memcpy(out.data() + 1, rest.data(), rest.size());
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  g_root = argv[1];

  // ---- tiny safetensors files --------------------------------------------
  std::vector<std::pair<std::string, Bytes>> st;
  st.push_back({"bf16_gauss", make_safetensors({{"w", "BF16", {40, 50}, bf16_bytes(gaussian_bf16(2000, 0.02, 1))},
                                                {"n", "F32", {4}, Bytes(16, 0)}})});
  st.push_back({"bf16_const", make_safetensors({{"c", "BF16", {300}, bf16_bytes(std::vector<uint16_t>(300, 0x3F80))}},
                                               "{\"format\":\"pt\"}")});
  {
    Bytes f32(4 * 512);
    for (size_t i = 0; i < f32.size(); ++i) f32[i] = static_cast<uint8_t>((i * 7919) >> 3);
    Bytes rnd(64);
    for (size_t i = 0; i < rnd.size(); ++i) rnd[i] = static_cast<uint8_t>(i * 167 + 13);
    st.push_back({"mixed", make_safetensors({{"f", "F32", {512}, f32},
                                             {"e", "BF16", {0}, {}},
                                             {"r", "U8", {64}, rnd},
                                             {"s", "BF16", {}, {0x80, 0x3F}},
                                             {"i", "I64", {2}, Bytes(16, 1)}})});
  }
  // More than one block of 64 chunks: 30000 weights at ~3 bits.
  st.push_back({"bf16_blocks", make_safetensors({{"w", "BF16", {30000}, bf16_bytes(gaussian_bf16(30000, 0.05, 2))}})});
  st.push_back({"empty", make_safetensors({})});

  for (const auto& [name, bytes] : st) {
    if (bytes.size() < 8192) put("safetensors_header", name + ".safetensors", bytes);
    const Bytes c = compress_bytes(bytes);
    put("container", name + "_m0.df11", prefixed(0, c));
    put("container", name + "_m1.df11", prefixed(1, c));
    put("container", name + "_m2.df11", prefixed(2, with_raw_meta(c)));
  }
  auto with_len = [](const std::string& json, size_t data) {
    Bytes b(8 + json.size() + data, 0);
    const uint64_t n = json.size();
    std::memcpy(b.data(), &n, 8);
    std::memcpy(b.data() + 8, json.data(), json.size());
    return b;
  };
  put("safetensors_header", "dup.safetensors",
      with_len("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
               "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 2));
  put("safetensors_header", "escapes.safetensors",
      with_len("{\"__metadata__\":{\"k\\u00e9\":\"v\\n\"},\"\\ud83d\\ude00\":{\"dtype\":\"F8_E4M3\",\"shape\":[2,1],"
               "\"data_offsets\":[0,2]}}   ", 2));
  put("safetensors_header", "numbers.safetensors",
      with_len("{\"x\":{\"dtype\":\"F64\",\"shape\":[18446744073709551615,0],\"data_offsets\":[0,0]},"
               "\"y\":{\"dtype\":\"I32\",\"shape\":[-0, 1e3],\"data_offsets\":[0.0,4]}}", 4));
  {
    Bytes tr = with_len("{\"a\":", 0);
    tr[0] = 0x10;  // claims 16 bytes of JSON, has 5
    put("safetensors_header", "truncated.safetensors", tr);
  }
  if (!shared_gpt2_path().empty()) {
    const Bytes g = read_file(shared_gpt2_path());
    uint64_t n;
    std::memcpy(&n, g.data(), 8);
    put("safetensors_header", "gpt2_header_only.safetensors", Bytes(g.begin(), g.begin() + 8 + static_cast<std::ptrdiff_t>(n)));
  }

  // ---- huffman -------------------------------------------------------------
  {
    const auto w = gaussian_bf16(4000, 0.02, 5);
    const df11::CodeLengths len = df11::build_code_lengths(df11::exponent_histogram(w.data(), w.size()));
    Bytes packed(128);
    for (int k = 0; k < 128; ++k) packed[k] = static_cast<uint8_t>(len[2 * k] | (len[2 * k + 1] << 4));
    Bytes syms(600);
    for (size_t i = 0; i < syms.size(); ++i) syms[i] = static_cast<uint8_t>((w[i] >> 7) & 0xFF);
    Bytes m0 = prefixed(0, packed);
    m0.insert(m0.end(), syms.begin(), syms.end());
    put("huffman", "lengths_gauss", m0);
    m0.back() |= 1;  // repeated symbols: several blocks
    put("huffman", "lengths_gauss_repeat", m0);
    Bytes one(129, 0);
    one[1 + 60] = 0x10;  // exponent 121 alone, length 1
    one.insert(one.end(), {1, 2, 3, 4, 5});
    put("huffman", "one_symbol", one);
    Bytes flat(129, 0x88);  // 256 symbols of length 8
    flat[0] = 0;
    for (int i = 0; i < 300; ++i) flat.push_back(static_cast<uint8_t>(i * 13));
    put("huffman", "flat8", flat);
    // Histogram modes.
    Bytes h1{1, 40};
    for (int s = 0; s < 41; ++s) {
      h1.push_back(static_cast<uint8_t>(100 + s));
      h1.push_back(static_cast<uint8_t>(s * 6));
    }
    for (int i = 0; i < 400; ++i) h1.push_back(static_cast<uint8_t>(i * 7));
    put("huffman", "histogram", h1);
    h1[0] = 3;
    for (int i = 0; i < 12; ++i) h1.push_back(static_cast<uint8_t>(i * 29 + 3));
    put("huffman", "histogram_corrupt", h1);
    // Mode 2: a valid small view given verbatim.
    std::vector<uint16_t> small(700);
    for (size_t i = 0; i < small.size(); ++i) small[i] = static_cast<uint16_t>(0x3C00 + ((i * 2654435761u) >> 20) % 0x400);
    const df11::EncodedBf16 e = df11::encode_bf16(small.data(), small.size(), 1);
    Bytes m2{2};
    for (int k = 0; k < 128; ++k) m2.push_back(static_cast<uint8_t>(e.lengths[2 * k] | (e.lengths[2 * k + 1] << 4)));
    auto le = [&](uint64_t v, int n) {
      for (int i = 0; i < n; ++i) m2.push_back(static_cast<uint8_t>(v >> (8 * i)));
    };
    le(e.geom.n, 2);
    le(e.geom.total_bits, 2);
    le(e.geom.n_threads, 1);
    for (uint64_t x : e.block_out) le(x, 2);
    for (uint8_t x : e.gaps) le(x, 1);
    if (e.gaps.empty()) le(0, 1);
    for (uint32_t x : e.stream) le(x, 4);
    put("huffman", "view_valid", m2);
  }

  // ---- roundtrip -----------------------------------------------------------
  {
    put("roundtrip", "gauss", prefixed(0, bf16_bytes(gaussian_bf16(1500, 0.02, 7))));
    put("roundtrip", "gauss_container", prefixed(3, bf16_bytes(gaussian_bf16(3000, 0.5, 8))));
    // (Tiled inputs, flags 0xFF, take ~1 s each under ASan: not a seed, or the
    // fuzzer would spend its time there. fuzz_corpus_replay_test runs one.)
    put("roundtrip", "constant", prefixed(3, bf16_bytes(std::vector<uint16_t>(500, 0xBF80))));
    std::vector<uint16_t> special = {0x0000, 0x8000, 0x7F80, 0xFF80, 0x7FC0, 0x0001, 0x807F, 0x7F7F, 0x3F80, 0x0080};
    put("roundtrip", "specials", prefixed(0x07, bf16_bytes(special)));
    std::vector<uint16_t> all(8192);
    for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i * 40503u + (i >> 13));
    put("roundtrip", "all_values", prefixed(0, bf16_bytes(all)));
    put("roundtrip", "one", Bytes{3, 0x80, 0x3F});
    // flags & 8: tiny windows and encoder segments (the testing hooks); the
    // high nibble picks the size: 0 -> 1 weight, 9 -> 33, 13 -> 97.
    put("roundtrip", "gauss_window1", prefixed(0x0B, bf16_bytes(gaussian_bf16(1500, 0.02, 9))));
    put("roundtrip", "gauss_window33", prefixed(0x9B, bf16_bytes(gaussian_bf16(3000, 0.5, 10))));
    put("roundtrip", "all_values_window97", prefixed(0xDF, bf16_bytes(all)));
  }
  return 0;
}
