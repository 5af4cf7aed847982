// Host driver of the df11 GPU decoder: device memory, upload (validated),
// launch planning and status. Kernel: decode_loop.cuh (decode_loop_kernel<4, true>).
#include <algorithm>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "decode_loop.cuh"
#include "df11_cuda.h"
#include "huffman.h"
#include "internal.h"
#include "layout.h"

namespace df11::cuda {

namespace {

thread_local std::string g_last_error;

cudaStream_t as_stream(Stream s) { return static_cast<cudaStream_t>(s); }

Error check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return Error::Ok;
  return detail::cuda_fail(static_cast<int>(e), what);
}

constexpr uint64_t kSectionAlign = 256;

// The production kernel: 4 threads per chunk, the block's stream words in
// shared memory (docs/PERFORMANCE.md "GPU decoder").
constexpr int kKernelP = 4;
constexpr bool kKernelSmemStream = true;
using KernelLayout = detail::LoopLayout<kKernelP, kKernelSmemStream>;
constexpr int kKernelThreads = detail::kThreads * kKernelP;

const void* kernel_fn() {
  return reinterpret_cast<const void*>(&detail::decode_loop_kernel<kKernelP, kKernelSmemStream>);
}

// Dynamic shared memory for blocks of up to max_block_elems weights: the
// pass-2 table and the stream copy, then the pass-1 tables overlaid by the
// exponent buffer.
uint32_t kernel_smem_bytes(uint64_t max_block_elems) {
  const uint32_t buf = static_cast<uint32_t>(align_up(max_block_elems + 32, 16));
  return KernelLayout::kFixed + std::max(buf, KernelLayout::kPass1Bytes);
}

std::mutex g_smem_limit_mu;  // raise_kernel_smem_limit and its test hook

Error set_smem_limit(uint32_t bytes) {  // callers hold g_smem_limit_mu
  return check(cudaFuncSetAttribute(kernel_fn(), cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
               "cudaFuncSetAttribute");
}

// Lets the kernel take `bytes` of dynamic shared memory on the current
// device. The limit is the kernel's, not a plan's, and there is one per
// device (function attributes belong to the device's context): it is only
// ever raised, or a plan prepared earlier with a larger need would fail at
// launch (cudaErrorInvalidValue) once a plan with a smaller one is prepared
// (found by the Python package's one plan per transformer block; the same fix
// as branch py's a192dfb). Read, compare and set run under one lock: two
// threads planning at once (df11_plan_create on distinct plans) could
// otherwise both read the old limit and the smaller need be set last. The
// current value is read from the driver each time rather than remembered, so
// a device reset (which restores the default) cannot leave a stale record.
Error raise_kernel_smem_limit(uint32_t bytes) {
  std::lock_guard<std::mutex> lock(g_smem_limit_mu);
  cudaFuncAttributes attrs{};
  if (const Error e = check(cudaFuncGetAttributes(&attrs, kernel_fn()), "cudaFuncGetAttributes"); e != Error::Ok)
    return e;
  if (attrs.maxDynamicSharedSizeBytes < static_cast<int>(bytes))
    if (const Error e = set_smem_limit(bytes); e != Error::Ok) return e;
  // Occupancy is bounded by shared memory (table + exponent buffer per
  // block): take the largest carveout (the same value every time).
  return check(cudaFuncSetAttribute(kernel_fn(), cudaFuncAttributePreferredSharedMemoryCarveout,
                                    cudaSharedmemCarveoutMaxShared),
               "cudaFuncSetAttribute");
}

}  // namespace

namespace testing {

Error set_kernel_smem_limit(uint32_t bytes) {
  std::lock_guard<std::mutex> lock(g_smem_limit_mu);
  return set_smem_limit(bytes);
}

}  // namespace testing

namespace detail {

Error cuda_fail(int code, const char* what) {
  const cudaError_t e = static_cast<cudaError_t>(code);
  g_last_error = std::string(what) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
  // Clear a non-sticky error so that later calls are not blamed for it.
  (void)cudaGetLastError();
  if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver || e == cudaErrorInvalidDevice ||
      e == cudaErrorNoKernelImageForDevice || e == cudaErrorDevicesUnavailable)
    return Error::CudaUnavailable;
  return Error::CudaError;
}

}  // namespace detail

