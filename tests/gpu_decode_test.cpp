// GPU decoder (cuda/df11_cuda.h) against the CPU decoder. Without a CUDA
// device every test warns and passes. [slow]: a tensor over 2^31 weights.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <thread>
#include <vector>

#include "bf16_codec.h"
#include "df11_cuda.h"
#include "internal.h"
#include "synthetic.h"
#include "test_util.h"

using namespace df11;

namespace {

bool have_gpu() {
  if (cuda::device_count() == 0) {
    WARN("no CUDA GPU: skipping");
    return false;
  }
  return true;
}

unsigned cores() { return std::max(1u, std::thread::hardware_concurrency()); }

constexpr size_t kGuard = 256;
constexpr uint8_t kGuardByte = 0x5A;

using Tamper = std::function<void(std::vector<cuda::DeviceTensor>&)>;

// A Tamper that overwrites tensor i's uploaded stream words with bad's (which
// upload() would have refused), so that the kernel sees a corrupted stream.
Tamper overwrite_stream(size_t i, const EncodedBf16& bad) {
  return [i, &bad](std::vector<cuda::DeviceTensor>& dt) {
    REQUIRE(cuda::copy_to_device(const_cast<uint32_t*>(dt[i].stream_dev), bad.stream.data(), bad.stream.size() * 4) ==
            Error::Ok);
    REQUIRE(cuda::synchronize() == Error::Ok);
  };
}

struct BatchResult {
  Error status = Error::Ok;
  size_t failed = SIZE_MAX;
  std::vector<std::vector<uint16_t>> out;
};

// Uploads `views`, decodes them in ONE launch into outputs inside one device
// buffer laid out as [guard | out0 | guard | out1 | guard ...], every output
// poisoned with `poison` first. `misalign` (even) shifts every output off its
// 16-byte alignment. Checks that every guard byte survived.
BatchResult gpu_decode(const std::vector<Bf16View>& views, uint8_t poison, size_t misalign = 0,
                       const Tamper& tamper = nullptr) {
  BatchResult r;
  std::vector<cuda::DeviceTensor> dt(views.size());
  for (size_t i = 0; i < views.size(); ++i) REQUIRE(cuda::upload(views[i], &dt[i]) == Error::Ok);
  std::vector<size_t> off(views.size());
  size_t total = kGuard;
  for (size_t i = 0; i < views.size(); ++i) {
    off[i] = total + misalign;
    total = align_up(off[i] + 2 * views[i].geom.n, 16) + kGuard;
  }
  cuda::DeviceBuffer buf;
  REQUIRE(buf.allocate(total) == Error::Ok);
  REQUIRE(cuda::fill_device(buf.data(), kGuardByte, total) == Error::Ok);
  std::vector<uint16_t*> outs;
  std::vector<const cuda::DeviceTensor*> tp;
  for (size_t i = 0; i < views.size(); ++i) {
    REQUIRE(cuda::fill_device(buf.as<uint8_t>() + off[i], poison, 2 * views[i].geom.n) == Error::Ok);
    outs.push_back(reinterpret_cast<uint16_t*>(buf.as<uint8_t>() + off[i]));
    tp.push_back(&dt[i]);
  }
  REQUIRE(cuda::synchronize() == Error::Ok);
  if (tamper) tamper(dt);
  cuda::Workspace ws;
  REQUIRE(cuda::prepare(tp.data(), outs.data(), tp.size(), &ws) == Error::Ok);
  REQUIRE(cuda::launch(ws) == Error::Ok);
  r.status = cuda::read_status(ws, nullptr, &r.failed);
  std::vector<uint8_t> host(total);
  REQUIRE(cuda::copy_to_host(host.data(), buf.data(), total) == Error::Ok);
  REQUIRE(cuda::synchronize() == Error::Ok);
  // Guards: everything outside [off[i], off[i] + 2n) keeps its byte.
  size_t pos = 0;
  for (size_t i = 0; i <= views.size(); ++i) {
    const size_t end = i < views.size() ? off[i] : total;
    for (size_t j = pos; j < end; ++j)
      if (host[j] != kGuardByte) FAIL("guard byte overwritten at offset " << j << " (before output " << i << ")");
    if (i < views.size()) {
      r.out.emplace_back(views[i].geom.n);
      std::memcpy(r.out.back().data(), host.data() + off[i], 2 * views[i].geom.n);
      pos = off[i] + 2 * views[i].geom.n;
    }
  }
  return r;
}

// GPU == CPU decoder == original, twice with different poison values (so that
// every element is proven written), aligned and misaligned outputs.
void check_equal(const std::vector<std::vector<uint16_t>>& ws, bool misaligned_too = true) {
  std::vector<EncodedBf16> enc;
  std::vector<Bf16View> views;
  for (const auto& w : ws) enc.push_back(encode_bf16(w.data(), w.size(), cores()));
  for (const auto& e : enc) views.push_back(view_of(e));
  for (size_t i = 0; i < ws.size(); ++i) {
    std::vector<uint16_t> cpu(ws[i].size());
    REQUIRE(decode_bf16(views[i], cpu.data(), cores()) == Error::Ok);
    REQUIRE(cpu == ws[i]);
  }
  for (size_t misalign : {size_t{0}, size_t{6}}) {
    if (misalign && !misaligned_too) continue;
    for (uint8_t poison : {uint8_t{0xFF}, uint8_t{0x00}}) {
      INFO("misalign " << misalign << " poison " << int(poison));
      const BatchResult r = gpu_decode(views, poison, misalign, nullptr);
      REQUIRE(r.status == Error::Ok);
      for (size_t i = 0; i < ws.size(); ++i) {
        INFO("tensor " << i << " n " << ws[i].size());
        REQUIRE(r.out[i] == ws[i]);
      }
    }
  }
}

uint64_t first_block_count(const std::vector<uint16_t>& w) {
  const EncodedBf16 e = encode_bf16(w.data(), w.size());
  return e.block_out.size() > 1 ? e.block_out[1] : 0;
}

std::vector<uint16_t> one_symbol(uint64_t n, unsigned seed) {
  std::vector<uint16_t> w(n);
  std::mt19937 rng(seed);
  for (auto& x : w) x = static_cast<uint16_t>((0x3F << 7) | (rng() & 0x807F));
  return w;
}

}  // namespace

