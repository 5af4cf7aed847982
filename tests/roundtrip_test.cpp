// End-to-end round trips through the public API: real GPT-2 weights, a
// generated model directory, determinism across thread counts.
#include <catch2/catch.hpp>

#include <cstring>
#include <random>
#include <filesystem>
#include <fstream>

#include "df11.h"
#include "safetensors_writer.h"
#include "sample_model.h"
#include "sha256.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace df11;

namespace {

Options opts(unsigned threads = 1) {
  Options o;
  o.threads = threads;
  return o;
}

std::vector<uint8_t> bf16_bytes(const std::vector<uint16_t>& w) {
  std::vector<uint8_t> b(w.size() * 2);
  std::memcpy(b.data(), w.data(), b.size());
  return b;
}

}  // namespace

TEST_CASE("round trip: real GPT-2 weights, byte-identical and under 67.2%", "[roundtrip][gpt2]") {
  const std::string src = df11test::shared_gpt2_path();
  if (src.empty()) {
    WARN("../shared/testdata/gpt2-small-h0-5.safetensors is absent: skipping the GPT-2 round trip");
    return;
  }
  df11test::TempDir tmp;
  const std::string packed = tmp.path + "/gpt2.df11", restored = tmp.path + "/gpt2.safetensors";
  Report r;
  REQUIRE(compress(src, packed, opts(2), &r).message == "");
  const double ratio = static_cast<double>(fs::file_size(packed)) / static_cast<double>(fs::file_size(src));
  INFO("ratio " << ratio);
  CHECK(ratio <= 0.672);
  VerifyReport vr;
  vr.device = "cpu";
  Options vo = opts(2);
  vo.device = "cpu";
  REQUIRE(verify(packed, src, vo, &vr).ok());
  CHECK(vr.failures.empty());
  CHECK(vr.tensors_checked == 72);
  REQUIRE(decompress(packed, restored, opts(2), nullptr).ok());
  REQUIRE(df11test::read_file(restored) == df11test::read_file(src));
}

// From -T4 the output is also written through a shared mapping where the
// file system allows it (tmpfs, ext4, XFS: AtomicOutputFile::map_for_writers),
// with the input's size as the estimate, cut to the real size at the end.
TEST_CASE("round trip: -T1, -T2, -T4 and -T8 give byte-identical containers", "[roundtrip][determinism]") {
  df11test::TempDir tmp;
  // Big enough (8 windows of 2^20 weights) that the encoder really splits work.
  const auto w = df11test::gaussian_bf16(8'000'000, 0.02, 42);
  df11test::write_safetensors(tmp.path + "/m.safetensors",
                              {{"big", "BF16", {8000, 1000}, bf16_bytes(w)},
                               {"norm", "F32", {4}, std::vector<uint8_t>(16, 0x3F)}});
  REQUIRE(compress(tmp.path + "/m.safetensors", tmp.path + "/a.df11", opts(1), nullptr).ok());
  REQUIRE(compress(tmp.path + "/m.safetensors", tmp.path + "/b.df11", opts(2), nullptr).ok());
  REQUIRE(compress(tmp.path + "/m.safetensors", tmp.path + "/c.df11", opts(4), nullptr).ok());
  REQUIRE(compress(tmp.path + "/m.safetensors", tmp.path + "/d.df11", opts(8), nullptr).ok());
  // Double parentheses: a failure prints no 16 MB vectors.
  const auto a = df11test::read_file(tmp.path + "/a.df11");
  REQUIRE((a == df11test::read_file(tmp.path + "/b.df11")));
  REQUIRE((a == df11test::read_file(tmp.path + "/c.df11")));
  REQUIRE((a == df11test::read_file(tmp.path + "/d.df11")));
  const std::string restored = tmp.path + "/r.safetensors";
  REQUIRE(decompress(tmp.path + "/d.df11", restored, opts(8), nullptr).ok());
  REQUIRE((df11test::read_file(restored) == df11test::read_file(tmp.path + "/m.safetensors")));
}

