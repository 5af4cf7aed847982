// The streaming codec (issue 11): the container writer encodes BF16 tensors
// window by window (formats/bf16_payload_writer.h) and the reader decodes them
// in groups of blocks. Checked against two oracles: the whole-tensor encoder
// (encode_bf16: the sections must be the same bytes) and the slow reference
// decoder (decode_bf16_reference), on sizes around the window size and on
// codes whose windows end inside a stream word (shared edge words).
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <cstring>
#include <random>
#include <thread>

#include "bf16_payload_writer.h"
#include "df11.h"
#include "safetensors_writer.h"
#include "test_util.h"

using namespace df11;

namespace {

constexpr uint64_t W = kBf16WindowElems;

std::vector<uint16_t> make_weights(uint64_t n, int kind, uint64_t seed) {
  if (kind == 0) return df11test::gaussian_bf16(n, 0.02, seed);
  std::vector<uint16_t> w(n);
  std::mt19937_64 rng(seed);
  for (uint64_t i = 0; i < n; ++i) {
    const uint16_t sm = static_cast<uint16_t>((rng() & 0x807F));
    // kind 1: one exponent (1-bit codes: a window of odd length ends mid-word);
    // kind 2: two exponents, 3:1 (1-bit codes, a second symbol);
    // kind 3: 200 exponents (long codes, up to the 11-bit limit).
    uint32_t e = 120;
    if (kind == 2) e = (rng() % 4 == 0) ? 121 : 120;
    if (kind == 3) e = 20 + static_cast<uint32_t>(std::min<uint64_t>(199, (rng() % 1000) * (rng() % 1000) / 5000));
    w[i] = static_cast<uint16_t>(sm | (e << 7));
  }
  return w;
}

struct Packed {
  std::vector<uint8_t> bytes;
  std::string path;
};

Packed pack(const df11test::TempDir& tmp, const std::vector<uint16_t>& w, unsigned threads, const std::string& tag) {
  const std::string src = tmp.path + "/" + tag + ".safetensors", out = tmp.path + "/" + tag + ".df11";
  std::vector<uint8_t> b(w.size() * 2);
  std::memcpy(b.data(), w.data(), b.size());
  df11test::write_safetensors(src, {{"small", "BF16", {3}, {1, 2, 3, 4, 5, 6}}, {"w", "BF16", {w.size()}, b}});
  Options o;
  o.threads = threads;
  o.overwrite = true;
  REQUIRE(compress(src, out, o, nullptr).message == "");
  return {df11test::read_file(out), out};
}

// Oracle 1: the whole-tensor encoder's sections, byte for byte. Oracle 2:
// the bit-by-bit reference decoder.
void check_against_oracles(const Bf16View& v, const EncodedBf16& e, const std::vector<uint16_t>& w) {
  const uint64_t n = w.size();
  REQUIRE(v.geom.total_bits == e.geom.total_bits);
  REQUIRE(v.geom.n_threads == e.geom.n_threads);
  CHECK(v.lengths == e.lengths);
  CHECK(std::memcmp(v.block_out, e.block_out.data(), 8 * e.block_out.size()) == 0);
  CHECK(std::memcmp(v.gaps, e.gaps.data(), e.gaps.size()) == 0);
  CHECK(std::memcmp(v.stream, e.stream.data(), 4 * e.stream.size()) == 0);
  CHECK(std::memcmp(v.sm, e.sm.data(), n) == 0);
  std::vector<uint16_t> ref(n);
  REQUIRE(decode_bf16_reference(v, ref.data()) == Error::Ok);
  CHECK(ref == w);
}

}  // namespace