TEST_CASE("gpu: device query", "[gpu]") {
  if (!have_gpu()) return;
  REQUIRE(cuda::set_device(0) == Error::Ok);
  REQUIRE_FALSE(cuda::device_name(0).empty());
  REQUIRE(cuda::set_device(cuda::device_count()) != Error::Ok);
  REQUIRE(std::strlen(cuda::last_cuda_error()) > 0);
}

TEST_CASE("gpu: gaussian weights equal the CPU decoder", "[gpu][race]") {
  if (!have_gpu()) return;
  check_equal({df11test::gaussian_bf16(300000, 0.02, 1)});
}

TEST_CASE("gpu: sizes around chunk and block boundaries", "[gpu][race]") {
  if (!have_gpu()) return;
  const auto big = df11test::gaussian_bf16(200000, 0.02, 99);
  const uint64_t nb = first_block_count(big);  // ~24k
  REQUIRE(nb > 10000);
  std::vector<std::vector<uint16_t>> ws;
  for (uint64_t n : {uint64_t{0}, uint64_t{1}, uint64_t{2}, uint64_t{3}, uint64_t{15}, uint64_t{16}, uint64_t{17},
                     uint64_t{379}, uint64_t{380}, uint64_t{381}, uint64_t{1023}, uint64_t{1024}, uint64_t{1025},
                     nb - 1, nb, nb + 1, 2 * nb + 7, uint64_t{65537}})
    ws.emplace_back(big.begin(), big.begin() + static_cast<ptrdiff_t>(n));
  // One launch for all of them, and each alone.
  check_equal(ws);
  for (const auto& w : ws) check_equal({w}, false);
}