TEST_CASE("round trip: special values, empty and 0-d tensors, every dtype path", "[roundtrip][special]") {
  df11test::TempDir tmp;
  std::vector<uint16_t> specials;
  for (uint16_t v : {0x0000, 0x8000, 0x0001, 0x807F, 0x7F80, 0xFF80, 0x7FC0, 0xFFC1, 0x7F81, 0x3F80})
    for (int k = 0; k < 50; ++k) specials.push_back(v);
  std::vector<uint8_t> f32(4 * 1000);
  for (size_t i = 0; i < f32.size(); ++i) f32[i] = static_cast<uint8_t>(i * 7);
  df11test::write_safetensors(tmp.path + "/m.safetensors",
                              {{"specials", "BF16", {specials.size()}, bf16_bytes(specials)},
                               {"empty", "BF16", {0, 4}, {}},
                               {"scalar", "BF16", {}, {0x80, 0x3F}},
                               {"one", "BF16", {1}, {0x01, 0x80}},
                               {"f32", "F32", {1000}, f32},
                               {"i64", "I64", {2}, std::vector<uint8_t>(16, 0)},
                               {"u8", "U8", {3}, {1, 2, 3}}},
                              R"({"format":"pt","note":"x"})", 8);
  REQUIRE(compress(tmp.path + "/m.safetensors", "", opts(), nullptr).ok());
  REQUIRE(fs::exists(tmp.path + "/m.df11"));
  REQUIRE(decompress(tmp.path + "/m.df11", tmp.path + "/r.safetensors", opts(), nullptr).ok());
  REQUIRE(df11test::read_file(tmp.path + "/r.safetensors") == df11test::read_file(tmp.path + "/m.safetensors"));
  Report info_r;
  REQUIRE(info(tmp.path + "/m.df11", opts(), &info_r).ok());
  REQUIRE(info_r.files.size() == 1);
  REQUIRE(info_r.files[0].tensors.size() == 7);
}

TEST_CASE("round trip: model directory with shards, index, side files and a subfolder", "[roundtrip][dir]") {
  df11test::TempDir tmp;
  const std::string in = tmp.path + "/model", out = tmp.path + "/model.df11", back = tmp.path + "/restored";
  df11test::SampleOptions so;
  so.hidden = 256;
  so.layers = 2;
  so.intermediate = 512;
  so.vocab = 1024;
  df11test::make_sample_model(in, so);
  fs::create_directories(in + "/empty_dir");
  Options o = opts(2);
  o.verify_after = true;
  Report r;
  const Status s = compress(in, out, o, &r);
  REQUIRE(s.message == "");
  REQUIRE(fs::exists(out + "/df11-manifest.json"));
  REQUIRE(fs::exists(out + "/model-00001-of-00002.df11"));
  REQUIRE(fs::exists(out + "/vision/model.df11"));
  REQUIRE(fs::exists(out + "/config.json"));
  CHECK(r.stored_bytes < r.original_bytes * 0.75);

  VerifyReport vr;
  Options vo = opts(2);
  vo.device = "cpu";
  REQUIRE(verify(out, in, vo, &vr).message == "");
  REQUIRE(decompress(out, back, opts(2), nullptr).ok());
  // Every file byte-identical, and the manifest's SHA-256 is the file's.
  size_t nfiles = 0;
  for (const auto& e : fs::recursive_directory_iterator(in)) {
    if (!e.is_regular_file()) continue;
    const std::string rel = fs::relative(e.path(), in).generic_string();
    INFO(rel);
    REQUIRE(df11test::read_file(back + "/" + rel) == df11test::read_file(e.path().string()));
    ++nfiles;
  }
  CHECK(nfiles >= 10);
  CHECK(fs::is_directory(back + "/empty_dir"));
  // Existing output is never overwritten without -f.
  REQUIRE(compress(in, out, opts(), nullptr).code == Error::OutputExists);
  Options f = opts();
  f.overwrite = true;
  REQUIRE(compress(in, out, f, nullptr).ok());
}

