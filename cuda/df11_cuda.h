// df11 GPU decoder: public host API. Includes no CUDA header; a CUDA stream is
// passed as an opaque `Stream` (a cudaStream_t; nullptr = the legacy default
// stream). Every function returns a df11::Error (CudaUnavailable, CudaError,
// Df11*), never aborts; last_cuda_error() gives the CUDA message of the most
// recent CudaError/CudaUnavailable on the calling thread.
//
// Typical use (one layer, many tensors, one kernel launch):
//
//   std::vector<DeviceTensor> dt(k);                  // device copies, validated
//   for (i...) upload(views[i], &dt[i], stream);
//   Workspace ws;
//   prepare(ptrs, outs_dev, k, &ws, stream);          // outside the hot path
//   launch(ws, stream);                               // hot path: one kernel launch
//   read_status(ws, stream);                          // syncs; Ok or Df11StreamCorrupt/Df11BadGaps
//
// decode() combines prepare (only when the tensors or outputs changed) and launch.
// Docs: docs/FORMAT.md section 4 (what is decoded), docs/PERFORMANCE.md "GPU decoder".
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "bf16_codec.h"
#include "df11_errors.h"

namespace df11::cuda {

using Stream = void*;  // cudaStream_t

// ---- devices ------------------------------------------------------------------
int device_count();                    // 0 when there is no driver or no device
Error set_device(int device);          // cudaSetDevice
int current_device();                  // cudaGetDevice; -1 when it fails
std::string device_name(int device);   // "" when unknown
Error synchronize(Stream stream = nullptr);
const char* last_cuda_error();         // message of the last failing CUDA call on this thread
// The context current on the calling thread (nullptr: none), and setting it
// back (cuCtxGetCurrent / cuCtxSetCurrent): a call that works on a device of
// its own leaves the caller's context exactly as it was, whether the primary
// context of another device, one the caller created, or none at all (a
// restored device number would create a primary context on a thread that had
// none). false when the driver cannot say.
bool current_context(void** ctx);
bool set_current_context(void* ctx);

// ---- device memory --------------------------------------------------------------
// Where device memory comes from when not from cudaMalloc/cudaFree, e.g. an
// inference engine's caching allocator (the C API's df11_allocator, same
// layout). alloc returns 0 on success and a 256-byte aligned pointer; free gets
// the stream the memory was allocated on.
struct Allocator {
  void* ctx = nullptr;
  int (*alloc)(void* ctx, uint64_t bytes, void* stream, void** ptr_dev) = nullptr;
  void (*free)(void* ctx, void* ptr_dev, uint64_t bytes, void* stream) = nullptr;
  bool custom() const { return alloc != nullptr; }
};

// RAII owner of one device allocation (256-byte aligned): cudaMalloc, or an
// Allocator's when one is given.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& o) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  Error allocate(size_t bytes);  // frees the old allocation first; 0 bytes frees
  // The same from `a` (cudaMalloc when !a.custom()), on `stream`.
  Error allocate(size_t bytes, const Allocator& a, Stream stream);
  void reset();
  void* data() const { return ptr_; }
  size_t size() const { return bytes_; }
  template <typename T> T* as() const { return static_cast<T*>(ptr_); }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
  Allocator alloc_;         // !custom(): cudaMalloc'ed
  Stream stream_ = nullptr;  // the allocation's stream, handed to alloc_.free
};

// A point in a stream that the host waits for later (cudaEventRecord, then
// cudaEventSynchronize), without keeping the stream, which its owner may
// destroy meanwhile. Created on the first record(), on the current device.
class Event {
 public:
  Event() = default;
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  Error record(Stream stream);
  Error wait();  // Ok at once when nothing was recorded since the last wait
  bool pending() const { return recorded_; }

 private:
  void* ev_ = nullptr;  // cudaEvent_t
  bool recorded_ = false;
};

// cudaMemcpyAsync / cudaMemsetAsync on `stream` (host memory may be pageable).
Error copy_to_device(void* dst_dev, const void* src_host, size_t bytes, Stream stream = nullptr);
Error copy_to_host(void* dst_host, const void* src_dev, size_t bytes, Stream stream = nullptr);
Error fill_device(void* dst_dev, int byte, size_t bytes, Stream stream = nullptr);

// ---- one BF16_HUFFMAN tensor on the device ----------------------------------------------
// Device views of the sections (block_out, gaps, stream, sign-mantissa bytes)
// and of the kernel's tables (cuda/decode_loop.cuh), laid out as an image
// (image_layout below): in mem when upload() made them, in memory of the
// caller's when bind_image() did.
struct DeviceTensor {
  Bf16Geometry geom;
  uint64_t max_block_elems = 0;  // largest block_out[b+1] - block_out[b] (<= 65536)
  const uint64_t* block_out_dev = nullptr;
  const uint8_t* gaps_dev = nullptr;
  const uint32_t* stream_dev = nullptr;
  const uint8_t* sm_dev = nullptr;        // n bytes, zero-padded to a multiple of 16
  // The kernel's tables, 20 KB: 2048 x uint32 pass-2 entries, 2048 x uint32
  // pass-1 accumulate entries, 2048 x uint16 pass-1 masks; followed by 3 more
  // copies of the same 20 KB (the kernel's blocks read them in turn, so that
  // their reads spread over more L2 lines).
  const uint32_t* lut_loop_dev = nullptr;
  uint64_t device_bytes() const { return mem.size(); }