TEST_CASE("gpu: random sizes and spreads", "[gpu]") {
  if (!have_gpu()) return;
  std::mt19937_64 rng(2026);
  for (int trial = 0; trial < 24; ++trial) {
    const uint64_t n = rng() % 400000;
    const double sd = std::pow(10.0, -4.0 + 5.0 * (rng() % 1000) / 1000.0);
    INFO("n " << n << " stddev " << sd);
    check_equal({df11test::gaussian_bf16(n, sd, rng())}, trial % 4 == 0);
  }
}

TEST_CASE("gpu: one-symbol tensors (65536 weights per block)", "[gpu][race]") {
  if (!have_gpu()) return;
  std::vector<std::vector<uint16_t>> ws;
  for (uint64_t n : {1ull, 1023ull, 1024ull, 1025ull, 65535ull, 65536ull, 65537ull, 200000ull})
    ws.push_back(one_symbol(n, static_cast<unsigned>(n)));
  check_equal(ws);
  for (const auto& w : ws) check_equal({w}, false);
}

TEST_CASE("gpu: all 65536 bf16 patterns and special values", "[gpu][race]") {
  if (!have_gpu()) return;
  std::vector<uint16_t> w;
  for (uint32_t v = 0; v < 65536; ++v) w.push_back(static_cast<uint16_t>(v));  // NaNs, infs, subnormals, +-0
  for (uint16_t s : {0x0000, 0x8000, 0x0001, 0x8001, 0x007F, 0x7F80, 0xFF80, 0x7FC0, 0xFFC1, 0x7F81, 0x7FFF, 0xFFFF})
    for (int k = 0; k < 100; ++k) w.push_back(s);
  std::vector<uint16_t> shuffled = w;
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(3));
  check_equal({w, shuffled});
}

TEST_CASE("gpu: synthetic transformer matrix", "[gpu]") {
  if (!have_gpu()) return;
  std::vector<uint16_t> w(1024 * 4096);
  synthetic_weights(w.data(), 1024, 4096, 5, 0.02, cores());
  check_equal({w});
}

TEST_CASE("gpu: mixed batch in one launch", "[gpu][race]") {
  if (!have_gpu()) return;
  std::vector<std::vector<uint16_t>> ws;
  ws.push_back(df11test::gaussian_bf16(100000, 0.02, 1));
  ws.push_back({});
  ws.push_back(one_symbol(70000, 4));
  ws.push_back(df11test::gaussian_bf16(1, 0.02, 2));
  ws.push_back(df11test::gaussian_bf16(24321, 1.0, 3));
  ws.push_back({});
  ws.push_back(df11test::gaussian_bf16(5000, 1e-4, 4));
  check_equal(ws);
}

TEST_CASE("gpu: batch of 1500 small tensors (block search over many tensors)", "[gpu]") {
  if (!have_gpu()) return;
  std::mt19937_64 rng(77);
  std::vector<std::vector<uint16_t>> ws;
  for (int i = 0; i < 1500; ++i) {
    const uint64_t n = (i % 50 == 0) ? 30000 + rng() % 40000 : rng() % 700;
    ws.push_back(df11test::gaussian_bf16(n, 0.02, rng()));
  }
  check_equal(ws, false);
}