TEST_CASE("stream codec: windowed payloads equal the whole-tensor encoder and decode by the oracle", "[stream]") {
  df11test::TempDir tmp;
  const std::vector<uint64_t> sizes = {1, 31, W - 1, W, W + 1, 2 * W + 33, 3 * W + 12345};
  for (int kind = 0; kind < 4; ++kind) {
    for (uint64_t n : sizes) {
      INFO("kind " << kind << ", n " << n);
      const std::vector<uint16_t> w = make_weights(n, kind, 1000 * kind + n);
      const Packed one = pack(tmp, w, 1, "a");
      const Packed three = pack(tmp, w, 3, "b");
      // Any thread count, the same bytes.
      REQUIRE(one.bytes == three.bytes);
      std::unique_ptr<Reader> r;
      REQUIRE(Reader::open(one.path, &r).message == "");
      REQUIRE(r->tensors().size() == 2);
      const ReaderTensor& t = r->tensors()[1];
      if (t.encoding != 2) {
        // Too small for BF16_HUFFMAN to pay: stored otherwise, still exact.
        std::vector<uint8_t> out(2 * n);
        REQUIRE(r->decode_tensor(1, out.data(), 2).ok());
        CHECK(std::memcmp(out.data(), w.data(), 2 * n) == 0);
        continue;
      }
      // The oracles: the whole-tensor encoder and the reference decoder.
      const EncodedBf16 e = encode_bf16(w.data(), n, 1);
      check_against_oracles(t.bf16, e, w);
      // The streaming decoder, pieces placed out of order by 1..3 workers.
      for (unsigned threads : {1u, 3u}) {
        std::vector<uint8_t> out(2 * n, 0xAB);
        uint64_t ordered = 0;
        REQUIRE(r->decode_tensor_stream(
                     1, threads,
                     [&](uint64_t off, const uint8_t* p, uint64_t m) {
                       std::memcpy(out.data() + off, p, m);
                       return Status::Ok();
                     },
                     [&](const uint8_t*, uint64_t m) {
                       ordered += m;
                       return Status::Ok();
                     })
                    .ok());
        CHECK(ordered == 2 * n);
        CHECK(std::memcmp(out.data(), w.data(), 2 * n) == 0);
      }
    }
  }
}

TEST_CASE("stream codec: tiny windows and segments give the same bytes (testing hooks)", "[stream]") {
  // Windows and encoder segments far below their production sizes put a
  // boundary every few codes: inside a stream word, inside a chunk, on a
  // chunk's first code, windows shorter than one word. Each must give the
  // bytes of the unsplit encoder, and decode by the reference decoder.
  struct Hooks {
    ~Hooks() {
      df11::testing::set_bf16_window_elems(0);
      df11::testing::set_encoder_min_segment_elems(0);
    }
  } restore;
  df11test::TempDir tmp;
  for (int kind = 0; kind < 4; ++kind) {
    for (uint64_t n : {uint64_t{7000}, uint64_t{70001}}) {
      const std::vector<uint16_t> w = make_weights(n, kind, 77 * kind + n);
      df11::testing::set_encoder_min_segment_elems(0);
      const EncodedBf16 whole = encode_bf16(w.data(), n, 1);
      for (uint64_t win : {uint64_t{1}, uint64_t{2}, uint64_t{3}, uint64_t{31}, uint64_t{32}, uint64_t{33},
                           uint64_t{97}, uint64_t{1000}, uint64_t{4099}}) {
        if (n / win > 20000) continue;  // a window's histogram is 1 KiB: keep memory small
        INFO("kind " << kind << ", n " << n << ", window " << win);
        df11::testing::set_encoder_min_segment_elems(win);
        const EncodedBf16 split = encode_bf16(w.data(), n, 5);  // up to 5 segments of >= win weights
        CHECK((split.stream == whole.stream && split.gaps == whole.gaps && split.block_out == whole.block_out));
        df11::testing::set_bf16_window_elems(win);
        const Packed one = pack(tmp, w, 1, "t1");
        const Packed three = pack(tmp, w, 3, "t3");
        REQUIRE(one.bytes == three.bytes);
        std::unique_ptr<Reader> r;
        REQUIRE(Reader::open(one.path, &r).message == "");
        const ReaderTensor& t = r->tensors()[1];
        REQUIRE(t.encoding == 2);
        check_against_oracles(t.bf16, whole, w);
      }
      df11::testing::set_bf16_window_elems(0);
    }
  }
}

TEST_CASE("stream codec: a sink error stops the decode and is returned", "[stream]") {
  df11test::TempDir tmp;
  const std::vector<uint16_t> w = make_weights(3 * W, 0, 5);
  const Packed p = pack(tmp, w, 1, "s");
  std::unique_ptr<Reader> r;
  REQUIRE(Reader::open(p.path, &r).ok());
  for (unsigned threads : {1u, 2u}) {
    const Status s = r->decode_tensor_stream(
        1, threads, [](uint64_t, const uint8_t*, uint64_t) { return Status::Ok(); },
        [](const uint8_t*, uint64_t) { return Status{Error::Io, "sink: full"}; });
    CHECK(s.code == Error::Io);
    CHECK(s.message == "sink: full");
  }
}