// ---- devices -----------------------------------------------------------------------

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

Error set_device(int device) { return check(cudaSetDevice(device), "cudaSetDevice"); }

int current_device() {
  int d = -1;
  if (cudaGetDevice(&d) != cudaSuccess) {
    (void)cudaGetLastError();
    return -1;
  }
  return d;
}

std::string device_name(int device) {
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
    (void)cudaGetLastError();
    return "";
  }
  return prop.name;
}

Error synchronize(Stream stream) { return check(cudaStreamSynchronize(as_stream(stream)), "cudaStreamSynchronize"); }

const char* last_cuda_error() { return g_last_error.c_str(); }

// ---- device memory -----------------------------------------------------------------------

DeviceBuffer::~DeviceBuffer() { reset(); }

DeviceBuffer::DeviceBuffer(DeviceBuffer&& o) noexcept
    : ptr_(o.ptr_), bytes_(o.bytes_), alloc_(o.alloc_), stream_(o.stream_) {
  o.ptr_ = nullptr;
  o.bytes_ = 0;
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    reset();
    ptr_ = o.ptr_;
    bytes_ = o.bytes_;
    alloc_ = o.alloc_;
    stream_ = o.stream_;
    o.ptr_ = nullptr;
    o.bytes_ = 0;
  }
  return *this;
}

void DeviceBuffer::reset() {
  if (ptr_) {
    if (alloc_.custom()) {
      if (alloc_.free) alloc_.free(alloc_.ctx, ptr_, bytes_, stream_);
    } else {
      cudaFree(ptr_);
    }
  }
  ptr_ = nullptr;
  bytes_ = 0;
}

Error DeviceBuffer::allocate(size_t bytes) { return allocate(bytes, Allocator{}, nullptr); }

Error DeviceBuffer::allocate(size_t bytes, const Allocator& a, Stream stream) {
  reset();
  alloc_ = a;
  stream_ = stream;
  if (bytes == 0) return Error::Ok;
  void* p = nullptr;
  if (!a.custom()) {
    if (const Error e = check(cudaMalloc(&p, bytes), "cudaMalloc"); e != Error::Ok) return e;
  } else {
    const int rc = a.alloc(a.ctx, bytes, stream, &p);
    if (rc != 0 || !p) {
      g_last_error = "allocator callback failed to provide " + std::to_string(bytes) + " bytes (returned " +
                     std::to_string(rc) + ")";
      return Error::CudaError;
    }
    // Every section offset is a multiple of 256 from here: the kernel's
    // 16-byte loads and the tables' alignment depend on it.
    if (reinterpret_cast<uintptr_t>(p) % 256) {
      if (a.free) a.free(a.ctx, p, bytes, stream);
      g_last_error = "allocator callback returned a pointer that is not 256-byte aligned";
      return Error::CudaError;
    }
  }
  ptr_ = p;
  bytes_ = bytes;
  return Error::Ok;
}

Error copy_to_device(void* dst_dev, const void* src_host, size_t bytes, Stream stream) {
  if (bytes == 0) return Error::Ok;
  return check(cudaMemcpyAsync(dst_dev, src_host, bytes, cudaMemcpyHostToDevice, as_stream(stream)),
               "cudaMemcpyAsync(HtoD)");
}

Error copy_to_host(void* dst_host, const void* src_dev, size_t bytes, Stream stream) {
  if (bytes == 0) return Error::Ok;
  return check(cudaMemcpyAsync(dst_host, src_dev, bytes, cudaMemcpyDeviceToHost, as_stream(stream)),
               "cudaMemcpyAsync(DtoH)");
}

Error fill_device(void* dst_dev, int byte, size_t bytes, Stream stream) {
  if (bytes == 0) return Error::Ok;
  return check(cudaMemsetAsync(dst_dev, byte, bytes, as_stream(stream)), "cudaMemsetAsync");
}

// ---- upload ---------------------------------------------------------------------------------