TEST_CASE("gpu: decode() reuses its plan, decode_one and decode_to_host", "[gpu]") {
  if (!have_gpu()) return;
  const auto w1 = df11test::gaussian_bf16(123457, 0.02, 8);
  const auto w2 = df11test::gaussian_bf16(54321, 0.5, 9);
  const EncodedBf16 e1 = encode_bf16(w1.data(), w1.size()), e2 = encode_bf16(w2.data(), w2.size());
  cuda::DeviceTensor t1, t2;
  REQUIRE(cuda::upload(view_of(e1), &t1) == Error::Ok);
  REQUIRE(cuda::upload(view_of(e2), &t2) == Error::Ok);
  cuda::DeviceBuffer o1, o2, o3;
  REQUIRE(o1.allocate(w1.size() * 2) == Error::Ok);
  REQUIRE(o2.allocate(w2.size() * 2) == Error::Ok);
  REQUIRE(o3.allocate(w2.size() * 2) == Error::Ok);
  cuda::Workspace ws;
  const cuda::DeviceTensor* tp[2] = {&t1, &t2};
  uint16_t* op[2] = {o1.as<uint16_t>(), o2.as<uint16_t>()};
  std::vector<uint16_t> g1(w1.size()), g2(w2.size());
  for (int rep = 0; rep < 3; ++rep) {
    REQUIRE(cuda::fill_device(o1.data(), rep * 40, o1.size()) == Error::Ok);
    REQUIRE(cuda::fill_device(o2.data(), rep * 40, o2.size()) == Error::Ok);
    REQUIRE(cuda::decode(tp, op, 2, ws) == Error::Ok);
    REQUIRE(cuda::read_status(ws) == Error::Ok);
    REQUIRE(cuda::copy_to_host(g1.data(), o1.data(), o1.size()) == Error::Ok);
    REQUIRE(cuda::copy_to_host(g2.data(), o2.data(), o2.size()) == Error::Ok);
    REQUIRE(cuda::synchronize() == Error::Ok);
    REQUIRE(g1 == w1);
    REQUIRE(g2 == w2);
  }
  // Different outputs: re-planned.
  op[1] = o3.as<uint16_t>();
  REQUIRE(cuda::decode(tp, op, 2, ws) == Error::Ok);
  REQUIRE(cuda::read_status(ws) == Error::Ok);
  REQUIRE(cuda::copy_to_host(g2.data(), o3.data(), o3.size()) == Error::Ok);
  REQUIRE(cuda::synchronize() == Error::Ok);
  REQUIRE(g2 == w2);
  // Single-tensor helpers.
  REQUIRE(cuda::fill_device(o1.data(), 0, o1.size()) == Error::Ok);
  REQUIRE(cuda::decode_one(t1, o1.as<uint16_t>()) == Error::Ok);
  REQUIRE(cuda::copy_to_host(g1.data(), o1.data(), o1.size()) == Error::Ok);
  REQUIRE(cuda::synchronize() == Error::Ok);
  REQUIRE(g1 == w1);
  std::vector<uint16_t> h(w2.size(), 0);
  REQUIRE(cuda::decode_to_host(view_of(e2), h.data()) == Error::Ok);
  REQUIRE(h == w2);
}

