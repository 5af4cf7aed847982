// C API (df11_c.h): GPU images, contexts and plans over cuda/df11_cuda.h.
// Without CUDA every function here exists and reports CudaUnavailable.
//
// Image of `count` tensors (every offset a multiple of 256, computed from the
// file alone, so that the host can recompute where everything is without
// reading device memory):
//   [ header (256 bytes) | tensor 0's image | tensor 1's image | ... ]
// Each tensor's image is cuda::image_layout(): kernel tables, block_out,
// gaps, stream, sign-mantissa bytes. The header records the list the image was
// built from (count, size, a digest of the tensors' geometry and checksums) so
// that a copy of an image describes itself.
#include <algorithm>
#include <cstring>

#include "c_api_internal.h"
#include "container_layout.h"
#include "layout.h"
#define XXH_INLINE_ALL
#include <xxhash.h>

#ifdef DF11_HAVE_CUDA
#include "df11_cuda.h"
#endif

namespace df11::capi {
namespace {

#ifdef DF11_HAVE_CUDA
constexpr uint64_t kImageHeaderBytes = 256;
constexpr char kImageMagic[8] = {'D', 'F', '1', '1', 'I', 'M', 'G', '\0'};
constexpr uint32_t kImageVersion = 1;

struct ImageHeader {
  char magic[8];
  uint32_t version;
  uint32_t header_bytes;
  uint64_t count;
  uint64_t bytes;
  uint64_t digest;  // XXH64 of the tensors' (n, total_bits, n_threads, orig_xxh64, offset)
};
static_assert(sizeof(ImageHeader) <= kImageHeaderBytes, "image header fits its slot");

// Where each tensor of an image lies, recomputed on the host from the file.
struct ImagePlan {
  std::vector<uint64_t> offsets;  // per position
  uint64_t bytes = 0;
  uint64_t digest = 0;
};

// Checks the list (every index valid and BF16_HUFFMAN) and lays the image out.
df11_status plan_image(const df11_file* f, const uint64_t* indices, uint64_t count, ImagePlan* out,
                       const char* function) {
  if (!f) return fail(Error::Usage, function, "null df11_file");
  if (count && !indices) return fail(Error::Usage, f->path, std::string(function) + ": null index list");
  XXH64_state_t h;
  XXH64_reset(&h, 0);
  out->offsets.clear();
  out->offsets.reserve(count);
  uint64_t off = kImageHeaderBytes;
  for (uint64_t k = 0; k < count; ++k) {
    if (const df11_status s = check_index(f, indices[k]); s != DF11_OK) return s;
    const ReaderTensor& t = f->tensor(indices[k]);
    if (t.encoding != kBf16Huffman)
      return fail(Error::Usage, tensor_label(*f, indices[k]),
                  std::string("is stored as ") + (t.encoding == kZstd ? "ZSTD" : "RAW") +
                      "; GPU images hold BF16_HUFFMAN tensors only (decode it with df11_decode_host)");
    const uint64_t rec[5] = {t.bf16.geom.n, t.bf16.geom.total_bits, t.bf16.geom.n_threads, t.orig_xxh64, off};
    XXH64_update(&h, rec, sizeof rec);
    out->offsets.push_back(off);
    off += cuda::image_layout(t.bf16.geom).bytes;
  }
  out->bytes = off;
  out->digest = XXH64_digest(&h);
  return DF11_OK;
}

// Makes g's device current for the calling thread while a call needs it,
// then gives the caller back its context exactly (an engine may be working on
// another device, in a context of its own, or a thread may have none yet:
// restoring the device number instead created a primary context on GPU 0 for
// every launch from a fresh thread of a model on cuda:1).
class DeviceScope {
 public:
  // cudaSetDevice also when `device` is current already: it makes the
  // device's context, so that a broken device fails where it is entered.
  Error enter(int device) {
    saved_ = cuda::current_context(&ctx_);
    if (!saved_) prev_ = cuda::current_device();
    entered_ = true;
    const Error e = cuda::set_device(device);
    device_ = device;
    return e;
  }
  ~DeviceScope() {
    if (!entered_) return;
    if (saved_) {
      void* now = nullptr;
      if (!cuda::current_context(&now) || now != ctx_) (void)cuda::set_current_context(ctx_);
    } else if (prev_ >= 0 && prev_ != device_) {
      (void)cuda::set_device(prev_);  // no driver entry points: the device number at least
    }
  }
  DeviceScope() = default;
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

