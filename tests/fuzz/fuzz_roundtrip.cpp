// Fuzz target 4: lossless round trip of arbitrary BF16 weights.
//
// Input: byte 0 = flags, the rest = little-endian BF16 weights.
//   flags == 0xFF:  the weights are tiled (each copy perturbed) past 2^21
//                   elements, so that the encoder really splits the work
//                   between threads (it uses one segment below 2^20 elements
//                   per thread);
//   flags & 8 (not tiled): windows of the container writer and segments of
//                   the encoder of a few weights (flags >> 4 picks 1 ... 4099,
//                   the testing hooks), so that every input crosses many
//                   boundaries; encode_bf16 also runs with 5 threads;
//   flags & 3 == 3: also through the container: write a safetensors file
//                   (the weights plus a small F32 tensor), df11::compress it
//                   with 1 and with 2 threads (identical bytes required), open
//                   it with the Reader, decode, df11::decompress, and compare
//                   with the original file.
// Always: encode_bf16 with threads 1 and 2 (and encode_bf16_into reusing a
// buffer) gives identical sections; validate_bf16 accepts them; decode_bf16
// (1 and 2 threads) and decode_bf16_reference (up to 2^16 weights, or with
// flags & 4) return the weights exactly. Tiled inputs skip the container and
// the reused buffer to stay fast.
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "bf16_codec.h"
#include "bf16_payload_writer.h"
#include "df11.h"
#include "fuzz_targets.h"