// The kernel's shared-memory limit is one per device, and prepare() raises it
// to the plan's need. With an unlocked read, compare and set, a thread with a
// smaller need could write its value after a thread with a larger need had
// written its own, and the larger plan's launch then failed with
// cudaErrorInvalidValue (found by the C API audit; fixed by the lock in
// raise_kernel_smem_limit). Each round lowers the limit first (test hook),
// then 8 threads released at once prepare plans of two needs.
TEST_CASE("gpu: plans prepared on several threads at once all launch (shared-memory limit)", "[gpu]") {
  // Two needs of shared memory: blocks of ~24k weights and of 65536.
  const std::vector<uint16_t> small_w = df11test::gaussian_bf16(200000, 0.02, 21);
  const std::vector<uint16_t> large_w = one_symbol(uint64_t{1} << 18, 22);
  const EncodedBf16 es = encode_bf16(small_w.data(), small_w.size());
  const EncodedBf16 el = encode_bf16(large_w.data(), large_w.size());
  REQUIRE(es.block_out[1] < 32768);
  REQUIRE(el.block_out[1] == 65536);
  if (!have_gpu()) return;
  cuda::DeviceTensor ts, tl;
  REQUIRE(cuda::upload(view_of(es), &ts) == Error::Ok);
  REQUIRE(cuda::upload(view_of(el), &tl) == Error::Ok);
  constexpr int kThreads = 8;
  constexpr int kRounds = 300;
  const cuda::DeviceTensor* tensor[kThreads];
  const std::vector<uint16_t>* want[kThreads];
  cuda::DeviceBuffer out[kThreads];
  for (int i = 0; i < kThreads; ++i) {
    tensor[i] = i % 2 ? &tl : &ts;
    want[i] = i % 2 ? &large_w : &small_w;
    REQUIRE(out[i].allocate(want[i]->size() * 2) == Error::Ok);
  }
  for (int round = 0; round < kRounds; ++round) {
    INFO("round " << round);
    REQUIRE(cuda::testing::set_kernel_smem_limit(0) == Error::Ok);
    std::vector<cuda::Workspace> ws(kThreads);
    Error prepared[kThreads];
    std::atomic<int> waiting{kThreads};
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i)
      threads.emplace_back([&, i] {
        uint16_t* o = out[i].as<uint16_t>();
        waiting.fetch_sub(1);
        while (waiting.load() > 0) {
        }
        prepared[i] = cuda::prepare(&tensor[i], &o, 1, &ws[i]);
      });
    for (auto& t : threads) t.join();
    for (int i = 0; i < kThreads; ++i) {
      INFO("thread " << i << (i % 2 ? " (65536 weights per block)" : " (small blocks)"));
      REQUIRE(prepared[i] == Error::Ok);
      REQUIRE(cuda::fill_device(out[i].data(), round & 0xFF, out[i].size()) == Error::Ok);
      const Error launched = cuda::launch(ws[i]);
      if (launched != Error::Ok) FAIL("launch: " << cuda::last_cuda_error());
      REQUIRE(cuda::read_status(ws[i]) == Error::Ok);
    }
  }
  for (int i = 0; i < kThreads; ++i) {
    std::vector<uint16_t> got(want[i]->size());
    REQUIRE(cuda::copy_to_host(got.data(), out[i].data(), out[i].size()) == Error::Ok);
    REQUIRE(cuda::synchronize() == Error::Ok);
    REQUIRE((got == *want[i]));
  }
}

TEST_CASE("gpu: upload refuses what validate_bf16 refuses", "[gpu]") {
  if (!have_gpu()) return;
  const auto w = df11test::gaussian_bf16(100000, 0.02, 12);
  const EncodedBf16 enc = encode_bf16(w.data(), w.size());
  cuda::DeviceTensor t;
  {
    EncodedBf16 bad = enc;
    bad.gaps[1] = static_cast<uint8_t>((bad.gaps[1] & 0xF0) | kMaxCodeLength);  // gap of chunk 2 >= L
    REQUIRE(cuda::upload(view_of(bad), &t) == Error::Df11BadGaps);
  }
  {
    EncodedBf16 bad = enc;
    bad.block_out[1] = bad.block_out[2] + 1;  // not monotone
    REQUIRE(cuda::upload(view_of(bad), &t) == Error::Df11BadBlockOffsets);
  }
  {
    EncodedBf16 bad = enc;
    bad.stream.back() = 1;  // nonzero padding
    REQUIRE(cuda::upload(view_of(bad), &t) == Error::Df11NonzeroPadding);
  }
  {
    EncodedBf16 bad = enc;
    bad.lengths[bad.lengths[0] ? 0 : 1] ^= 3;
    REQUIRE(cuda::upload(view_of(bad), &t) != Error::Ok);
  }
}

