// Position-independent device images (cuda/df11_cuda.h image_layout,
// pack_image, bind_image) and the allocator hook. [sim]: the image's sections
// decoded by the kernel's host model, no GPU needed; [gpu]: decoding from an
// image copied to the device by the caller, and device memory from a callback.
#include <catch2/catch.hpp>

#include <cstring>
#include <vector>

#include <cuda_runtime_api.h>

#include "bf16_codec.h"
#include "df11_cuda.h"
#include "internal.h"
#include "test_util.h"

using namespace df11;

namespace {

// decode_loop.cuh's kLoopTableBytes and decode_kernel.cuh's kLoopTableCopies
// (CUDA headers, not visible to this C++ test).
constexpr uint64_t kTableBytes = kLutSize * 10;
constexpr uint32_t kTableCopies = 4;

// The view of a tensor whose sections are those inside its packed image.
Bf16View view_in_image(const Bf16View& v, const uint8_t* image) {
  const cuda::ImageLayout l = cuda::image_layout(v.geom);
  Bf16View r = v;
  r.block_out = reinterpret_cast<const uint64_t*>(image + l.block_out);
  r.gaps = image + l.gaps;
  r.stream = reinterpret_cast<const uint32_t*>(image + l.stream);
  r.sm = image + l.sm;
  return r;
}

bool all_zero(const uint8_t* p, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i)
    if (p[i]) return false;
  return true;
}

}  // namespace

TEST_CASE("image: layout, padding, and the kernel's host model decodes from it", "[sim][image]") {
  for (uint64_t n : {1ull, 1025ull, 70000ull, 300001ull}) {
    const auto w = df11test::gaussian_bf16(n, 0.02, static_cast<unsigned>(n));
    const EncodedBf16 e = encode_bf16(w.data(), w.size());
    const Bf16View v = view_of(e);
    const cuda::ImageLayout l = cuda::image_layout(v.geom);
    INFO("n " << n);
    for (uint64_t off : {l.tables, l.block_out, l.gaps, l.stream, l.sm, l.bytes}) REQUIRE(off % 256 == 0);
    REQUIRE(l.block_out >= kTableCopies * kTableBytes);
    REQUIRE(l.sm >= l.stream + 4 * v.geom.stream_words() + 16);
    REQUIRE(l.bytes >= l.sm + align_up(n, 16) + 32);
    std::vector<uint8_t> img(l.bytes, 0xCC);
    REQUIRE(cuda::pack_image(v, img.data(), img.size() - 1) == Error::Usage);
    REQUIRE(cuda::pack_image(v, img.data(), img.size()) == Error::Ok);
    // The kernel reads these paddings: they must be zero.
    REQUIRE(all_zero(img.data() + l.stream + 4 * v.geom.stream_words(), l.sm - l.stream - 4 * v.geom.stream_words()));
    REQUIRE(all_zero(img.data() + l.sm + n, l.bytes - l.sm - n));
    // Every table copy is the same.
    for (uint32_t k = 1; k < kTableCopies; ++k)
      REQUIRE(std::memcmp(img.data(), img.data() + k * kTableBytes, kTableBytes) == 0);
    const Bf16View in = view_in_image(v, img.data());
    REQUIRE(validate_bf16(in) == Error::Ok);
    std::vector<uint16_t> got(n, 0xBEEF);
    REQUIRE(cuda::detail::simulate_loop_decode(in, got.data(), 4, true) == Error::Ok);
    REQUIRE(got == w);
  }
}

TEST_CASE("image: pack_image refuses what validate_bf16 refuses", "[sim][image]") {
  const auto w = df11test::gaussian_bf16(5000, 0.02, 3);
  EncodedBf16 e = encode_bf16(w.data(), w.size());
  e.block_out.back() += 1;  // no longer ends at n
  std::vector<uint8_t> img(cuda::image_layout(e.geom).bytes);
  REQUIRE(cuda::pack_image(view_of(e), img.data(), img.size()) == Error::Df11BadBlockOffsets);
  REQUIRE(cuda::pack_image(view_of(e), nullptr, img.size()) == Error::Usage);
}