TEST_CASE("stream codec: many workers hash the groups once each and in order", "[stream]") {
  // With 4 to 16 workers on a tensor and groups that finish out of order,
  // the ordered sink must still see every byte once, in order, a sink error
  // must stop the decode, and a damaged group must fail the XXH64. (The
  // other tests decode with 1-3 workers.)
  df11test::TempDir tmp;
  const uint64_t n = 8 * W + 12345;
  const std::vector<uint16_t> w = make_weights(n, 0, 31);
  const Packed p = pack(tmp, w, 2, "h");
  std::unique_ptr<Reader> r;
  REQUIRE(Reader::open(p.path, &r).ok());
  REQUIRE(r->tensors()[1].encoding == 2u);
  const uint8_t* const want = reinterpret_cast<const uint8_t*>(w.data());
  for (unsigned threads : {4u, 7u, 16u}) {
    INFO("threads " << threads);
    REQUIRE(r->decode_workers(1, threads) >= 4);
    std::vector<uint8_t> out(2 * n, 0xAB);
    uint64_t at = 0, pieces = 0;
    bool in_order = true;
    std::mt19937_64 jitter(threads);
    std::mutex jmu;
    REQUIRE(r->decode_tensor_stream(
                 1, threads,
                 [&](uint64_t off, const uint8_t* q, uint64_t m) {
                   std::memcpy(out.data() + off, q, m);
                   unsigned us;
                   {
                     std::lock_guard<std::mutex> lock(jmu);
                     us = static_cast<unsigned>(jitter() % 300);
                   }
                   std::this_thread::sleep_for(std::chrono::microseconds(us));  // groups finish out of order
                   return Status::Ok();
                 },
                 [&](const uint8_t* q, uint64_t m) {
                   in_order = in_order && at + m <= 2 * n && std::memcmp(q, want + at, m) == 0;
                   at += m;
                   ++pieces;
                   return Status::Ok();
                 })
                .ok());
    CHECK(in_order);
    CHECK(at == 2 * n);
    CHECK(pieces >= 4);
    CHECK(std::memcmp(out.data(), want, 2 * n) == 0);
    // The third piece's sink error is the decode's.
    uint64_t seen = 0;
    const Status s = r->decode_tensor_stream(
        1, threads, [](uint64_t, const uint8_t*, uint64_t) { return Status::Ok(); },
        [&](const uint8_t*, uint64_t) { return ++seen == 3 ? Status{Error::Io, "sink: full"} : Status::Ok(); });
    CHECK(s.code == Error::Io);
    CHECK(seen == 3);
  }
  // A flipped sign/mantissa byte in the last group (the payload's last bytes;
  // the payload of a file's only tensor starts at byte 128) fails the XXH64,
  // decoded in place and through the copy (an odd address).
  const std::string one = tmp.path + "/one.safetensors", one_df11 = tmp.path + "/one.df11";
  std::vector<uint8_t> wb(2 * n);
  std::memcpy(wb.data(), w.data(), wb.size());
  df11test::write_safetensors(one, {{"w", "BF16", {n}, wb}});
  Options o;
  o.threads = 2;
  REQUIRE(compress(one, one_df11, o, nullptr).message == "");
  std::unique_ptr<Reader> r1;
  REQUIRE(Reader::open(one_df11, &r1).ok());
  REQUIRE(r1->tensors()[0].encoding == 2u);
  auto bytes = df11test::read_file(one_df11);
  bytes[128 + r1->tensors()[0].payload_size - 100] ^= 0x01;
  df11test::write_file(one_df11, bytes);
  REQUIRE(Reader::open(one_df11, &r1).ok());
  std::vector<uint8_t> buf(wb.size() + 1);
  for (unsigned threads : {4u, 16u}) {
    for (size_t shift : {0u, 1u}) {
      INFO("threads " << threads << ", shift " << shift);
      CHECK(r1->decode_tensor(0, buf.data() + shift, threads).code == Error::Df11TensorChecksum);
    }
  }
}