 private:
  void* ctx_ = nullptr;
  bool saved_ = false, entered_ = false;
  int prev_ = -1, device_ = -1;
};

df11_status cuda_fail(Error e, const std::string& label, const std::string& what) {
  return fail(e, label, what + ": " + cuda::last_cuda_error());
}

// Writes the image of a planned list into dst (plan.bytes).
df11_status pack(const df11_file* f, const uint64_t* indices, const ImagePlan& plan, uint8_t* dst) {
  std::memset(dst, 0, kImageHeaderBytes);
  ImageHeader hd{};
  std::memcpy(hd.magic, kImageMagic, 8);
  hd.version = kImageVersion;
  hd.header_bytes = kImageHeaderBytes;
  hd.count = plan.offsets.size();
  hd.bytes = plan.bytes;
  hd.digest = plan.digest;
  std::memcpy(dst, &hd, sizeof hd);
  for (size_t k = 0; k < plan.offsets.size(); ++k) {
    const ReaderTensor& t = f->tensor(indices[k]);
    // pack_image copies the sections from the mapping: a file cut short
    // since df11_open is an error here, not SIGBUS (a cut between this
    // check and the copy still is: docs/RELIABILITY.md).
    const df11_file::Entry& en = f->tensors[indices[k]];
    if (Status s = en.reader->check_mapped(en.index); !s.ok()) return fail(s);
    const uint64_t bytes = cuda::image_layout(t.bf16.geom).bytes;
    const Error e = cuda::pack_image(t.bf16, dst + plan.offsets[k], bytes);
    // The view was validated when the file was opened: a failure here is a bug.
    if (e != Error::Ok) return fail(e, tensor_label(*f, indices[k]), "cannot build its GPU image");
  }
  return DF11_OK;
}

#else

df11_status no_cuda(const char* function) {
  return fail(Error::CudaUnavailable, function, "this libdf11 was built without CUDA");
}

#endif

}  // namespace
}  // namespace df11::capi

using namespace df11;
using namespace df11::capi;

#ifdef DF11_HAVE_CUDA

struct df11_gpu {
  int device = 0;
  cuda::Allocator alloc;
  std::vector<cuda::DeviceBuffer> images;  // from df11_gpu_upload
  // The last upload's host copy, reused by the next upload once the copy
  // has read it (an event, not the caller's stream, which may be gone).
  std::vector<uint8_t> staging;
  cuda::Event staging_read;
};

struct df11_plan {
  int device = 0;  // g's device: launches and status reads make it current (several GPUs)
  cuda::Workspace ws;
  std::vector<cuda::DeviceTensor> tensors;
  std::vector<std::string> labels;  // "FILE: tensor 'NAME'" per position, for status messages
};

#endif