TEST_CASE("verify names a failing tensor and exits through VerifyMismatch", "[roundtrip][verify]") {
  df11test::TempDir tmp;
  const auto w = df11test::gaussian_bf16(50000, 0.02, 9);
  df11test::write_safetensors(tmp.path + "/m.safetensors", {{"layer.weight", "BF16", {50000}, bf16_bytes(w)}});
  REQUIRE(compress(tmp.path + "/m.safetensors", "", opts(), nullptr).ok());
  // Flip one sign/mantissa byte: structure stays valid, only the XXH64 can tell.
  Report ir;
  REQUIRE(info(tmp.path + "/m.df11", opts(), &ir).ok());
  auto bytes = df11test::read_file(tmp.path + "/m.df11");
  bytes[128 + ir.files[0].tensors[0].stored_bytes - 100] ^= 0x01;  // last bytes of the payload: sign/mantissa
  df11test::write_file(tmp.path + "/bad.df11", bytes);
  VerifyReport vr;
  Options vo = opts();
  vo.device = "cpu";
  const Status s = verify(tmp.path + "/bad.df11", "", vo, &vr);
  REQUIRE(s.code == Error::VerifyMismatch);
  REQUIRE(vr.failures.size() == 1);
  CHECK(vr.failures[0].find("layer.weight") != std::string::npos);
  CHECK(vr.failures[0].find("Df11TensorChecksum") != std::string::npos);
  REQUIRE(decompress(tmp.path + "/bad.df11", tmp.path + "/r.safetensors", opts(), nullptr).code == Error::Df11TensorChecksum);
  REQUIRE_FALSE(fs::exists(tmp.path + "/r.safetensors"));
}

TEST_CASE("round trip: the dtypes of safetensors 0.8 (MX scales, FP4/FP6, FNUZ, complex)", "[roundtrip][special]") {
  // As an MXFP4 checkpoint holds them: packed 4-bit blocks with one E8M0
  // scale per 32 elements; FP6, the FNUZ float8s and complex64 beside them.
  df11test::TempDir tmp;
  std::mt19937_64 rng(17);
  std::vector<uint8_t> blocks(64 * 1024), scales(4096), f6(3 * 1000), fnuz(5000), c64(8 * 700);
  for (auto& b : blocks) b = static_cast<uint8_t>(rng() % 7 | (rng() % 7) << 4);  // small magnitudes dominate
  for (auto& b : scales) b = static_cast<uint8_t>(118 + rng() % 8);             // 2^-9 .. 2^-2
  for (auto& b : f6) b = static_cast<uint8_t>(rng());
  for (auto& b : fnuz) b = static_cast<uint8_t>(rng() % 3 == 0 ? 0 : rng());
  for (size_t i = 0; i < c64.size(); i += 4) {
    const float x = static_cast<float>(static_cast<int>(rng() % 2001) - 1000) * 1e-3f;
    std::memcpy(&c64[i], &x, 4);
  }
  df11test::write_safetensors(tmp.path + "/m.safetensors",
                              {{"experts.down.blocks", "F4", {256, 512}, blocks},
                               {"experts.down.scales", "F8_E8M0", {256, 16}, scales},
                               {"f6", "F6_E2M3", {4000}, f6},
                               {"f6b", "F6_E3M2", {4}, {1, 2, 3}},
                               {"e4fnuz", "F8_E4M3FNUZ", {5000}, fnuz},
                               {"e5fnuz", "F8_E5M2FNUZ", {2}, {0x80, 0x01}},
                               {"rotary", "C64", {700}, c64},
                               {"odd", "F4", {2, 1}, {0x21}}},
                              R"({"format":"pt"})");
  for (unsigned threads : {1u, 3u}) {
    INFO("-T" << threads);
    const std::string out = tmp.path + "/m" + std::to_string(threads) + ".df11";
    Report rep;
    REQUIRE(compress(tmp.path + "/m.safetensors", out, opts(threads), &rep).message == "");
    REQUIRE(decompress(out, tmp.path + "/r.safetensors", [&] {
              Options o = opts(threads);
              o.overwrite = true;
              return o;
            }(), nullptr).ok());
    REQUIRE(df11test::read_file(tmp.path + "/r.safetensors") == df11test::read_file(tmp.path + "/m.safetensors"));
    Options v = opts(threads);
    v.device = "cpu";
    VerifyReport vr;
    REQUIRE(verify(out, tmp.path + "/m.safetensors", v, &vr).message == "");
    CHECK(vr.tensors_checked == 8);
    // Bits per weight count F4's elements (two a byte): under 4, as zstd
    // finds the small magnitudes; the E8M0 scales well under 8.
    REQUIRE(rep.files.size() == 1);
    for (const auto& t : rep.files[0].tensors) {
      INFO(t.name << " " << t.encoding << " " << t.bits_per_weight);
      if (t.name == "experts.down.blocks") CHECK((t.bits_per_weight > 1.0 && t.bits_per_weight < 4.0));
      if (t.name == "experts.down.scales") CHECK(t.bits_per_weight < 6.0);
    }
  }
}