namespace {

using namespace df11;

bool same(const EncodedBf16& a, const EncodedBf16& b) {
  return a.geom.n == b.geom.n && a.geom.total_bits == b.geom.total_bits && a.geom.n_threads == b.geom.n_threads &&
         a.lengths == b.lengths && a.block_out == b.block_out && a.gaps == b.gaps && a.stream == b.stream &&
         a.sm == b.sm;
}

std::vector<uint8_t> slurp(const std::string& path) {
  std::vector<uint8_t> out;
  FILE* f = std::fopen(path.c_str(), "rb");
  DF11_FUZZ_CHECK(f != nullptr);
  uint8_t buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.insert(out.end(), buf, buf + n);
  std::fclose(f);
  return out;
}

void spit(const std::string& path, const std::vector<uint8_t>& b) {
  FILE* f = std::fopen(path.c_str(), "wb");
  DF11_FUZZ_CHECK(f != nullptr);
  DF11_FUZZ_CHECK(b.empty() || std::fwrite(b.data(), 1, b.size(), f) == b.size());
  DF11_FUZZ_CHECK(std::fclose(f) == 0);
}

// A safetensors file: the BF16 tensor "w" and an F32 tensor "n", header padded to 8.
std::vector<uint8_t> safetensors_of(const std::vector<uint16_t>& w) {
  std::string json = "{\"w\":{\"dtype\":\"BF16\",\"shape\":[" + std::to_string(w.size()) +
                     "],\"data_offsets\":[0," + std::to_string(2 * w.size()) +
                     "]},\"n\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[" + std::to_string(2 * w.size()) +
                     "," + std::to_string(2 * w.size() + 8) + "]}}";
  while (json.size() % 8) json += ' ';
  std::vector<uint8_t> f(8 + json.size() + 2 * w.size() + 8, 0);
  const uint64_t n = json.size();
  std::memcpy(f.data(), &n, 8);
  std::memcpy(f.data() + 8, json.data(), json.size());
  if (!w.empty()) std::memcpy(f.data() + 8 + json.size(), w.data(), 2 * w.size());
  const float norm[2] = {1.0f, -0.5f};
  std::memcpy(f.data() + 8 + json.size() + 2 * w.size(), norm, 8);
  return f;
}

struct Dir {
  std::string path;
  Dir() {
    std::string t = (std::filesystem::temp_directory_path() / "df11fuzz-XXXXXX").string();
    DF11_FUZZ_CHECK(mkdtemp(t.data()) != nullptr);
    path = t;
  }
  ~Dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

void container_round_trip(const std::vector<uint16_t>& w) {
  static Dir dir;  // one per process; files are overwritten each run
  const std::string st = dir.path + "/m.safetensors", c1 = dir.path + "/m1.df11", c2 = dir.path + "/m2.df11",
                    back = dir.path + "/back.safetensors";
  const std::vector<uint8_t> orig = safetensors_of(w);
  spit(st, orig);
  Options o1;
  o1.threads = 1;
  o1.overwrite = true;
  Options o2 = o1;
  o2.threads = 2;
  o2.verify_after = true;
  Status s = compress(st, c1, o1, nullptr);
  DF11_FUZZ_CHECK(s.ok());
  s = compress(st, c2, o2, nullptr);
  DF11_FUZZ_CHECK(s.ok());
  const std::vector<uint8_t> b1 = slurp(c1);
  DF11_FUZZ_CHECK(b1 == slurp(c2));
  std::unique_ptr<Reader> r;
  DF11_FUZZ_CHECK(Reader::open(c1, &r).ok());
  DF11_FUZZ_CHECK(r->original_size() == orig.size());
  std::vector<uint8_t> restored = r->original_header();
  for (size_t i = 0; i < r->tensors().size(); ++i) {
    const size_t at = restored.size();
    restored.resize(at + r->tensors()[i].orig_size);
    DF11_FUZZ_CHECK(r->decode_tensor(i, restored.data() + at, 2).ok());
  }
  DF11_FUZZ_CHECK(restored == orig);
  VerifyReport vr;
  Options ov = o1;
  ov.device = "cpu";
  DF11_FUZZ_CHECK(verify(c1, st, ov, &vr).ok() && vr.failures.empty());
  DF11_FUZZ_CHECK(decompress(c1, back, o1, nullptr).ok());
  DF11_FUZZ_CHECK(slurp(back) == orig);
}

}  // namespace

extern "C" int df11_fuzz_roundtrip(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t flags = data[0];
  std::vector<uint16_t> w((size - 1) / 2);
  if (!w.empty()) std::memcpy(w.data(), data + 1, 2 * w.size());
  const bool tiled = flags == 0xFF && !w.empty();
  if (tiled) {
    const size_t base = w.size();
    const size_t target = (size_t{1} << 21) + flags * 97u;
    w.reserve(target);
    for (size_t k = base; k < target; ++k) w.push_back(static_cast<uint16_t>(w[k % base] ^ ((k / base) & 0x8003)));
  }
  const uint64_t n = w.size();
  // The hooks are process-wide (the corpus replay runs inside the test
  // binary): set for this input only.
  static const uint64_t kSmall[16] = {1, 2, 3, 4, 5, 7, 8, 31, 32, 33, 63, 64, 65, 97, 1000, 4099};
  uint64_t small = (flags & 8) && !tiled ? kSmall[flags >> 4] : 0;
  if (small) small = std::max<uint64_t>(small, n / 65536);  // at most 64 Ki windows: 1 KiB of histogram each
  struct Hooks {
    explicit Hooks(uint64_t elems) {
      df11::testing::set_encoder_min_segment_elems(elems);
      df11::testing::set_bf16_window_elems(elems);
    }
    ~Hooks() {
      df11::testing::set_encoder_min_segment_elems(0);
      df11::testing::set_bf16_window_elems(0);
    }
  } hooks(small);

  const EncodedBf16 e1 = encode_bf16(w.data(), n, 1);
  const EncodedBf16 e2 = encode_bf16(w.data(), n, 2);
  DF11_FUZZ_CHECK(same(e1, e2));
  if (small) DF11_FUZZ_CHECK(same(e1, encode_bf16(w.data(), n, 5)));
  // Reusing a buffer that held a different (longer) tensor changes nothing.
  static EncodedBf16 reused;
  if (!tiled) {
    encode_bf16_into(w.data(), n, 2, &reused);
    DF11_FUZZ_CHECK(same(e1, reused));
  }

  const Bf16View v = view_of(e1);
  uint64_t max_block = 0;
  DF11_FUZZ_CHECK(validate_bf16(v, &max_block) == Error::Ok);
  DF11_FUZZ_CHECK(max_block <= n);
  // Package-merge is optimal among codes limited to 12 >= 8 bits, and a flat
  // 8-bit code is one of them: never more than 8 bits per exponent.
  DF11_FUZZ_CHECK(e1.geom.total_bits <= n * 8);
  std::vector<uint16_t> d1(n), d2(n), ref(n);
  DF11_FUZZ_CHECK(decode_bf16(v, d1.data(), 1) == Error::Ok);
  DF11_FUZZ_CHECK(decode_bf16(v, d2.data(), 2) == Error::Ok);
  DF11_FUZZ_CHECK(d1 == w && d2 == w);
  if (n <= (size_t{1} << 16) || ((flags & 4) && !tiled)) {
    DF11_FUZZ_CHECK(decode_bf16_reference(v, ref.data()) == Error::Ok);
    DF11_FUZZ_CHECK(ref == w);
  }
  if ((flags & 3) == 3 && !tiled) container_round_trip(w);
  return 0;
}
