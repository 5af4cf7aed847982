/* df11 C API: the stable C ABI of libdf11.so, for inference engines in any
 * language and for the Python package (ctypes). C11 and C++ compatible.
 *
 * Conventions
 *  - Every function that can fail returns a df11_status: 0 (DF11_OK) or the
 *    numeric value of a df11 error (codec/df11_errors.h order; values are
 *    stable, new codes are only ever appended). df11_status_name() gives its
 *    stable name ("Df11BadMagic"), df11_last_error() a one-line message (control characters in names escaped: \\n, \\xNN) on
 *    the calling thread naming the file, the tensor and the rule broken.
 *  - Sizes and counts are 64-bit. Strings are UTF-8, NUL-terminated, and
 *    owned by the object they came from.
 *  - CUDA streams are passed as void* (a cudaStream_t; NULL is the legacy
 *    default stream), device pointers carry a _dev suffix.
 *  - Objects are not thread-safe; distinct objects may be used from distinct
 *    threads concurrently. A df11_file may be shared read-only by threads
 *    that only call df11_decode_host/df11_pack_host on it.
 *
 * GPU model: a group of BF16_HUFFMAN tensors (e.g. one transformer block's
 * matrices) is packed once into a position-independent *image* (sections and
 * decode tables). The caller decides where the image lives: df11 allocates it
 * (df11_gpu_upload), or the caller copies it to device memory of its own
 * (a torch tensor, a caching allocator's block, a slot that is refilled from
 * pinned host memory for offloading). A *plan* binds an image's device address
 * to output buffers; df11_plan_launch then decodes the whole group in one
 * kernel launch, with no allocation and no host synchronization.
 */
#ifndef DF11_C_H
#define DF11_C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define DF11_API __declspec(dllexport)
#else
#define DF11_API __attribute__((visibility("default")))
#endif

#define DF11_C_API_VERSION 1

typedef int32_t df11_status;
#define DF11_OK 0

/* ---- library ------------------------------------------------------------ */
DF11_API const char* df11_version(void);             /* "1.0.0" */
DF11_API int df11_c_api_version(void);               /* DF11_C_API_VERSION */
DF11_API const char* df11_status_name(df11_status s); /* "Ok", "Df11BadMagic", ...; "Unknown" */
DF11_API int df11_status_exit_code(df11_status s);    /* the CLI's exit code: 0..3 */
/* Message of the last failing call on this thread ("" if none). Valid until
 * the next df11 call on this thread. */
DF11_API const char* df11_last_error(void);

/* ---- files ---------------------------------------------------------------- */
/* A .df11 file or a df11 model directory (df11-manifest.json, every .df11 in
 * it), memory-mapped and fully validated (no decoding). Tensor names are
 * unique across a directory's shards, and C strings: a file with a name that
 * holds a NUL byte (valid safetensors JSON, "a\u0000x") is refused with
 * TensorNameHasNul (the df11 command still compresses and restores it). */
typedef struct df11_file df11_file;

enum df11_encoding { DF11_ENC_RAW = 0, DF11_ENC_ZSTD = 1, DF11_ENC_BF16_HUFFMAN = 2 };

typedef struct df11_tensor_info {
  const char* name;
  const char* dtype;         /* safetensors dtype string: "BF16", "F32", ... */
  const char* shard;         /* relative path of its .df11 in a directory; "" for a file */
  uint32_t ndim;
  const uint64_t* shape;     /* ndim entries */
  uint32_t encoding;         /* enum df11_encoding */
  uint64_t original_bytes;   /* bytes of the decoded tensor */
  uint64_t stored_bytes;     /* payload bytes in the container */
} df11_tensor_info;

DF11_API df11_status df11_open(const char* path, df11_file** out);
DF11_API void df11_close(df11_file* f); /* NULL is a no-op */
DF11_API uint64_t df11_tensor_count(const df11_file* f);
/* Tensors are numbered in the model's order (shard order, then data order). */
DF11_API df11_status df11_tensor_info_at(const df11_file* f, uint64_t index, df11_tensor_info* out);
DF11_API df11_status df11_find_tensor(const df11_file* f, const char* name, uint64_t* index);
/* Decodes tensor `index` on the CPU into dst (dst_bytes >= original_bytes)
 * and checks its XXH64. threads 0: all cores. */
DF11_API df11_status df11_decode_host(const df11_file* f, uint64_t index, void* dst, uint64_t dst_bytes,
                                      unsigned threads);

/* ---- GPU images -------------------------------------------------------------- */
/* Size in bytes of the image of `count` tensors (each BF16_HUFFMAN, else
 * Usage), and the image itself written to host memory (pinned or not).
 * Images are position-independent; the device copy must be 256-byte aligned. */