Error upload(const Bf16View& v, DeviceTensor* out, Stream stream) {
  using detail::kLoopTableBytes;
  if (!out) return Error::Usage;
  uint64_t max_block = 0;
  if (const Error e = validate_bf16(v, &max_block); e != Error::Ok) return e;
  const Bf16Geometry& g = v.geom;
  out->mem.reset();
  // The layout of an image (image.cu), filled by copies straight from the
  // view's host pointers instead of a packed host copy.
  const ImageLayout l = image_layout(g);
  if (const Error e = out->mem.allocate(l.bytes); e != Error::Ok) return e;
  uint8_t* const base = out->mem.as<uint8_t>();
  out->lut_loop_host.reset(new uint32_t[kLoopTableBytes / 4]);
  detail::build_loop_tables(v.lengths, g.n, out->lut_loop_host.get());
  Error e = Error::Ok;
  auto put = [&](uint64_t off, const void* src, uint64_t bytes) {
    if (e == Error::Ok) e = copy_to_device(base + off, src, bytes, stream);
  };
  auto zero = [&](uint64_t from, uint64_t to) {
    if (e == Error::Ok) e = fill_device(base + from, 0, to - from, stream);
  };
  for (uint32_t k = 0; k < detail::kLoopTableCopies; ++k)
    put(l.tables + uint64_t{k} * kLoopTableBytes, out->lut_loop_host.get(), kLoopTableBytes);
  put(l.block_out, v.block_out, 8 * g.block_out_entries());
  put(l.gaps, v.gaps, g.gap_bytes());
  put(l.stream, v.stream, 4 * g.stream_words());
  zero(l.stream + 4 * g.stream_words(), l.sm);  // the bit reader loads up to 2 words past the extra word
  put(l.sm, v.sm, g.n);
  zero(l.sm + g.n, l.bytes);  // the merge reads up to 32 bytes past n
  if (e != Error::Ok) {
    out->mem.reset();
    return e;
  }
  detail::set_image_views(g, max_block, base, out);
  return Error::Ok;
}

// ---- workspace, plan, launch ------------------------------------------------------------------

struct Workspace::Impl {
  bool planned = false;
  Allocator alloc;  // of dev
  // Cache key of the current plan.
  std::vector<const DeviceTensor*> tensors;
  std::vector<uint16_t*> outputs;
  // Plan.
  std::vector<detail::TensorDesc> descs;   // non-empty tensors only
  std::vector<uint64_t> block_begin;       // descs.size() + 1
  std::vector<size_t> caller_index;        // desc -> index in the planned arrays
  uint64_t blocks = 0;
  uint64_t max_block_elems = 0;
  uint32_t buf_bytes = 0;
  uint32_t smem_bytes = 0;
  uint32_t resident = 0;  // blocks of the kernel resident at once on the device
  // Device: [status (8) | pad to 256 | descs | block_begin].
  DeviceBuffer dev;
  unsigned long long* status_dev = nullptr;
  const detail::TensorDesc* table_dev = nullptr;
  const uint64_t* block_begin_dev = nullptr;
  detail::LaunchParams prm;  // the kernel's parameters, all known once planned
};

Workspace::Workspace() : impl_(new Impl) {}

void set_allocator(Workspace& ws, const Allocator& a) { ws.impl()->alloc = a; }
Workspace::~Workspace() = default;
Workspace::Workspace(Workspace&&) noexcept = default;
Workspace& Workspace::operator=(Workspace&&) noexcept = default;

namespace detail {

PlanInfo plan_info(const Workspace& ws) {
  PlanInfo p;
  p.blocks = ws.impl()->blocks;
  p.smem_bytes = ws.impl()->smem_bytes;
  p.max_block_elems = ws.impl()->max_block_elems;
  return p;
}

}  // namespace detail

