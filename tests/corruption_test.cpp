// Corruption and truncation sweeps over a small container of real weights:
// every single-byte change and every truncation must be rejected with a clean
// error (exit code 1 or 3) by verify and decompress, leaving no output file.
// docs/FORMAT.md section 5 claims that no byte of a container is unchecked.
#include <catch2/catch.hpp>
#include <sys/wait.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "container_layout.h"
#include "df11.h"
#include "safetensors_header.h"
#include "safetensors_writer.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace df11;
using Bytes = std::vector<uint8_t>;

namespace {

Bytes bf16_bytes(const std::vector<uint16_t>& w) {
  Bytes b(w.size() * 2);
  std::memcpy(b.data(), w.data(), b.size());
  return b;
}

// A few thousand real weights per tensor when the GPT-2 file is there:
// two BF16 matrices cut to 4096 and 3000 weights, an F32 layer-norm weight
// and an F32 bias (one of which zstd usually shrinks), and an empty tensor.
Bytes small_model(bool* real) {
  const std::string gpt2 = df11test::shared_gpt2_path();
  *real = !gpt2.empty();
  if (!*real) {
    auto f32 = [](size_t n, float base) {
      Bytes b(4 * n);
      for (size_t i = 0; i < n; ++i) {
        const float v = base + 0.01f * static_cast<float>(i % 13);
        std::memcpy(&b[4 * i], &v, 4);
      }
      return b;
    };
    return df11test::make_safetensors({{"q", "BF16", {64, 64}, bf16_bytes(df11test::gaussian_bf16(4096, 0.02, 11))},
                                       {"p", "BF16", {3000}, bf16_bytes(df11test::gaussian_bf16(3000, 0.1, 12))},
                                       {"ln", "F32", {768}, f32(768, 1.0f)},
                                       {"b", "F32", {256}, f32(256, -0.5f)},
                                       {"e", "BF16", {0}, {}}},
                                      "{\"format\":\"pt\"}");
  }
  const Bytes file = df11test::read_file(gpt2);
  StHeader h;
  const Status s = parse_safetensors(file.data(), file.size(), gpt2, &h);
  REQUIRE(s.ok());
  auto take = [&](const std::string& name, uint64_t max_bytes) {
    for (const auto& t : h.tensors)
      if (t.name == name) {
        const uint8_t* p = file.data() + 8 + h.json_size + t.begin;
        return Bytes(p, p + std::min(max_bytes, t.end - t.begin));
      }
    FAIL("GPT-2 file lacks " << name);
    return Bytes();
  };
  const Bytes q = take("h.0.attn.query.weight", 2 * 4096), p = take("h.3.attn.proj.weight", 2 * 3000);
  const Bytes ln = take("h.1.ln_att.weight", 4 * 768), b = take("h.2.attn.query.bias", 4 * 768);
  return df11test::make_safetensors({{"h.0.attn.query.weight", "BF16", {64, 64}, q},
                                     {"h.3.attn.proj.weight", "BF16", {3000}, p},
                                     {"h.1.ln_att.weight", "F32", {768}, ln},
                                     {"h.2.attn.query.bias", "F32", {768}, b},
                                     {"empty", "BF16", {0}, {}}},
                                    "{\"format\":\"pt\",\"note\":\"slice of gpt2-small\"}");
}

struct Fixture {
  df11test::TempDir dir;
  Bytes original, container;
  std::vector<std::string> encodings;
  Fixture() {
    bool real = false;
    original = small_model(&real);
    if (!real) WARN("../shared/testdata/gpt2-small-h0-5.safetensors is absent: sweeping synthetic Gaussian weights");
    df11test::write_file(dir.path + "/m.safetensors", original);
    Options o;
    o.threads = 1;
    Report rep;
    REQUIRE(compress(dir.path + "/m.safetensors", dir.path + "/m.df11", o, &rep).ok());
    container = df11test::read_file(dir.path + "/m.df11");
    if (const char* dump = std::getenv("DF11_CORRUPTION_DUMP")) df11test::write_file(dump, container);
    for (const auto& t : rep.files.at(0).tensors) encodings.push_back(t.encoding);
    fs::remove(dir.path + "/m.df11");
  }
  // Only the inputs we wrote, nothing else (no output, no temporaries).
  void check_clean(const std::set<std::string>& expect) const {
    std::set<std::string> names;
    for (const auto& e : fs::directory_iterator(dir.path)) names.insert(e.path().filename().string());
    CHECK(names == expect);
  }
};

enum class Verdict { Rejected, IdenticalOutput, Accepted };

// verify and decompress of `bytes` (written to c.df11) must both fail with
// exit code 1 or 3 and leave nothing behind (Rejected). IdenticalOutput: both
// succeeded and restored the original file byte for byte.
Verdict judge(const Fixture& f, const Bytes& bytes, std::string* why) {
  const std::string c = f.dir.path + "/c.df11", out = f.dir.path + "/back.safetensors";
  df11test::write_file(c, bytes);
  Options o;
  o.threads = 1;
  o.device = "cpu";
  VerifyReport vr;
  const Status v = verify(c, "", o, &vr);
  const Status d = decompress(c, out, o, nullptr);
  *why = v.message + " | " + d.message;
  const int ev = exit_code(v.code), ed = exit_code(d.code);
  Verdict verdict = Verdict::Accepted;
  if (!v.ok() && !d.ok() && (ev == 1 || ev == 3) && (ed == 1 || ed == 3) && !fs::exists(out))
    verdict = Verdict::Rejected;
  else if (v.ok() && d.ok() && df11test::read_file(out) == f.original)
    verdict = Verdict::IdenticalOutput;
  if (fs::exists(out)) *why += " | decompress wrote " + out;
  fs::remove(c);
  fs::remove(out);
  return verdict;
}

bool rejected(const Fixture& f, const Bytes& bytes, std::string* why) { return judge(f, bytes, why) == Verdict::Rejected; }

// [begin, end) of each ZSTD payload, from the index in the meta block.
std::vector<std::pair<uint64_t, uint64_t>> zstd_payloads(const Bytes& c) {
  FixedHeader h;
  h.load(c.data());
  Bytes meta(h.json_size + h.tensor_count * kRecordSize);
  REQUIRE(ZSTD_decompress(meta.data(), meta.size(), c.data() + h.meta_offset, h.meta_size) == meta.size());
  std::vector<std::pair<uint64_t, uint64_t>> out;
  for (uint64_t i = 0; i < h.tensor_count; ++i) {
    Record r;
    r.load(meta.data() + h.json_size + i * kRecordSize);
    if (r.encoding == kZstd) out.push_back({r.payload_offset, r.payload_offset + r.payload_size});
  }
  return out;
}

struct Run {
  int code = -1;
  std::string err;
};

Run df11_cli(const std::string& args, const std::string& dir) {
  const std::string bin = std::string(DF11_BINARY_DIR) + "/df11";
  const std::string cmd = "cd '" + dir + "' && '" + bin + "' " + args + " >/dev/null 2>.err </dev/null";
  const int st = std::system(cmd.c_str());
  Run r;
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  const Bytes e = df11test::read_file(dir + "/.err");
  r.err.assign(e.begin(), e.end());
  fs::remove(dir + "/.err");
  return r;
}

}  // namespace