namespace {

struct Counting {
  int allocs = 0, frees = 0;
  uint64_t live = 0;
};

int counting_alloc(void* ctx, uint64_t bytes, void*, void** p) {
  auto* c = static_cast<Counting*>(ctx);
  if (cudaMalloc(p, bytes) != cudaSuccess) return 1;
  ++c->allocs;
  c->live += bytes;
  return 0;
}

void counting_free(void* ctx, void* p, uint64_t bytes, void*) {
  auto* c = static_cast<Counting*>(ctx);
  cudaFree(p);
  ++c->frees;
  c->live -= bytes;
}

}  // namespace

TEST_CASE("gpu: decoding from images the caller placed, memory from an allocator callback", "[gpu][image]") {
  if (cuda::device_count() == 0) {
    WARN("no CUDA GPU: skipping");
    return;
  }
  std::vector<std::vector<uint16_t>> ws{df11test::gaussian_bf16(300000, 0.02, 1), df11test::gaussian_bf16(4097, 1.0, 2),
                                        df11test::gaussian_bf16(70001, 1e-3, 3)};
  std::vector<EncodedBf16> enc;
  for (const auto& w : ws) enc.push_back(encode_bf16(w.data(), w.size()));
  // One host image of the three, each part at a 256-byte offset.
  std::vector<uint64_t> off;
  uint64_t total = 0;
  for (const auto& e : enc) {
    off.push_back(total);
    total += cuda::image_layout(e.geom).bytes;
  }
  std::vector<uint8_t> img(total);
  for (size_t i = 0; i < enc.size(); ++i)
    REQUIRE(cuda::pack_image(view_of(enc[i]), img.data() + off[i], total - off[i]) == Error::Ok);
  Counting c;
  const cuda::Allocator a{&c, counting_alloc, counting_free};
  {
    cuda::DeviceBuffer image, out;
    REQUIRE(image.allocate(total, a, nullptr) == Error::Ok);
    REQUIRE(c.allocs == 1);
    REQUIRE(cuda::copy_to_device(image.data(), img.data(), total) == Error::Ok);
    std::vector<uint64_t> out_off;
    uint64_t out_total = 0;
    for (const auto& w : ws) {
      out_off.push_back(out_total);
      out_total += align_up(2 * w.size(), 256);
    }
    REQUIRE(out.allocate(out_total) == Error::Ok);  // cudaMalloc: not counted
    std::vector<cuda::DeviceTensor> dt(enc.size());
    std::vector<const cuda::DeviceTensor*> tp;
    std::vector<uint16_t*> outs;
    for (size_t i = 0; i < enc.size(); ++i) {
      uint64_t max_block = 0;
      REQUIRE(validate_bf16(view_of(enc[i]), &max_block) == Error::Ok);
      REQUIRE(cuda::bind_image(enc[i].geom, max_block, image.as<uint8_t>() + off[i], &dt[i]) == Error::Ok);
      REQUIRE(dt[i].device_bytes() == 0);  // a view: owns nothing
      tp.push_back(&dt[i]);
      outs.push_back(reinterpret_cast<uint16_t*>(out.as<uint8_t>() + out_off[i]));
    }
    cuda::DeviceTensor unused;
    REQUIRE(cuda::bind_image(enc[0].geom, 0, image.as<uint8_t>() + 8, &unused) == Error::Usage);  // misaligned
    cuda::Workspace w;
    cuda::set_allocator(w, a);
    REQUIRE(cuda::prepare(tp.data(), outs.data(), tp.size(), &w) == Error::Ok);
    REQUIRE(c.allocs == 2);  // + the workspace
    for (int rep = 0; rep < 2; ++rep) {
      REQUIRE(cuda::fill_device(out.data(), 0xFF, out_total) == Error::Ok);
      REQUIRE(cuda::launch(w) == Error::Ok);
      REQUIRE(cuda::read_status(w) == Error::Ok);
      std::vector<uint8_t> host(out_total);
      REQUIRE(cuda::copy_to_host(host.data(), out.data(), out_total) == Error::Ok);
      REQUIRE(cuda::synchronize() == Error::Ok);
      for (size_t i = 0; i < ws.size(); ++i) REQUIRE(std::memcmp(host.data() + out_off[i], ws[i].data(), 2 * ws[i].size()) == 0);
    }
  }
  REQUIRE(c.frees == c.allocs);
  REQUIRE(c.live == 0);
}