  DeviceBuffer mem;
  // Host copy of the tables: the asynchronous upload reads it after upload() returns.
  std::unique_ptr<uint32_t[]> lut_loop_host;
};

// ---- position-independent images -------------------------------------------------------
// The device form of one BF16_HUFFMAN tensor as one block of bytes whose
// contents depend on the tensor alone: the kernel's tables, then the sections,
// at offsets relative to its start (each 256-byte aligned). A caller may copy
// it anywhere (256-byte aligned) and bind a DeviceTensor to that address.
struct ImageLayout {
  uint64_t tables = 0;     // kernel tables (lut_loop_dev and its copies)
  uint64_t block_out = 0;
  uint64_t gaps = 0;
  uint64_t stream = 0;     // stream words, then 16 zero bytes
  uint64_t sm = 0;         // n bytes, zero-padded to a multiple of 16, then 32 zero bytes
  uint64_t bytes = 0;      // whole image, a multiple of 256
};
ImageLayout image_layout(const Bf16Geometry& g);
// Validates v (validate_bf16) and writes its image, padding zeroed, to dst_host
// (image_layout(v.geom).bytes; Usage if dst_bytes is smaller).
Error pack_image(const Bf16View& v, void* dst_host, uint64_t dst_bytes);
// A DeviceTensor viewing the image of a tensor of geometry g at image_dev
// (owns nothing: mem stays empty). max_block_elems must be validate_bf16's.
Error bind_image(const Bf16Geometry& g, uint64_t max_block_elems, const void* image_dev, DeviceTensor* out);

// Runs df11::validate_bf16 on the host first and refuses invalid input with its
// error, so that no container can make the kernel read or write out of bounds.
// Then allocates and enqueues the copies on `stream` straight from the view's
// host pointers (which may be mmapped); they must stay valid until the stream
// has executed the copies (synchronize(stream)).
Error upload(const Bf16View& v, DeviceTensor* out, Stream stream = nullptr);

// ---- batched decode -----------------------------------------------------------------------
// Holds the device-side per-tensor descriptor table, the block prefix and the
// status word of one launch plan. Use one Workspace per stream at a time.
class Workspace {
 public:
  Workspace();
  ~Workspace();
  Workspace(Workspace&&) noexcept;
  Workspace& operator=(Workspace&&) noexcept;
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  struct Impl;
  Impl* impl() const { return impl_.get(); }

 private:
  std::unique_ptr<Impl> impl_;
};

// Device memory of the workspace comes from `a` from the next prepare() on
// (default: cudaMalloc).
void set_allocator(Workspace& ws, const Allocator& a);

// Plans one launch: builds the descriptor table for `count` tensors and their
// outputs (device pointers, n elements each, 2-byte aligned; 16-byte aligned is
// the fast path), uploads it and resets the status word. Allocates and
// synchronizes `stream`: call it outside the hot path. Tensors with n == 0 are
// skipped; outputs must not overlap.
Error prepare(const DeviceTensor* const* tensors, uint16_t* const* outputs_dev, size_t count,
              Workspace* ws, Stream stream = nullptr);

// Hot path: one kernel launch for the whole planned batch. No allocation, no copy,
// no host synchronization. Errors found by the kernel accumulate in the status word.
Error launch(Workspace& ws, Stream stream = nullptr);

// prepare() when the tensors or outputs differ from the last plan, then launch().
Error decode(const DeviceTensor* const* tensors, uint16_t* const* outputs_dev, size_t count,
             Workspace& ws, Stream stream = nullptr);

// Synchronizes `stream`, returns the first error of the launches since the last
// read (Ok, Df11StreamCorrupt, Df11BadGaps, Df11BadBlockOffsets: the same code the
// CPU decoder gives for the same tensor) and resets the word. *failed_tensor gets
// the index (in the planned array) of the first failing tensor.
Error read_status(Workspace& ws, Stream stream = nullptr, size_t* failed_tensor = nullptr);

// Single-tensor convenience: decode into out_dev, synchronize, return the status.
Error decode_one(const DeviceTensor& t, uint16_t* out_dev, Stream stream = nullptr);

// Whole round trip for callers without device buffers (e.g. `df11 verify --device cuda`):
// validate + upload + decode + copy the n BF16 values back to out_host.
Error decode_to_host(const Bf16View& v, uint16_t* out_host, Stream stream = nullptr);

namespace testing {
// Test hook: sets the decode kernel's dynamic shared-memory limit on the
// current device to `bytes`, lowering it too (prepare() only ever raises it),
// so that a test can make plans race to raise it again.
Error set_kernel_smem_limit(uint32_t bytes);
}  // namespace testing

}  // namespace df11::cuda