DF11_API df11_status df11_image_size(const df11_file* f, const uint64_t* indices, uint64_t count,
                                     uint64_t* bytes);
DF11_API df11_status df11_pack_host(const df11_file* f, const uint64_t* indices, uint64_t count, void* dst,
                                    uint64_t dst_bytes);
/* Where the tensor at `position` (0..count-1) of that image lies: byte
 * offsets from the image's start, each a multiple of 256 (addition to
 * version 1: for engines that refill or check part of an image, and tests). */
typedef struct df11_image_entry {
  uint64_t offset;     /* the tensor's part of the image */
  uint64_t bytes;
  uint64_t block_out;  /* its sections */
  uint64_t gaps;
  uint64_t stream;
  uint64_t sm;
} df11_image_entry;
DF11_API df11_status df11_image_entry_at(const df11_file* f, const uint64_t* indices, uint64_t count,
                                         uint64_t position, df11_image_entry* out);

/* ---- GPU context ---------------------------------------------------------------- */
/* Device memory that df11 itself needs (images from df11_gpu_upload, plan
 * workspaces) comes from this allocator when given, else from cudaMalloc.
 * alloc returns 0 on success; pointers must be 256-byte aligned. free gets
 * the stream the memory was allocated on (the upload's, or df11_plan_create's
 * for a workspace), which must still exist when g or the plan is destroyed.
 * df11 does not wait for kernels before it frees: as for cudaFree of memory a
 * kernel may still read, synchronize the streams that launched a plan before
 * df11_plan_destroy, and those that used g's images before df11_gpu_destroy. */
typedef struct df11_allocator {
  void* ctx;
  int (*alloc)(void* ctx, uint64_t bytes, void* stream, void** ptr_dev);
  void (*free)(void* ctx, void* ptr_dev, uint64_t bytes, void* stream);
} df11_allocator;

typedef struct df11_gpu df11_gpu;
DF11_API int df11_gpu_device_count(void); /* 0 without a driver, a device, or CUDA support */
/* A handle on CUDA device `device` (CudaUnavailable when the machine has no
 * device, Usage when `device` is not one of them). Every call on g and its
 * plans makes that device current for its duration and then gives the calling
 * thread back exactly the context it had (another device's, one of the
 * caller's own, or none: no context is created on another GPU, and the
 * caller's CUDA runtime keeps its current device);
 * df11_plan_launch/status use the stream given, which must belong to that
 * device. */
DF11_API df11_status df11_gpu_create(int device, const df11_allocator* alloc /* NULL: cudaMalloc */,
                                     df11_gpu** out);
DF11_API void df11_gpu_destroy(df11_gpu* g); /* frees what it allocated; plans must be destroyed first */

/* Packs and uploads `count` tensors into one image in device memory owned by
 * g, enqueued on `stream`; *image_dev receives its address. Images live until
 * df11_gpu_destroy(g): none is freed before (an engine that refills slots
 * packs images itself, df11_pack_host, into memory it owns). The packed copy
 * in host memory (as large as the largest image so far) is kept for g's life
 * and reused once the previous upload's copy has read it, which this call may
 * wait for; CUDA may also make the copy of pageable memory wait for `stream`. */
DF11_API df11_status df11_gpu_upload(df11_gpu* g, const df11_file* f, const uint64_t* indices, uint64_t count,
                                     void* stream, const void** image_dev);

/* ---- plans ---------------------------------------------------------------------- */
typedef struct df11_plan df11_plan;
/* Plans the decode of the image of tensors `indices` (the same list, in the
 * same order, that built the image) at device address image_dev into
 * outputs_dev[i] (original_bytes each, 2-byte aligned, 16 for the fast path,
 * not overlapping). Allocates its workspace from g's allocator and
 * synchronizes `stream`: call it outside the hot path. */
DF11_API df11_status df11_plan_create(df11_gpu* g, const df11_file* f, const uint64_t* indices, uint64_t count,
                                      const void* image_dev, void* const* outputs_dev, void* stream,
                                      df11_plan** out);
/* Hot path: one kernel launch on `stream`; no allocation, no copy, no host
 * synchronization. The image must be in place when the stream reaches it. */
DF11_API df11_status df11_plan_launch(df11_plan* p, void* stream);
/* Synchronizes `stream` and returns the first decode error since the last call
 * (Df11StreamCorrupt, Df11BadGaps, ...), resetting it; *failed_index (may be
 * NULL) gets the position in `indices` of the first failing tensor. */
DF11_API df11_status df11_plan_status(df11_plan* p, void* stream, uint64_t* failed_index);
DF11_API void df11_plan_destroy(df11_plan* p);

#ifdef __cplusplus
}
#endif
#endif /* DF11_C_H */