TEST_CASE("gpu: an allocator that fails or misaligns is an error, not a crash", "[gpu][image]") {
  if (cuda::device_count() == 0) {
    WARN("no CUDA GPU: skipping");
    return;
  }
  auto fails = [](void*, uint64_t, void*, void**) { return 7; };
  auto no_free = [](void*, void*, uint64_t, void*) {};
  cuda::DeviceBuffer b;
  REQUIRE(b.allocate(1024, cuda::Allocator{nullptr, +fails, +no_free}, nullptr) == Error::CudaError);
  REQUIRE(b.data() == nullptr);
  Counting c;
  static void* base = nullptr;
  REQUIRE(cudaMalloc(&base, 4096) == cudaSuccess);
  auto odd = [](void* ctx, uint64_t, void*, void** p) {
    ++static_cast<Counting*>(ctx)->allocs;
    *p = static_cast<uint8_t*>(base) + 16;
    return 0;
  };
  auto count_free = [](void* ctx, void*, uint64_t, void*) { ++static_cast<Counting*>(ctx)->frees; };
  REQUIRE(b.allocate(1024, cuda::Allocator{&c, +odd, +count_free}, nullptr) == Error::CudaError);
  REQUIRE(c.allocs == 1);
  REQUIRE(c.frees == 1);  // handed back at once
  cudaFree(base);
}

TEST_CASE("gpu: a plan stays launchable after a plan with less shared memory is prepared", "[gpu][image]") {
  if (cuda::device_count() == 0) {
    WARN("no CUDA GPU: skipping");
    return;
  }
  // One-symbol weights (1 bit each: blocks of 65536) need the most shared
  // memory per block; N(0, 0.02) weights (~2.7 bits) far less.
  std::vector<uint16_t> big(200000);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint16_t>((127u << 7) | (i * 2654435761u & 0x807Fu));
  const auto small = df11test::gaussian_bf16(200000, 0.02, 4);
  const EncodedBf16 eb = encode_bf16(big.data(), big.size()), es = encode_bf16(small.data(), small.size());
  cuda::DeviceTensor tb, ts;
  REQUIRE(cuda::upload(view_of(eb), &tb) == Error::Ok);
  REQUIRE(cuda::upload(view_of(es), &ts) == Error::Ok);
  REQUIRE(tb.max_block_elems > ts.max_block_elems);
  cuda::DeviceBuffer ob, os;
  REQUIRE(ob.allocate(2 * big.size()) == Error::Ok);
  REQUIRE(os.allocate(2 * small.size()) == Error::Ok);
  const cuda::DeviceTensor* pb = &tb;
  const cuda::DeviceTensor* ps = &ts;
  uint16_t* outb = ob.as<uint16_t>();
  uint16_t* outs = os.as<uint16_t>();
  cuda::Workspace wb, wsm;
  REQUIRE(cuda::prepare(&pb, &outb, 1, &wb) == Error::Ok);
  REQUIRE(cuda::prepare(&ps, &outs, 1, &wsm) == Error::Ok);  // smaller need, prepared last
  REQUIRE(cuda::launch(wb) == Error::Ok);
  REQUIRE(cuda::read_status(wb) == Error::Ok);
  REQUIRE(cuda::launch(wsm) == Error::Ok);
  REQUIRE(cuda::read_status(wsm) == Error::Ok);
  std::vector<uint16_t> got(big.size());
  REQUIRE(cuda::copy_to_host(got.data(), ob.data(), 2 * got.size()) == Error::Ok);
  REQUIRE(cuda::synchronize() == Error::Ok);
  REQUIRE(got == big);
}