TEST_CASE("round trip: degenerate BF16 tensors go to ZSTD, trained and 2:4-sparse ones stay BF16_HUFFMAN",
          "[roundtrip][special]") {
  // BF16_HUFFMAN keeps every sign-mantissa byte (8 bits a weight at least);
  // zeros, a constant or a mask repeat them, and zstd stores such a tensor in
  // a few bytes. The writer samples a tensor whose top exponent holds half its
  // weights or more and takes ZSTD when zstd needs under half the space.
  df11test::TempDir tmp;
  std::mt19937_64 rng(23);
  const uint64_t n = 2048 * 2048;  // 8 MiB: sampled in pieces
  std::vector<uint16_t> zeros(n, 0), ones(n, 0x3F80), mask(1024 * 1024), sparse = df11test::gaussian_bf16(n, 0.02, 4);
  for (uint64_t r = 0; r < 1024; ++r)
    for (uint64_t c = 0; c < 1024; ++c) mask[r * 1024 + c] = c <= r ? 0x3F80 : 0;
  for (uint64_t i = 0; i < n; i += 4) {  // 2:4: two of every four weights are zero
    const uint64_t a = rng() % 4, b = (a + 1 + rng() % 3) % 4;
    sparse[i + a] = 0;
    sparse[i + b] = 0;
  }
  const std::vector<uint16_t> trained = df11test::gaussian_bf16(n, 0.02, 5);
  const std::vector<uint16_t> lora_b(4096 * 16, 0);  // small: sampled whole
  df11test::write_safetensors(tmp.path + "/m.safetensors",
                              {{"zeros", "BF16", {2048, 2048}, bf16_bytes(zeros)},
                               {"ones", "BF16", {2048, 2048}, bf16_bytes(ones)},
                               {"mask", "BF16", {1024, 1024}, bf16_bytes(mask)},
                               {"sparse", "BF16", {2048, 2048}, bf16_bytes(sparse)},
                               {"trained", "BF16", {2048, 2048}, bf16_bytes(trained)},
                               {"lora_B", "BF16", {4096, 16}, bf16_bytes(lora_b)}});
  Report rep;
  REQUIRE(compress(tmp.path + "/m.safetensors", tmp.path + "/m.df11", opts(2), &rep).message == "");
  REQUIRE(rep.files.size() == 1);
  for (const auto& t : rep.files[0].tensors) {
    INFO(t.name << ": " << t.encoding << ", " << t.stored_bytes << " of " << t.original_bytes << " bytes");
    if (t.name == "sparse" || t.name == "trained") {
      CHECK(t.encoding == "bf16-huffman");
    } else {
      CHECK(t.encoding == "zstd");
      CHECK(t.stored_bytes * 100 < t.original_bytes);  // under 1% (BF16_HUFFMAN: 56%)
    }
  }
  REQUIRE(decompress(tmp.path + "/m.df11", tmp.path + "/r.safetensors", opts(2), nullptr).ok());
  CHECK(df11test::read_file(tmp.path + "/r.safetensors") == df11test::read_file(tmp.path + "/m.safetensors"));
  Options v = opts(2);
  v.device = "cpu";
  VerifyReport vr;
  CHECK(verify(tmp.path + "/m.df11", tmp.path + "/m.safetensors", v, &vr).message == "");
}