TEST_CASE("corruption: every single-byte change is rejected by verify and decompress", "[corruption]") {
  Fixture f;
  const Bytes& c = f.container;
  // The container must exercise every encoding.
  const std::set<std::string> enc(f.encodings.begin(), f.encodings.end());
  CHECK(enc.count("bf16-huffman") == 1);
  CHECK(enc.count("raw") == 1);
  CHECK_FALSE(zstd_payloads(c).empty());  // usually the layer-norm weight
  INFO("encodings: " << f.encodings.size() << " tensors, container " << c.size() << " bytes");
  // Positions: every byte of a small container; otherwise the fixed header,
  // the meta block, and ~2500 positions spread evenly (with a varying phase)
  // over the payloads.
  std::vector<uint64_t> pos;
  uint64_t meta_offset = 0;
  std::memcpy(&meta_offset, c.data() + 40, 8);
  if (c.size() <= 4000) {
    for (uint64_t i = 0; i < c.size(); ++i) pos.push_back(i);
  } else {
    for (uint64_t i = 0; i < 128; ++i) pos.push_back(i);
    for (uint64_t i = meta_offset; i < c.size(); ++i) pos.push_back(i);
    const uint64_t span = meta_offset - 128, want = 2500;
    for (uint64_t k = 0; k < want; ++k) pos.push_back(128 + (k * span) / want + (k * 7) % std::max<uint64_t>(1, span / want));
  }
  std::sort(pos.begin(), pos.end());
  pos.erase(std::unique(pos.begin(), pos.end()), pos.end());
  REQUIRE(pos.size() >= 2000);
  // zstd's encoding is not canonical: a few bits of a frame (the frame
  // header's unused bit, slack in entropy tables) can change without changing
  // what it decodes to. payload_xxh64 (FORMAT.md section 3) catches those;
  // before it existed about 1 in 1,500 changes here went unnoticed.
  size_t bad = 0, harmless = 0;
  for (uint64_t p : pos) {
    if (p >= c.size()) continue;
    Bytes b = c;
    b[p] ^= static_cast<uint8_t>(1u << (p % 8));
    std::string why;
    const Verdict v = judge(f, b, &why);
    if (v == Verdict::Rejected) continue;
    if (v == Verdict::IdenticalOutput) ++harmless;
    ++bad;
    FAIL_CHECK("byte " << p << " changed (xor " << (1u << (p % 8)) << ") was not rejected: " << why);
  }
  CHECK(bad == 0);
  CHECK(harmless == 0);  // counted in bad as well; kept apart for the message
  f.check_clean({"m.safetensors"});
}

