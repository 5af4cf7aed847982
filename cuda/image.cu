// Position-independent device images of BF16_HUFFMAN tensors (df11_cuda.h):
// built on the host from a validated view, copied anywhere by the caller,
// bound to DeviceTensors for prepare(). Host code only; no GPU needed.
#include <algorithm>
#include <cstring>
#include <vector>

#include "decode_loop.cuh"
#include "df11_cuda.h"
#include "huffman.h"
#include "internal.h"
#include "layout.h"

namespace df11::cuda {

namespace {
constexpr uint64_t kImageAlign = 256;
}

ImageLayout image_layout(const Bf16Geometry& g) {
  using detail::kLoopTableBytes;
  ImageLayout l;
  l.tables = 0;
  l.block_out = align_up(l.tables + uint64_t{detail::kLoopTableCopies} * kLoopTableBytes, kImageAlign);
  l.gaps = align_up(l.block_out + 8 * g.block_out_entries(), kImageAlign);
  // decode_loop_kernel's bit reader loads up to 2 words past the stream's extra word.
  l.stream = align_up(l.gaps + g.gap_bytes(), kImageAlign);
  l.sm = align_up(l.stream + 4 * g.stream_words() + 16, kImageAlign);
  // The merge reads sign-mantissa bytes in 16-byte groups, up to 32 bytes past n.
  l.bytes = align_up(l.sm + align_up(g.n, 16) + 32, kImageAlign);
  return l;
}

namespace detail {

void build_loop_tables(const CodeLengths& lengths, uint64_t n, uint32_t* table) {
  std::vector<uint16_t> lut(kLutSize);
  std::vector<uint32_t> multi(kLutSize);
  if (n > 0) {
    build_decode_lut(lengths, lut.data());
  } else {
    std::fill(lut.begin(), lut.end(), uint16_t{kLutInvalid | (kMaxCodeLength << 8)});
  }
  build_multi_lut(lut.data(), multi.data());
  for (uint32_t i = 0; i < kLutSize; ++i) table[i] = pass2_entry(multi[i]);
  build_pass1_luts(lut.data(), table + kLutSize, reinterpret_cast<uint16_t*>(table + 2 * kLutSize));
}

void set_image_views(const Bf16Geometry& g, uint64_t max_block_elems, const uint8_t* base, DeviceTensor* out) {
  const ImageLayout l = image_layout(g);
  out->geom = g;
  out->max_block_elems = max_block_elems;
  out->lut_loop_dev = reinterpret_cast<const uint32_t*>(base + l.tables);
  out->block_out_dev = reinterpret_cast<const uint64_t*>(base + l.block_out);
  out->gaps_dev = base + l.gaps;
  out->stream_dev = reinterpret_cast<const uint32_t*>(base + l.stream);
  out->sm_dev = base + l.sm;
}

}  // namespace detail

Error pack_image(const Bf16View& v, void* dst_host, uint64_t dst_bytes) {
  using detail::kLoopTableBytes;
  if (!dst_host) return Error::Usage;
  if (const Error e = validate_bf16(v); e != Error::Ok) return e;
  const Bf16Geometry& g = v.geom;
  const ImageLayout l = image_layout(g);
  if (dst_bytes < l.bytes) return Error::Usage;
  uint8_t* const d = static_cast<uint8_t*>(dst_host);
  std::memset(d, 0, l.bytes);  // padding: the kernel reads some of it (image_layout)
  std::vector<uint32_t> table(kLoopTableBytes / 4);
  detail::build_loop_tables(v.lengths, g.n, table.data());
  for (uint32_t k = 0; k < detail::kLoopTableCopies; ++k)
    std::memcpy(d + l.tables + uint64_t{k} * kLoopTableBytes, table.data(), kLoopTableBytes);
  std::memcpy(d + l.block_out, v.block_out, 8 * g.block_out_entries());
  if (g.gap_bytes()) std::memcpy(d + l.gaps, v.gaps, g.gap_bytes());
  std::memcpy(d + l.stream, v.stream, 4 * g.stream_words());
  if (g.n) std::memcpy(d + l.sm, v.sm, g.n);
  return Error::Ok;
}

Error bind_image(const Bf16Geometry& g, uint64_t max_block_elems, const void* image_dev, DeviceTensor* out) {
  if (!out || !image_dev || reinterpret_cast<uintptr_t>(image_dev) % kImageAlign) return Error::Usage;
  out->mem.reset();
  out->lut_loop_host.reset();
  detail::set_image_views(g, max_block_elems, static_cast<const uint8_t*>(image_dev), out);
  return Error::Ok;
}

}  // namespace df11::cuda