Error prepare(const DeviceTensor* const* tensors, uint16_t* const* outputs_dev, size_t count, Workspace* ws,
              Stream stream) {
  if (!ws || (count && (!tensors || !outputs_dev))) return Error::Usage;
  Workspace::Impl& w = *ws->impl();
  w.planned = false;
  w.descs.clear();
  w.block_begin.clear();
  w.caller_index.clear();
  w.blocks = 0;
  w.max_block_elems = 0;
  for (size_t i = 0; i < count; ++i) {
    const DeviceTensor* t = tensors[i];
    if (!t) return Error::Usage;
    if (t->geom.n == 0) continue;
    if (!t->stream_dev || !outputs_dev[i] || (reinterpret_cast<uintptr_t>(outputs_dev[i]) & 1))
      return Error::Usage;
    detail::TensorDesc d{};
    d.block_out = t->block_out_dev;
    d.gaps = t->gaps_dev;
    d.stream = t->stream_dev;
    d.sm = t->sm_dev;
    d.lut_loop = t->lut_loop_dev;
    d.out = outputs_dev[i];
    d.n = t->geom.n;
    d.total_bits = t->geom.total_bits;
    d.n_threads = t->geom.n_threads;
    d.out_aligned = (reinterpret_cast<uintptr_t>(outputs_dev[i]) & 15) == 0;
    w.descs.push_back(d);
    w.block_begin.push_back(w.blocks);
    w.caller_index.push_back(i);
    w.blocks += t->geom.n_blocks();
    w.max_block_elems = std::max(w.max_block_elems, t->max_block_elems);
  }
  w.block_begin.push_back(w.blocks);
  if (w.blocks > 0x7FFFFFFFull || w.descs.size() > 0xFFFFFFFFull) return Error::Usage;

  w.buf_bytes = static_cast<uint32_t>(align_up(w.max_block_elems + 32, 16));
  w.smem_bytes = kernel_smem_bytes(w.max_block_elems);
  w.resident = 0;
  if (w.blocks > 0) {
    int dev = 0, optin = 0;
    if (const Error e = check(cudaGetDevice(&dev), "cudaGetDevice"); e != Error::Ok) return e;
    if (const Error e = check(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev),
                              "cudaDeviceGetAttribute");
        e != Error::Ok)
      return e;
    if (w.smem_bytes + 64 > static_cast<uint32_t>(optin)) {
      g_last_error = "decode needs " + std::to_string(w.smem_bytes) + " bytes of shared memory per block; device allows " +
                     std::to_string(optin);
      return Error::CudaError;
    }
    if (const Error e = raise_kernel_smem_limit(w.smem_bytes); e != Error::Ok) return e;
    // How many blocks run at once: a block prefetches the stream of the block
    // that many places on (prefetch_ahead, decode_loop.cuh).
    int per_sm = 0, sms = 0;
    if (const Error e = check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel_fn(), kKernelThreads,
                                                                            w.smem_bytes),
                              "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
        e != Error::Ok)
      return e;
    if (const Error e = check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), "cudaDeviceGetAttribute");
        e != Error::Ok)
      return e;
    w.resident = static_cast<uint32_t>(std::max(per_sm, 0)) * static_cast<uint32_t>(std::max(sms, 0));
  }

  const uint64_t off_table = kSectionAlign;
  const uint64_t off_begin = align_up(off_table + sizeof(detail::TensorDesc) * w.descs.size(), 16);
  const uint64_t bytes = off_begin + 8 * w.block_begin.size();
  if (w.dev.size() < bytes) {
    // The old table may still be read by an earlier launch on this stream.
    if (const Error e = synchronize(stream); e != Error::Ok) return e;
    if (const Error e = w.dev.allocate(bytes, w.alloc, stream); e != Error::Ok) return e;
  }
  uint8_t* base = w.dev.as<uint8_t>();
  w.status_dev = reinterpret_cast<unsigned long long*>(base);
  w.table_dev = reinterpret_cast<const detail::TensorDesc*>(base + off_table);
  w.block_begin_dev = reinterpret_cast<const uint64_t*>(base + off_begin);
  // Stream-ordered after earlier launches that read the old table; then wait,
  // since the host vectors are pageable and may change on the next prepare().
  Error e = fill_device(base, 0xFF, 8, stream);
  if (e == Error::Ok)
    e = copy_to_device(base + off_table, w.descs.data(), sizeof(detail::TensorDesc) * w.descs.size(), stream);
  if (e == Error::Ok) e = copy_to_device(base + off_begin, w.block_begin.data(), 8 * w.block_begin.size(), stream);
  if (e == Error::Ok) e = synchronize(stream);
  if (e != Error::Ok) return e;
  w.prm = detail::LaunchParams{};
  w.prm.table = w.table_dev;
  w.prm.block_begin = w.block_begin_dev;
  w.prm.status = w.status_dev;
  w.prm.count = static_cast<uint32_t>(w.descs.size());
  w.prm.buf_bytes = w.buf_bytes;
  w.prm.resident = w.resident;
  if (w.descs.size() <= detail::kInlineTensors) {
    std::copy(w.descs.begin(), w.descs.end(), w.prm.inline_desc);
    std::copy(w.block_begin.begin(), w.block_begin.end(), w.prm.inline_begin);
  }
  w.tensors.assign(tensors, tensors + count);
  w.outputs.assign(outputs_dev, outputs_dev + count);
  w.planned = true;
  return Error::Ok;
}