TEST_CASE("corruption: truncation at 100 points gives a clean error", "[corruption]") {
  Fixture f;
  const Bytes& c = f.container;
  for (uint64_t k = 0; k < 100; ++k) {
    const uint64_t len = k * c.size() / 100 + (k % 3);  // 0 .. size-1, not only round offsets
    if (len >= c.size()) continue;
    Bytes b(c.begin(), c.begin() + static_cast<std::ptrdiff_t>(len));
    std::unique_ptr<Reader> r;
    const Status s = Reader::open(f.dir.path + "/none", &r);  // (missing file: Io)
    CHECK(s.code == Error::Io);
    std::string why;
    INFO("truncated to " << len << " of " << c.size());
    CHECK(rejected(f, b, &why));
    // The reader's own verdict: truncated, or not a container at all.
    df11test::write_file(f.dir.path + "/t.df11", b);
    const Status o = Reader::open(f.dir.path + "/t.df11", &r);
    INFO(o.message);
    CHECK((o.code == Error::Df11Truncated || (len < 8 && o.code == Error::Df11BadMagic)));
    fs::remove(f.dir.path + "/t.df11");
  }
  f.check_clean({"m.safetensors"});
}

TEST_CASE("corruption: the CLI exits 1 or 3 and leaves nothing at the output path", "[corruption][cli]") {
  Fixture f;
  const Bytes& c = f.container;
  uint64_t meta_offset = 0;
  std::memcpy(&meta_offset, c.data() + 40, 8);
  // Header, first payload (code lengths), middle of the payloads, meta block, and a truncation.
  const std::vector<std::pair<uint64_t, int>> cases = {
      {3, 1}, {20, 1}, {130, 4}, {(128 + meta_offset) / 2, 2}, {meta_offset + 5, 16}, {c.size() - 1, 1}};
  for (const auto& [p, x] : cases) {
    Bytes b = c;
    b[p] ^= static_cast<uint8_t>(x);
    df11test::write_file(f.dir.path + "/c.df11", b);
    INFO("byte " << p);
    const Run v = df11_cli("verify c.df11 --device cpu", f.dir.path);
    CHECK((v.code == 1 || v.code == 3));
    const Run d = df11_cli("decompress c.df11 -o back.safetensors", f.dir.path);
    CHECK((d.code == 1 || d.code == 3));
    CHECK(std::count(d.err.begin(), d.err.end(), '\n') == 1);
    CHECK_FALSE(fs::exists(f.dir.path + "/back.safetensors"));
    f.check_clean({"m.safetensors", "c.df11"});
  }
  Bytes t(c.begin(), c.begin() + static_cast<std::ptrdiff_t>(c.size() / 2));
  df11test::write_file(f.dir.path + "/c.df11", t);
  const Run d = df11_cli("decompress c.df11 -o back.safetensors", f.dir.path);
  CHECK(d.code == 1);
  CHECK(d.err.find("Df11Truncated") != std::string::npos);
  f.check_clean({"m.safetensors", "c.df11"});
}