TEST_CASE("stream codec: large ZSTD and RAW tensors are streamed and restored exactly", "[stream][zstd]") {
  df11test::TempDir tmp;
  std::mt19937_64 rng(11);
  // F32 of 2.5 windows plus a partial plane group (zstd pays on its sign and
  // exponent planes), and random U8 bytes (zstd cannot pay: stored RAW).
  const uint64_t nf = 2 * (uint64_t{1} << 20) + (uint64_t{1} << 19) + 777;
  std::vector<uint8_t> f32(4 * nf);
  for (uint64_t i = 0; i < nf; ++i) {
    const float x = static_cast<float>(static_cast<int64_t>(rng() % 2001) - 1000) * 1e-3f;
    std::memcpy(&f32[4 * i], &x, 4);
  }
  std::vector<uint8_t> u8(3 * (uint64_t{1} << 20) + 5);
  for (auto& b : u8) b = static_cast<uint8_t>(rng());
  const std::string src = tmp.path + "/m.safetensors";
  df11test::write_safetensors(src, {{"f", "F32", {nf}, f32}, {"u", "U8", {u8.size()}, u8}});
  std::vector<uint8_t> packed[2];
  for (unsigned threads : {1u, 2u}) {
    Options o;
    o.threads = threads;
    o.overwrite = true;
    const std::string out = tmp.path + "/m" + std::to_string(threads) + ".df11";
    REQUIRE(compress(src, out, o, nullptr).message == "");
    packed[threads - 1] = df11test::read_file(out);
    std::unique_ptr<Reader> r;
    REQUIRE(Reader::open(out, &r).message == "");
    CHECK(r->tensors()[0].encoding == 1);  // ZSTD
    CHECK(r->tensors()[1].encoding == 0);  // RAW
    const std::string back = tmp.path + "/back.safetensors";
    REQUIRE(decompress(out, back, o, nullptr).message == "");
    CHECK(df11test::read_file(back) == df11test::read_file(src));
    VerifyReport vr;
    o.device = "cpu";
    REQUIRE(verify(out, src, o, &vr).message == "");
  }
  CHECK(packed[0] == packed[1]);
}

TEST_CASE("stream codec: threads sharing one Reader each decode their tensors exactly", "[stream]") {
  // The C API lets threads share a df11_file for df11_decode_host: every
  // decode must use buffers of its own (a shared scratch corrupted outputs).
  df11test::TempDir tmp;
  std::mt19937_64 rng(5);
  const uint64_t nb = 2 * W + 1234;
  const std::vector<uint16_t> bf = make_weights(nb, 0, 9);
  std::vector<uint8_t> bf_bytes(2 * nb);
  std::memcpy(bf_bytes.data(), bf.data(), bf_bytes.size());
  std::vector<uint8_t> f32(4 * (W + 99));
  for (size_t i = 0; i < f32.size(); i += 4) {
    const float x = static_cast<float>(static_cast<int64_t>(rng() % 2001) - 1000) * 1e-3f;
    std::memcpy(&f32[i], &x, 4);
  }
  std::vector<uint8_t> u8(W + 7);
  for (auto& b : u8) b = static_cast<uint8_t>(rng());
  const std::string src = tmp.path + "/m.safetensors", out = tmp.path + "/m.df11";
  df11test::write_safetensors(src, {{"bf", "BF16", {nb}, bf_bytes}, {"f", "F32", {W + 99}, f32}, {"u", "U8", {u8.size()}, u8}});
  REQUIRE(compress(src, out, Options{}, nullptr).message == "");
  std::unique_ptr<Reader> r;
  REQUIRE(Reader::open(out, &r).message == "");
  REQUIRE(r->tensors().size() == 3);
  const std::vector<uint8_t>* want[3] = {&bf_bytes, &f32, &u8};
  CHECK(r->tensors()[0].encoding == 2);  // BF16_HUFFMAN
  CHECK(r->tensors()[1].encoding == 1);  // ZSTD
  CHECK(r->tensors()[2].encoding == 0);  // RAW
  std::atomic<int> bad{0};
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < 6; ++t) {
    pool.emplace_back([&, t] {
      for (int round = 0; round < 4; ++round) {
        const size_t i = (t + round) % 3;
        std::vector<uint8_t> got(want[i]->size());
        if (!r->decode_tensor(i, got.data(), 1 + t % 2).ok() || got != *want[i]) ++bad;
      }
    });
  }
  for (auto& th : pool) th.join();
  CHECK(bad == 0);
}