TEST_CASE("gpu: stream corrupted after validation: same verdict as the CPU, no stray writes", "[gpu]") {
  if (!have_gpu()) return;
  const auto w0 = df11test::gaussian_bf16(20000, 0.02, 21);
  const auto w = df11test::gaussian_bf16(150000, 0.02, 22);
  const auto w2 = one_symbol(3000, 5);
  const EncodedBf16 e0 = encode_bf16(w0.data(), w0.size()), enc = encode_bf16(w.data(), w.size()),
                    e2 = encode_bf16(w2.data(), w2.size());
  std::mt19937_64 rng(5);
  int errors = 0;
  for (int trial = 0; trial < 60; ++trial) {
    EncodedBf16 bad = enc;
    const int flips = 1 + trial % 3;
    for (int f = 0; f < flips; ++f) {
      const uint64_t bit = rng() % bad.geom.total_bits;
      bad.stream[bit / 32] ^= 1u << (31 - bit % 32);
    }
    // What the CPU decoder says about the corrupted tensor.
    std::vector<uint16_t> cpu(w.size());
    REQUIRE(validate_bf16(view_of(bad)) == Error::Ok);
    const Error cpu_err = decode_bf16(view_of(bad), cpu.data());
    if (cpu_err != Error::Ok) ++errors;
    // The GPU gets the intact tensor (validated at upload), then the corrupted words.
    {
      const BatchResult r = gpu_decode({view_of(e0), view_of(enc), view_of(e2)}, 0xFF, 0, overwrite_stream(1, bad));
      INFO("trial " << trial);
      REQUIRE(r.status == cpu_err);
      if (cpu_err == Error::Ok) {
        REQUIRE(r.out[1] == cpu);
      } else {
        REQUIRE(r.failed == 1);
      }
      REQUIRE(r.out[0] == w0);  // neighbours in the same launch are unaffected
      REQUIRE(r.out[2] == w2);
    }
  }
  REQUIRE(errors > 20);
}

TEST_CASE("gpu: gaps and block offsets corrupted after validation", "[gpu]") {
  if (!have_gpu()) return;
  const auto w = df11test::gaussian_bf16(180000, 0.02, 31);
  const EncodedBf16 enc = encode_bf16(w.data(), w.size());
  std::mt19937_64 rng(6);
  for (int trial = 0; trial < 40; ++trial) {
    EncodedBf16 bad = enc;
    const uint64_t t = 1 + rng() % (bad.geom.n_threads - 1);
    const uint32_t old = gap_at(bad.gaps.data(), t);
    const uint32_t g = (old + 1 + rng() % 15) & 15;  // any other nibble, 12..15 included
    bad.gaps[t >> 1] = static_cast<uint8_t>((bad.gaps[t >> 1] & ~(0xF << ((t & 1) * 4))) | (g << ((t & 1) * 4)));
    if (trial % 4 == 3) bad.block_out[1 + rng() % (bad.geom.n_blocks() - 1)] += 1 + rng() % 3;
    const BatchResult r = gpu_decode({view_of(enc)}, 0xFF, 0, [&](std::vector<cuda::DeviceTensor>& dt) {
      REQUIRE(cuda::copy_to_device(const_cast<uint8_t*>(dt[0].gaps_dev), bad.gaps.data(), bad.gaps.size()) ==
              Error::Ok);
      REQUIRE(cuda::copy_to_device(const_cast<uint64_t*>(dt[0].block_out_dev), bad.block_out.data(),
                                   bad.block_out.size() * 8) == Error::Ok);
      REQUIRE(cuda::synchronize() == Error::Ok);
    });
    INFO("trial " << trial << " chunk " << t << " gap " << old << " -> " << g);
    if (validate_bf16(view_of(bad)) == Error::Ok) {
      std::vector<uint16_t> cpu(w.size());
      REQUIRE(r.status == decode_bf16(view_of(bad), cpu.data()));
      if (r.status == Error::Ok) REQUIRE(r.out[0] == cpu);
    }
    REQUIRE(r.status != Error::Ok);
  }
  // Block offsets that no validation would pass: past n, decreasing, too large for the buffer.
  for (int kind = 0; kind < 3; ++kind) {
    EncodedBf16 bad = enc;
    if (kind == 0) bad.block_out[1] = bad.geom.n + 1000;
    if (kind == 1) std::swap(bad.block_out[1], bad.block_out[2]);
    if (kind == 2) bad.block_out[2] = bad.block_out[1] + 60000;
    const BatchResult r = gpu_decode({view_of(enc)}, 0xFF, 0, [&](std::vector<cuda::DeviceTensor>& dt) {
      REQUIRE(cuda::copy_to_device(const_cast<uint64_t*>(dt[0].block_out_dev), bad.block_out.data(),
                                   bad.block_out.size() * 8) == Error::Ok);
      REQUIRE(cuda::synchronize() == Error::Ok);
    });
    INFO("kind " << kind);
    REQUIRE(r.status != Error::Ok);
  }
}