extern "C" {

df11_status df11_image_size(const df11_file* f, const uint64_t* indices, uint64_t count, uint64_t* bytes) {
  return guard("df11_image_size", [&]() -> df11_status {
#ifdef DF11_HAVE_CUDA
    if (!bytes) return fail(Error::Usage, "df11_image_size", "null output pointer");
    ImagePlan plan;
    if (const df11_status s = plan_image(f, indices, count, &plan, "df11_image_size"); s != DF11_OK) return s;
    *bytes = plan.bytes;
    return DF11_OK;
#else
    (void)f, (void)indices, (void)count, (void)bytes;
    return no_cuda("df11_image_size");
#endif
  });
}

df11_status df11_image_entry_at(const df11_file* f, const uint64_t* indices, uint64_t count, uint64_t position,
                                df11_image_entry* out) {
  return guard("df11_image_entry_at", [&]() -> df11_status {
#ifdef DF11_HAVE_CUDA
    if (!out) return fail(Error::Usage, "df11_image_entry_at", "null output pointer");
    ImagePlan plan;
    if (const df11_status s = plan_image(f, indices, count, &plan, "df11_image_entry_at"); s != DF11_OK) return s;
    if (position >= count)
      return fail(Error::Usage, f->path,
                  "image position " + std::to_string(position) + " out of range (" + std::to_string(count) + " tensors)");
    const cuda::ImageLayout l = cuda::image_layout(f->tensor(indices[position]).bf16.geom);
    const uint64_t o = plan.offsets[position];
    *out = df11_image_entry{o, l.bytes, o + l.block_out, o + l.gaps, o + l.stream, o + l.sm};
    return DF11_OK;
#else
    (void)f, (void)indices, (void)count, (void)position, (void)out;
    return no_cuda("df11_image_entry_at");
#endif
  });
}

df11_status df11_pack_host(const df11_file* f, const uint64_t* indices, uint64_t count, void* dst,
                           uint64_t dst_bytes) {
  return guard("df11_pack_host", [&]() -> df11_status {
#ifdef DF11_HAVE_CUDA
    ImagePlan plan;
    if (const df11_status s = plan_image(f, indices, count, &plan, "df11_pack_host"); s != DF11_OK) return s;
    if (!dst || dst_bytes < plan.bytes)
      return fail(Error::Usage, f->path,
                  "df11_pack_host: destination holds " + std::to_string(dst ? dst_bytes : 0) +
                      " bytes, the image needs " + std::to_string(plan.bytes));
    return pack(f, indices, plan, static_cast<uint8_t*>(dst));
#else
    (void)f, (void)indices, (void)count, (void)dst, (void)dst_bytes;
    return no_cuda("df11_pack_host");
#endif
  });
}

int df11_gpu_device_count(void) {
#ifdef DF11_HAVE_CUDA
  try {
    return cuda::device_count();
  } catch (...) {
    return 0;
  }
#else
  return 0;
#endif
}

df11_status df11_gpu_create(int device, const df11_allocator* alloc, df11_gpu** out) {
  return guard("df11_gpu_create", [&]() -> df11_status {
    if (!out) return fail(Error::Usage, "df11_gpu_create", "null output pointer");
    *out = nullptr;
#ifdef DF11_HAVE_CUDA
    const std::string label = "cuda:" + std::to_string(device);
    const int n = cuda::device_count();
    if (n == 0) return fail(Error::CudaUnavailable, label, "no CUDA device is available");
    // A device that is not there is the caller's mistake, as every other
    // argument out of range (CudaUnavailable says the machine has no GPU).
    if (device < 0 || device >= n)
      return fail(Error::Usage, label, "no such device: " + std::to_string(n) + " CUDA device(s) present (0.." +
                                           std::to_string(n - 1) + ")");
    if (alloc && (!alloc->alloc || !alloc->free))
      return fail(Error::Usage, label, "df11_allocator needs both alloc and free");
    // The caller's context is given back on return, as every other call of
    // this API does.
    DeviceScope scope;
    if (const Error e = scope.enter(device); e != Error::Ok) return cuda_fail(e, label, "cudaSetDevice");
    auto g = std::make_unique<df11_gpu>();
    g->device = device;
    if (alloc) g->alloc = cuda::Allocator{alloc->ctx, alloc->alloc, alloc->free};
    *out = g.release();
    return DF11_OK;
#else
    (void)device, (void)alloc;
    return no_cuda("df11_gpu_create");
#endif
  });
}

void df11_gpu_destroy(df11_gpu* g) {
#ifdef DF11_HAVE_CUDA
  if (!g) return;
  try {  // nothing unwinds into C
    DeviceScope scope;  // frees and the event belong to g's device
    (void)scope.enter(g->device);
    (void)g->staging_read.wait();  // an upload may still be reading the staging buffer
    delete g;  // frees the images through their allocator
  } catch (...) {
  }
#else
  (void)g;
#endif
}

df11_status df11_gpu_upload(df11_gpu* g, const df11_file* f, const uint64_t* indices, uint64_t count, void* stream,
                            const void** image_dev) {
  return guard("df11_gpu_upload", [&]() -> df11_status {
#ifdef DF11_HAVE_CUDA
    if (!g || !image_dev) return fail(Error::Usage, "df11_gpu_upload", "null df11_gpu or output pointer");
    *image_dev = nullptr;
    ImagePlan plan;
    if (const df11_status s = plan_image(f, indices, count, &plan, "df11_gpu_upload"); s != DF11_OK) return s;
    DeviceScope scope;
    if (const Error e = scope.enter(g->device); e != Error::Ok) return cuda_fail(e, f->path, "cudaSetDevice");
    if (const Error e = g->staging_read.wait(); e != Error::Ok)
      return cuda_fail(e, f->path, "waiting for the previous upload");
    g->staging.resize(plan.bytes);
    if (const df11_status s = pack(f, indices, plan, g->staging.data()); s != DF11_OK) return s;
    g->images.reserve(g->images.size() + 1);  // before the copy is enqueued into buf
    cuda::DeviceBuffer buf;
    if (const Error e = buf.allocate(plan.bytes, g->alloc, stream); e != Error::Ok)
      return cuda_fail(e, f->path, "cannot allocate a " + std::to_string(plan.bytes) + "-byte image");
    if (const Error e = cuda::copy_to_device(buf.data(), g->staging.data(), plan.bytes, stream); e != Error::Ok)
      return cuda_fail(e, f->path, "image upload");
    // An event of g's device cannot be recorded on a stream of another
    // context (one the caller created, a green context): then the copy is
    // waited for here, and the staging is free again at once.
    if (g->staging_read.record(stream) != Error::Ok) {
      if (const Error e = cuda::synchronize(stream); e != Error::Ok) return cuda_fail(e, f->path, "image upload");
    }
    const void* const address = buf.data();
    g->images.push_back(std::move(buf));  // cannot throw: reserved above
    *image_dev = address;  // only once g owns it: a failed push_back leaves no address to freed memory
    return DF11_OK;
#else
    (void)g, (void)f, (void)indices, (void)count, (void)stream, (void)image_dev;
    return no_cuda("df11_gpu_upload");
#endif
  });
}

df11_status df11_plan_create(df11_gpu* g, const df11_file* f, const uint64_t* indices, uint64_t count,
                             const void* image_dev, void* const* outputs_dev, void* stream, df11_plan** out) {
  return guard("df11_plan_create", [&]() -> df11_status {
    if (!out) return fail(Error::Usage, "df11_plan_create", "null output pointer");
    *out = nullptr;
#ifdef DF11_HAVE_CUDA
    if (!g) return fail(Error::Usage, "df11_plan_create", "null df11_gpu");
    ImagePlan plan;
    if (const df11_status s = plan_image(f, indices, count, &plan, "df11_plan_create"); s != DF11_OK) return s;
    if (!image_dev || reinterpret_cast<uintptr_t>(image_dev) % 256)
      return fail(Error::Usage, f->path, "df11_plan_create: the image's device address must be 256-byte aligned");
    if (count && !outputs_dev) return fail(Error::Usage, f->path, "df11_plan_create: null output list");
    // Before p: on a failure after the workspace was allocated, p frees it
    // while g's device is still current, then the scope restores the caller's.
    DeviceScope scope;
    auto p = std::make_unique<df11_plan>();
    p->tensors.resize(count);
    p->labels.reserve(count);
    // Outputs: 2-byte aligned, not overlapping (the kernel's blocks of
    // different tensors would race on shared bytes).
    std::vector<std::pair<uintptr_t, uint64_t>> spans;
    for (uint64_t k = 0; k < count; ++k) {
      const ReaderTensor& t = f->tensor(indices[k]);
      p->labels.push_back(tensor_label(*f, indices[k]));
      if (t.orig_size == 0) continue;
      const uintptr_t o = reinterpret_cast<uintptr_t>(outputs_dev[k]);
      if (!o || (o & 1))
        return fail(Error::Usage, p->labels.back(), "output " + std::to_string(k) + " is null or not 2-byte aligned");
      spans.emplace_back(o, t.orig_size);
      const Error e = cuda::bind_image(t.bf16.geom, t.max_block_elems,
                                       static_cast<const uint8_t*>(image_dev) + plan.offsets[k], &p->tensors[k]);
      if (e != Error::Ok) return fail(e, p->labels.back(), "cannot bind its image");
    }
    std::sort(spans.begin(), spans.end());
    for (size_t k = 1; k < spans.size(); ++k)
      if (spans[k].first < spans[k - 1].first + spans[k - 1].second)
        return fail(Error::Usage, f->path, "df11_plan_create: two outputs overlap");
    if (const Error e = scope.enter(g->device); e != Error::Ok) return cuda_fail(e, f->path, "cudaSetDevice");
    p->device = g->device;
    cuda::set_allocator(p->ws, g->alloc);
    std::vector<const cuda::DeviceTensor*> ptrs(count);
    for (uint64_t k = 0; k < count; ++k) ptrs[k] = &p->tensors[k];
    const Error e = cuda::prepare(ptrs.data(), reinterpret_cast<uint16_t* const*>(outputs_dev), count, &p->ws, stream);
    if (e == Error::Usage) return fail(e, f->path, "df11_plan_create: the group cannot be planned (too many blocks)");
    if (e != Error::Ok) return cuda_fail(e, f->path, "df11_plan_create");
    *out = p.release();
    return DF11_OK;
#else
    (void)g, (void)f, (void)indices, (void)count, (void)image_dev, (void)outputs_dev, (void)stream;
    return no_cuda("df11_plan_create");
#endif
  });
}

df11_status df11_plan_launch(df11_plan* p, void* stream) {
  return guard("df11_plan_launch", [&]() -> df11_status {
#ifdef DF11_HAVE_CUDA
    if (!p) return fail(Error::Usage, "df11_plan_launch", "null df11_plan");
    // A kernel launch fails on a stream of another device than the current
    // one: with plans on several GPUs (df11.torch device_map), enter p's.
    DeviceScope scope;
    if (const Error e = scope.enter(p->device); e != Error::Ok) return cuda_fail(e, "df11_plan_launch", "cudaSetDevice");
    const Error e = cuda::launch(p->ws, stream);
    if (e != Error::Ok) return cuda_fail(e, "df11_plan_launch", "decode kernel launch");
    return DF11_OK;
#else
    (void)p, (void)stream;
    return no_cuda("df11_plan_launch");
#endif
  });
}

df11_status df11_plan_status(df11_plan* p, void* stream, uint64_t* failed_index) {
  return guard("df11_plan_status", [&]() -> df11_status {
    if (failed_index) *failed_index = UINT64_MAX;
#ifdef DF11_HAVE_CUDA
    if (!p) return fail(Error::Usage, "df11_plan_status", "null df11_plan");
    DeviceScope scope;
    if (const Error e = scope.enter(p->device); e != Error::Ok) return cuda_fail(e, "df11_plan_status", "cudaSetDevice");
    size_t failed = SIZE_MAX;
    const Error e = cuda::read_status(p->ws, stream, &failed);
    if (e == Error::Ok) return DF11_OK;
    if (e == Error::CudaError || e == Error::CudaUnavailable) return cuda_fail(e, "df11_plan_status", "reading the status");
    if (failed_index && failed < p->labels.size()) *failed_index = failed;
    const std::string who = failed < p->labels.size() ? p->labels[failed] + " (position " + std::to_string(failed) + ")"
                                                      : std::string("df11_plan_status");
    return fail(e, who, "the GPU decoder found the exponent stream inconsistent");
#else
    (void)p, (void)stream;
    return no_cuda("df11_plan_status");
#endif
  });
}

void df11_plan_destroy(df11_plan* p) {
#ifdef DF11_HAVE_CUDA
  if (!p) return;
  try {  // nothing unwinds into C
    DeviceScope scope;  // the workspace is freed on p's device
    (void)scope.enter(p->device);
    delete p;
  } catch (...) {
  }
#else
  (void)p;
#endif
}

}  // extern "C"