TEST_CASE("stream codec: decode_tensor decodes in place, at any alignment, and still checks the XXH64", "[stream]") {
  df11test::TempDir tmp;
  const uint64_t n = 2 * W + 777;
  const std::vector<uint16_t> w = make_weights(n, 0, 7);
  std::vector<uint8_t> wb(2 * n);
  std::memcpy(wb.data(), w.data(), wb.size());
  // Random bytes (RAW: incompressible), one BF16_HUFFMAN tensor, and an F32
  // tensor of few distinct values (ZSTD).
  std::vector<uint8_t> noise(3 * 1000 * 1000 + 5), f32(4 * 300000);
  std::mt19937_64 rng(3);
  for (auto& b : noise) b = static_cast<uint8_t>(rng());
  for (size_t i = 0; i < f32.size(); i += 4) f32[i + 3] = static_cast<uint8_t>(0x3f + (i / 4) % 3);
  const std::string src = tmp.path + "/m.safetensors", out = tmp.path + "/m.df11";
  df11test::write_safetensors(src, {{"noise", "U8", {noise.size()}, noise}, {"w", "BF16", {n}, wb}, {"f", "F32", {300000}, f32}});
  Options o;
  o.threads = 2;
  REQUIRE(compress(src, out, o, nullptr).message == "");
  std::unique_ptr<Reader> r;
  REQUIRE(Reader::open(out, &r).message == "");
  const std::vector<std::vector<uint8_t>*> want = {&noise, &wb, &f32};
  std::vector<uint32_t> encodings;
  for (size_t i = 0; i < 3; ++i) {
    encodings.push_back(r->tensors()[i].encoding);
    for (unsigned threads : {1u, 3u}) {
      for (size_t shift : {0u, 1u}) {  // an odd address: BF16 goes through the copy
        INFO("tensor " << i << ", threads " << threads << ", shift " << shift);
        std::vector<uint8_t> buf(want[i]->size() + 1, 0xCD);
        REQUIRE(r->decode_tensor(i, buf.data() + shift, threads).ok());
        CHECK(std::memcmp(buf.data() + shift, want[i]->data(), want[i]->size()) == 0);
      }
    }
  }
  CHECK(encodings == std::vector<uint32_t>{0, 2, 1});  // RAW, BF16_HUFFMAN, ZSTD: every path
  // A flipped sign/mantissa byte (the payload's last bytes; the payload of a
  // file's only tensor starts at byte 128) decodes in place and is caught.
  const std::string one = tmp.path + "/one.safetensors", one_df11 = tmp.path + "/one.df11";
  df11test::write_safetensors(one, {{"w", "BF16", {n}, wb}});
  REQUIRE(compress(one, one_df11, o, nullptr).message == "");
  std::unique_ptr<Reader> r1;
  REQUIRE(Reader::open(one_df11, &r1).message == "");
  REQUIRE(r1->tensors()[0].encoding == 2u);
  auto bytes = df11test::read_file(one_df11);
  bytes[128 + r1->tensors()[0].payload_size - 100] ^= 0x01;
  df11test::write_file(one_df11, bytes);
  REQUIRE(Reader::open(one_df11, &r1).message == "");
  std::vector<uint8_t> buf(wb.size());
  for (unsigned threads : {1u, 3u}) CHECK(r1->decode_tensor(0, buf.data(), threads).code == Error::Df11TensorChecksum);
}