TEST_CASE("gpu: tensor over 2^31 weights (64-bit indexing)", "[gpu][slow]") {
  if (!have_gpu()) return;
  const uint64_t rows = (1ull << 31) / 4096 + 1, cols = 4096;  // 2^31 + 4096 weights
  const uint64_t n = rows * cols;
  std::vector<uint16_t> w(n);
  synthetic_weights(w.data(), rows, cols, 42, 0.02, cores());
  const EncodedBf16 enc = encode_bf16(w.data(), n, cores());
  cuda::DeviceTensor t;
  REQUIRE(cuda::upload(view_of(enc), &t) == Error::Ok);
  cuda::DeviceBuffer out;
  REQUIRE(out.allocate(2 * n + 2 * kGuard) == Error::Ok);
  REQUIRE(cuda::fill_device(out.data(), kGuardByte, out.size()) == Error::Ok);
  uint16_t* o = reinterpret_cast<uint16_t*>(out.as<uint8_t>() + kGuard);
  REQUIRE(cuda::decode_one(t, o) == Error::Ok);
  std::vector<uint16_t> got(n + kGuard);  // + the guards, as uint16
  REQUIRE(cuda::copy_to_host(got.data(), out.data(), out.size()) == Error::Ok);
  REQUIRE(cuda::synchronize() == Error::Ok);
  const uint16_t gg = kGuardByte * 0x101;
  for (size_t i = 0; i < kGuard / 2; ++i) {
    REQUIRE(got[i] == gg);
    REQUIRE(got[kGuard / 2 + n + i] == gg);
  }
  REQUIRE(std::memcmp(got.data() + kGuard / 2, w.data(), 2 * n) == 0);
}

// ---- the loop kernel's host model (cuda/host_sim.cu): runs without a GPU ----------------

namespace {

std::vector<uint16_t> few_symbols(uint64_t n, unsigned seed, int k) {  // exponents from k values
  std::vector<uint16_t> w(n);
  std::mt19937 rng(seed);
  for (auto& x : w) x = static_cast<uint16_t>(((0x70 + rng() % k) << 7) | (rng() & 0x807F));
  return w;
}

}  // namespace

TEST_CASE("loop kernel host model equals the CPU decoder", "[sim]") {
  std::vector<std::vector<uint16_t>> ws;
  ws.push_back(df11test::gaussian_bf16(300000, 0.02, 1));
  ws.push_back(df11test::gaussian_bf16(60000, 1e-4, 2));
  ws.push_back(df11test::gaussian_bf16(24321, 1.0, 3));
  ws.push_back(one_symbol(70000, 4));
  ws.push_back(one_symbol(1025, 5));
  ws.push_back(few_symbols(90000, 6, 2));
  ws.push_back(few_symbols(90000, 7, 3));
  for (uint64_t n : {1ull, 2ull, 17ull, 379ull, 1025ull, 24000ull, 65537ull})
    ws.push_back(df11test::gaussian_bf16(n, 0.02, static_cast<unsigned>(n)));
  std::vector<uint16_t> all;
  for (uint32_t v = 0; v < 65536; ++v) all.push_back(static_cast<uint16_t>(v));
  std::shuffle(all.begin(), all.end(), std::mt19937(3));
  ws.push_back(all);
  for (const auto& w : ws) {
    const EncodedBf16 e = encode_bf16(w.data(), w.size());
    for (int P : {1, 2, 4, 8})
      for (bool smem : {false, true}) {
        INFO("n " << w.size() << " P " << P << " smem " << smem);
        std::vector<uint16_t> got(w.size(), 0xBEEF);
        REQUIRE(cuda::detail::simulate_loop_decode(view_of(e), got.data(), P, smem) == Error::Ok);
        REQUIRE(got == w);
      }
  }
}