Error launch(Workspace& ws, Stream stream) {
  Workspace::Impl& w = *ws.impl();
  if (!w.planned) return Error::Usage;
  if (w.blocks == 0) return Error::Ok;
  detail::decode_loop_kernel<kKernelP, kKernelSmemStream>
      <<<static_cast<unsigned>(w.blocks), static_cast<unsigned>(kKernelThreads), w.smem_bytes, as_stream(stream)>>>(w.prm);
  return check(cudaGetLastError(), "decode kernel launch");
}

Error decode(const DeviceTensor* const* tensors, uint16_t* const* outputs_dev, size_t count, Workspace& ws,
             Stream stream) {
  Workspace::Impl& w = *ws.impl();
  const bool same = w.planned && w.tensors.size() == count &&
                    std::equal(w.tensors.begin(), w.tensors.end(), tensors) &&
                    std::equal(w.outputs.begin(), w.outputs.end(), outputs_dev);
  if (!same)
    if (const Error e = prepare(tensors, outputs_dev, count, &ws, stream); e != Error::Ok) return e;
  return launch(ws, stream);
}

Error read_status(Workspace& ws, Stream stream, size_t* failed_tensor) {
  Workspace::Impl& w = *ws.impl();
  if (failed_tensor) *failed_tensor = SIZE_MAX;
  if (!w.status_dev) return Error::Ok;  // nothing planned, nothing launched
  unsigned long long key = 0;
  Error e = copy_to_host(&key, w.status_dev, 8, stream);
  if (e == Error::Ok) e = synchronize(stream);
  if (e == Error::Ok) e = fill_device(w.status_dev, 0xFF, 8, stream);
  if (e != Error::Ok) return e;
  if (key == detail::kStatusClear) return Error::Ok;
  const uint64_t block = key >> 9;
  if (failed_tensor) {
    const auto it = std::upper_bound(w.block_begin.begin(), w.block_begin.end(), block);
    const size_t d = static_cast<size_t>(it - w.block_begin.begin()) - 1;
    if (d < w.caller_index.size()) *failed_tensor = w.caller_index[d];
  }
  switch (key & 3) {
    case detail::kCodeBadGaps: return Error::Df11BadGaps;
    case detail::kCodeBadBlockOffsets: return Error::Df11BadBlockOffsets;
    default: return Error::Df11StreamCorrupt;
  }
}

Error decode_one(const DeviceTensor& t, uint16_t* out_dev, Stream stream) {
  Workspace ws;
  const DeviceTensor* tp = &t;
  if (const Error e = prepare(&tp, &out_dev, 1, &ws, stream); e != Error::Ok) return e;
  if (const Error e = launch(ws, stream); e != Error::Ok) return e;
  return read_status(ws, stream);
}

Error decode_to_host(const Bf16View& v, uint16_t* out_host, Stream stream) {
  DeviceTensor t;
  if (const Error e = upload(v, &t, stream); e != Error::Ok) return e;
  if (v.geom.n == 0) return synchronize(stream);
  DeviceBuffer out;
  if (const Error e = out.allocate(v.geom.n * 2); e != Error::Ok) return e;
  if (const Error e = decode_one(t, out.as<uint16_t>(), stream); e != Error::Ok) return e;
  if (const Error e = copy_to_host(out_host, out.data(), v.geom.n * 2, stream); e != Error::Ok) return e;
  return synchronize(stream);
}

}  // namespace df11::cuda