TEST_CASE("stream codec: decode_workers says how many threads call the sink", "[stream]") {
  // decompress writes a tensor through its writer thread when one thread
  // decodes it (Reader::decode_workers == 1): the count must be the reader's
  // own, and `place` must then come from one thread, in order.
  df11test::TempDir tmp;
  std::mt19937_64 rng(3);
  const uint64_t nl = 3 * W + 99, ns = 4096;
  const std::vector<uint16_t> big = make_weights(nl, 0, 21), small = make_weights(ns, 0, 22);
  std::vector<uint8_t> big_b(2 * nl), small_b(2 * ns), f32(4 * 50000), u8(70000);
  std::memcpy(big_b.data(), big.data(), big_b.size());
  std::memcpy(small_b.data(), small.data(), small_b.size());
  for (size_t i = 0; i < f32.size(); i += 4) {
    const float x = static_cast<float>(static_cast<int64_t>(rng() % 2001) - 1000) * 1e-3f;
    std::memcpy(&f32[i], &x, 4);
  }
  for (auto& b : u8) b = static_cast<uint8_t>(rng());
  const std::string src = tmp.path + "/m.safetensors", out = tmp.path + "/m.df11";
  df11test::write_safetensors(src, {{"big", "BF16", {nl}, big_b},
                                    {"f", "F32", {50000}, f32},
                                    {"small", "BF16", {ns}, small_b},
                                    {"u", "U8", {u8.size()}, u8}});
  REQUIRE(compress(src, out, Options{}, nullptr).message == "");
  std::unique_ptr<Reader> r;
  REQUIRE(Reader::open(out, &r).message == "");
  const auto& ts = r->tensors();
  REQUIRE(ts.size() == 4);
  size_t big_i = 0;
  for (size_t i = 0; i < ts.size(); ++i) {
    if (ts[i].name == "big") {
      big_i = i;
      CHECK(ts[i].encoding == 2);
      CHECK(r->decode_workers(i, 0) == 1);  // 0 counts as 1
      CHECK(r->decode_workers(i, 1) == 1);
      CHECK(r->decode_workers(i, 3) == 3);
      const unsigned all = r->decode_workers(i, 1000);  // one per group of blocks
      CHECK(all > 3);
      CHECK(all < 1000);
    } else {
      INFO(ts[i].name);
      CHECK(r->decode_workers(i, 8) == 1);  // RAW, ZSTD and a one-group BF16 tensor
    }
  }
  CHECK(ts[big_i].encoding == 2);
  for (size_t i = 0; i < ts.size(); ++i)
    for (unsigned threads : {1u, 4u}) {
      INFO(ts[i].name << " at " << threads << " threads");
      std::mutex mu;
      std::set<std::thread::id> callers;
      std::vector<std::pair<uint64_t, uint64_t>> pieces;
      std::vector<uint8_t> got(ts[i].orig_size);
      REQUIRE(r->decode_tensor_stream(i, threads, [&](uint64_t off, const uint8_t* p, uint64_t n) {
                 std::lock_guard<std::mutex> lock(mu);
                 callers.insert(std::this_thread::get_id());
                 pieces.emplace_back(off, n);
                 std::memcpy(got.data() + off, p, n);
                 return Status::Ok();
               }).ok());
      const unsigned workers = r->decode_workers(i, threads);
      CHECK(callers.size() <= workers);
      if (workers == 1) {
        uint64_t at = 0;
        for (const auto& [off, n] : pieces) {
          CHECK(off == at);
          at = off + n;
        }
        CHECK(at == ts[i].orig_size);
      }
      const std::vector<uint8_t>& want = ts[i].name == "big" ? big_b : ts[i].name == "small" ? small_b
                                         : ts[i].name == "f" ? f32 : u8;
      CHECK(got == want);
    }
}

TEST_CASE("stream codec: at -T1 the reader thread's slots are handed back only when used (testing hooks)", "[stream]") {
  // One worker: a reader thread reads each window ahead, hashes it (pass 1)
  // and splits it into planes (pass 2). With the coder pausing on every
  // window, a slot released before the histogram, the encode or the write
  // of its sign-mantissa bytes would be refilled with the window after next
  // under it: the container would differ from the -T3 one (each worker reads
  // its own windows there) or fail its checksum.
  struct Hooks {
    ~Hooks() {
      df11::testing::set_bf16_window_elems(0);
      df11::testing::set_bf16_coder_delay_us(0);
    }
  } restore;
  df11test::TempDir tmp;
  const uint64_t n = 40 * 4096 + 123;
  const std::vector<uint16_t> w = make_weights(n, 0, 31);
  df11::testing::set_bf16_window_elems(4096);
  const Packed three = pack(tmp, w, 3, "t3");
  df11::testing::set_bf16_coder_delay_us(300);
  const Packed one = pack(tmp, w, 1, "t1");
  CHECK(one.bytes == three.bytes);
  std::unique_ptr<Reader> r;
  REQUIRE(Reader::open(one.path, &r).message == "");
  std::vector<uint8_t> got(2 * n);
  REQUIRE(r->decode_tensor(1, got.data(), 1).message == "");
  CHECK(std::memcmp(got.data(), w.data(), got.size()) == 0);
}