TEST_CASE("loop kernel host model: corrupted streams get the CPU decoder's verdict", "[sim]") {
  std::vector<std::vector<uint16_t>> ws{df11test::gaussian_bf16(150000, 0.02, 22), one_symbol(50000, 5),
                                        few_symbols(60000, 8, 2), df11test::gaussian_bf16(40000, 1.0, 9)};
  std::mt19937_64 rng(11);
  int verdicts[4] = {0, 0, 0, 0};
  for (const auto& w : ws) {
    const EncodedBf16 enc = encode_bf16(w.data(), w.size());
    for (int trial = 0; trial < 300; ++trial) {
      EncodedBf16 bad = enc;
      const int flips = 1 + trial % 3;
      for (int f = 0; f < flips; ++f) {
        const uint64_t bit = rng() % bad.geom.total_bits;
        bad.stream[bit / 32] ^= 1u << (31 - bit % 32);
      }
      if (validate_bf16(view_of(bad)) != Error::Ok) continue;
      std::vector<uint16_t> cpu(w.size()), sim(w.size());
      const Error cpu_err = decode_bf16(view_of(bad), cpu.data());
      verdicts[static_cast<int>(cpu_err == Error::Ok ? 0 : cpu_err == Error::Df11BadGaps ? 1 : 2)]++;
      for (int P : {2, 4})
        for (bool smem : {false, true}) {
          INFO("n " << w.size() << " trial " << trial << " P " << P << " smem " << smem);
          REQUIRE(cuda::detail::simulate_loop_decode(view_of(bad), sim.data(), P, smem) == cpu_err);
          if (cpu_err == Error::Ok) REQUIRE(sim == cpu);
        }
    }
  }
  INFO("ok " << verdicts[0] << " gaps " << verdicts[1] << " corrupt " << verdicts[2]);
  CHECK(verdicts[1] > 2);
  CHECK(verdicts[2] > 20);
}

TEST_CASE("gpu: the kernel on corrupted one- and two-symbol streams: the CPU verdict", "[gpu]") {
  if (!have_gpu()) return;
  const auto w0 = df11test::gaussian_bf16(20000, 0.02, 21);
  const EncodedBf16 e0 = encode_bf16(w0.data(), w0.size());
  std::mt19937_64 rng(12);
  for (const auto& w : {one_symbol(50000, 5), few_symbols(60000, 8, 2)}) {
    const EncodedBf16 enc = encode_bf16(w.data(), w.size());
    for (int trial = 0; trial < 30; ++trial) {
      EncodedBf16 bad = enc;
      for (int f = 0; f < 1 + trial % 3; ++f) {
        const uint64_t bit = rng() % bad.geom.total_bits;
        bad.stream[bit / 32] ^= 1u << (31 - bit % 32);
      }
      if (validate_bf16(view_of(bad)) != Error::Ok) continue;
      std::vector<uint16_t> cpu(w.size());
      const Error cpu_err = decode_bf16(view_of(bad), cpu.data());
      const BatchResult r = gpu_decode({view_of(e0), view_of(enc)}, 0xFF, 0, overwrite_stream(1, bad));
      INFO("trial " << trial);
      REQUIRE(r.status == cpu_err);
      if (cpu_err == Error::Ok) REQUIRE(r.out[1] == cpu);
      else REQUIRE(r.failed == 1);
      REQUIRE(r.out[0] == w0);
    }
  }
}
