/* C API test (formats/df11_c.h), compiled as C11 and linked against libdf11.so.
 *   c_api_test DF11_CLI [WORK_DIR]
 *   c_api_test --decode FILE THREADS   (a helper mode of the test itself)
 * Writes safetensors files of known tensors, compresses them with the df11
 * command (a file and a sharded directory), then checks through the C API:
 * listing, CPU decoding against the original bytes, error codes and messages,
 * GPU images (position independence) and, when a GPU is present, grouped
 * decoding into device buffers with a counting allocator and the status of a
 * corrupted stream. Prints "SKIPPED: ..." for the parts it cannot run. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "df11_c.h"

#ifdef DF11_TEST_CUDA
#include <cuda.h> /* types only: the driver is reached through cudart's entry points */
#include <cudaTypedefs.h>
#include <cuda_runtime_api.h>
#endif

static int g_failures = 0;
static int g_checks = 0;

#define CHECK(cond)                                                                     \
  do {                                                                                  \
    ++g_checks;                                                                         \
    if (!(cond)) {                                                                      \
      ++g_failures;                                                                     \
      fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n", __FILE__, __LINE__, \
              #cond, df11_last_error());                                                \
    }                                                                                   \
  } while (0)

/* A call that must succeed; stops the test otherwise (later checks depend on it). */
#define MUST(call)                                                                                  \
  do {                                                                                              \
    df11_status s_ = (call);                                                                        \
    ++g_checks;                                                                                     \
    if (s_ != DF11_OK) {                                                                            \
      fprintf(stderr, "%s:%d: %s returned %s: %s\n", __FILE__, __LINE__, #call, df11_status_name(s_), \
              df11_last_error());                                                                   \
      exit(1);                                                                                      \
    }                                                                                               \
  } while (0)

/* Error code `want`, and a message that names `needle` (a path or tensor). */
static void expect_error(df11_status got, const char* want, const char* needle, int line) {
  ++g_checks;
  if (strcmp(df11_status_name(got), want) != 0 || strstr(df11_last_error(), needle) == NULL ||
      strstr(df11_last_error(), want) == NULL) {
    ++g_failures;
    fprintf(stderr, "line %d: expected %s naming '%s', got %s: %s\n", line, want, needle, df11_status_name(got),
            df11_last_error());
  }
}
#define EXPECT_ERROR(call, want, needle) expect_error((call), want, needle, __LINE__)

/* ---- test tensors ------------------------------------------------------------ */

typedef struct {
  const char* name;
  const char* dtype;
  uint32_t ndim;
  uint64_t shape[2];
  uint8_t* bytes;
  uint64_t size;
} Tensor;

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint64_t next_u64(void) { /* xorshift64* */
  g_rng ^= g_rng >> 12;
  g_rng ^= g_rng << 25;
  g_rng ^= g_rng >> 27;
  return g_rng * 0x2545F4914F6CDD1Dull;
}
static double uniform01(void) { return ((double)(next_u64() >> 11) + 0.5) / 9007199254740992.0; }

static uint16_t bf16_of(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  u += 0x7FFFu + ((u >> 16) & 1u); /* round to nearest even */
  return (uint16_t)(u >> 16);
}

static void* xmalloc(size_t n) {
  void* p = malloc(n ? n : 1);
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(1);
  }
  return p;
}

/* kind 0: N(0, 0.02^2) weights; kind 1: every exponent 127 (values +-[1, 2)),
 * a one-symbol exponent code, whose other bit patterns are not codes. */
static Tensor make_bf16(const char* name, uint64_t rows, uint64_t cols, int kind) {
  Tensor t = {name, "BF16", cols ? 2u : 1u, {rows, cols}, NULL, 0};
  const uint64_t n = cols ? rows * cols : rows;
  t.size = 2 * n;
  t.bytes = (uint8_t*)xmalloc(t.size);
  for (uint64_t i = 0; i < n; ++i) {
    uint16_t v;
    if (kind == 0) {
      const double g = sqrt(-2.0 * log(uniform01())) * cos(6.283185307179586 * uniform01());
      v = bf16_of((float)(0.02 * g));
    } else {
      v = (uint16_t)((next_u64() & 0x807Fu) | (127u << 7));
    }
    memcpy(t.bytes + 2 * i, &v, 2);
  }
  if (!cols) t.ndim = 1;
  return t;
}

static Tensor make_f32(const char* name, uint64_t n) {
  Tensor t = {name, "F32", 1, {n, 0}, NULL, 4 * n};
  t.bytes = (uint8_t*)xmalloc(t.size);
  for (uint64_t i = 0; i < n; ++i) {
    const float f = 1.0f + (float)(uniform01() * 0.01);
    memcpy(t.bytes + 4 * i, &f, 4);
  }
  return t;
}

static void write_safetensors(const char* path, const Tensor* ts, int count) {
  char header[4096];
  size_t h = 0;
  uint64_t off = 0;
  h += (size_t)snprintf(header + h, sizeof header - h, "{");
  for (int i = 0; i < count; ++i) {
    h += (size_t)snprintf(header + h, sizeof header - h, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", i ? "," : "",
                          ts[i].name, ts[i].dtype);
    for (uint32_t d = 0; d < ts[i].ndim; ++d)
      h += (size_t)snprintf(header + h, sizeof header - h, "%s%llu", d ? "," : "", (unsigned long long)ts[i].shape[d]);
    h += (size_t)snprintf(header + h, sizeof header - h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                          (unsigned long long)(off + ts[i].size));
    off += ts[i].size;
  }
  h += (size_t)snprintf(header + h, sizeof header - h, "}");
  while (h % 8) header[h++] = ' ';
  FILE* f = fopen(path, "wb");
  if (!f) {
    fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
    exit(1);
  }
  const uint64_t hl = h;
  fwrite(&hl, 8, 1, f);
  fwrite(header, 1, h, f);
  for (int i = 0; i < count; ++i)
    if (ts[i].size) fwrite(ts[i].bytes, 1, ts[i].size, f);
  if (fclose(f) != 0) exit(1);
}

static void run(const char* fmt, ...) {
  char cmd[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  if (system(cmd) != 0) {
    fprintf(stderr, "command failed: %s\n", cmd);
    exit(1);
  }
}

static const Tensor* find(const Tensor* ts, int count, const char* name) {
  for (int i = 0; i < count; ++i)
    if (strcmp(ts[i].name, name) == 0) return &ts[i];
  return NULL;
}

/* Lists f and decodes every tensor on the CPU; each must equal the original. */
static void check_all_tensors(df11_file* f, const Tensor* ts, int count, const char* label) {
  CHECK(df11_tensor_count(f) == (uint64_t)count);
  for (uint64_t i = 0; i < df11_tensor_count(f); ++i) {
    df11_tensor_info info;
    MUST(df11_tensor_info_at(f, i, &info));
    const Tensor* t = find(ts, count, info.name);
    CHECK(t != NULL);
    if (!t) continue;
    CHECK(strcmp(info.dtype, t->dtype) == 0);
    CHECK(info.ndim == t->ndim);
    for (uint32_t d = 0; d < info.ndim && d < 2; ++d) CHECK(info.shape[d] == t->shape[d]);
    CHECK(info.original_bytes == t->size);
    if (strcmp(t->dtype, "BF16") == 0 && t->size) CHECK(info.encoding == DF11_ENC_BF16_HUFFMAN);
    if (strcmp(t->dtype, "BF16") == 0 && t->size) CHECK(info.stored_bytes < info.original_bytes);
    uint64_t found = UINT64_MAX;
    MUST(df11_find_tensor(f, info.name, &found));
    CHECK(found == i);
    for (unsigned threads = 0; threads <= 2; threads += 2) { /* all cores, then 2 */
      uint8_t* out = (uint8_t*)xmalloc(info.original_bytes + 1);
      out[info.original_bytes] = 0xA5;
      MUST(df11_decode_host(f, i, out, info.original_bytes, threads));
      CHECK(memcmp(out, t->bytes, t->size) == 0);
      CHECK(out[info.original_bytes] == 0xA5); /* nothing past the tensor */
      free(out);
    }
  }
  printf("%s: %llu tensors listed and decoded on the CPU\n", label, (unsigned long long)df11_tensor_count(f));
}

/* ---- GPU ------------------------------------------------------------------------ */

#ifdef DF11_TEST_CUDA
typedef struct {
  int allocs, frees;
  uint64_t live_bytes;
} Counter;

static int counting_alloc(void* ctx, uint64_t bytes, void* stream, void** ptr) {
  (void)stream;
  Counter* c = (Counter*)ctx;
  if (cudaMalloc(ptr, bytes) != cudaSuccess) return 1;
  ++c->allocs;
  c->live_bytes += bytes;
  return 0;
}

static void counting_free(void* ctx, void* ptr, uint64_t bytes, void* stream) {
  (void)stream;
  Counter* c = (Counter*)ctx;
  cudaFree(ptr);
  ++c->frees;
  c->live_bytes -= bytes;
}

#define CUDA_MUST(call)                                                                        \
  do {                                                                                         \
    cudaError_t e_ = (call);                                                                   \
    if (e_ != cudaSuccess) {                                                                   \
      fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
      exit(1);                                                                                 \
    }                                                                                          \
  } while (0)

/* Decodes `count` tensors of f in one plan from the image at image_dev and
 * compares each with the original; out_dev holds them at 256-byte offsets. */
static df11_status decode_group(df11_gpu* g, df11_file* f, const uint64_t* idx, uint64_t count, const void* image_dev,
                                const Tensor* ts, int nts, cudaStream_t stream, uint64_t* failed, int check_ok_only_except) {
  uint64_t offs[8], total = 0;
  for (uint64_t k = 0; k < count; ++k) {
    df11_tensor_info info;
    MUST(df11_tensor_info_at(f, idx[k], &info));
    offs[k] = total;
    total += (info.original_bytes + 255) / 256 * 256 + 256;
  }
  uint8_t* out_dev = NULL;
  CUDA_MUST(cudaMalloc((void**)&out_dev, total));
  CUDA_MUST(cudaMemset(out_dev, 0x5A, total));
  void* outs[8];
  for (uint64_t k = 0; k < count; ++k) outs[k] = out_dev + offs[k];
  df11_plan* p = NULL;
  MUST(df11_plan_create(g, f, idx, count, image_dev, outs, stream, &p));
  MUST(df11_plan_launch(p, stream));
  const df11_status first = df11_plan_status(p, stream, failed);
  /* The plan is reusable: the outputs are filled again, and the second
   * launch must write them all over. */
  CUDA_MUST(cudaMemsetAsync(out_dev, 0x5A, total, stream));
  MUST(df11_plan_launch(p, stream));
  const df11_status st = df11_plan_status(p, stream, failed);
  CHECK(st == first);
  uint8_t* host = (uint8_t*)xmalloc(total);
  CUDA_MUST(cudaMemcpy(host, out_dev, total, cudaMemcpyDeviceToHost));
  for (uint64_t k = 0; k < count; ++k) {
    df11_tensor_info info;
    MUST(df11_tensor_info_at(f, idx[k], &info));
    /* Every byte after each output, up to the next one, is untouched: the
     * corrupted tensor's too (its blocks stop at their own range). */
    const uint64_t end = k + 1 < count ? offs[k + 1] : total;
    int guard_ok = 1;
    for (uint64_t b = offs[k] + info.original_bytes; b < end; ++b)
      if (host[b] != 0x5A) guard_ok = 0;
    CHECK(guard_ok);
    if ((int)k == check_ok_only_except) continue;
    const Tensor* t = find(ts, nts, info.name);
    CHECK(t && memcmp(host + offs[k], t->bytes, t->size) == 0);
  }
  /* A second status read after the reset reports nothing new. */
  if (st != DF11_OK) {
    uint64_t again = 0;
    MUST(df11_plan_status(p, stream, &again));
    CHECK(again == UINT64_MAX);
  }
  free(host);
  df11_plan_destroy(p);
  CUDA_MUST(cudaFree(out_dev));
  return st;
}

/* The calling thread's CUDA context before and after calls on a df11_gpu:
 * the same, whether none (a thread that never used CUDA), the primary one, or
 * one the caller created. Restoring the device number instead left a primary
 * context current, and with several GPUs made one on GPU 0 for a model on
 * another. */
static void* driver_fn(const char* name, unsigned version) {
  void* fn = NULL;
  enum cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
  if (cudaGetDriverEntryPointByVersion(name, &fn, version, cudaEnableDefault, &q) != cudaSuccess ||
      q != cudaDriverEntryPointSuccess)
    return NULL;
  return fn;
}

enum { CTX_NONE = 0, CTX_PRIMARY = 1, CTX_OWN = 2 };

typedef struct {
  df11_file* f;
  const uint64_t* idx;
  void* outs[2]; /* allocated by the main thread: cudaMalloc here would bind a context */
  int mode;      /* CTX_*: what the thread holds before the calls */
  int start_ok;  /* out: the thread held what mode says */
  int same;      /* out: every call left the context as it was */
  int ran;
} CtxJob;

static void* ctx_job(void* arg) {
  CtxJob* j = (CtxJob*)arg;
  PFN_cuCtxGetCurrent_v4000 get = (PFN_cuCtxGetCurrent_v4000)driver_fn("cuCtxGetCurrent", 4000);
  PFN_cuCtxSetCurrent_v4000 set = (PFN_cuCtxSetCurrent_v4000)driver_fn("cuCtxSetCurrent", 4000);
  PFN_cuCtxCreate_v12050 create = (PFN_cuCtxCreate_v12050)driver_fn("cuCtxCreate", 12050);
  PFN_cuCtxDestroy_v4000 destroy = (PFN_cuCtxDestroy_v4000)driver_fn("cuCtxDestroy", 4000);
  PFN_cuDeviceGet_v2000 device_get = (PFN_cuDeviceGet_v2000)driver_fn("cuDeviceGet", 2000);
  if (!get || !set || !create || !destroy || !device_get) return NULL;
  CUcontext own = NULL;
  if (j->mode == CTX_PRIMARY) CUDA_MUST(cudaSetDevice(0)); /* binds device 0's primary context */
  if (j->mode == CTX_OWN) {
    CUdevice dev;
    if (device_get(&dev, 0) != CUDA_SUCCESS || create(&own, NULL, 0, dev) != CUDA_SUCCESS) return NULL;
    if (set(own) != CUDA_SUCCESS) return NULL; /* cuCtxCreate pushed it; make it the one current */
  }
  CUcontext before = (CUcontext)1, now = (CUcontext)2;
  if (get(&before) != CUDA_SUCCESS) return NULL;
  j->start_ok = j->mode == CTX_NONE ? before == NULL : j->mode == CTX_OWN ? before == own : before != NULL;
  int same = 1;
#define SAME_CTX() (get(&now) == CUDA_SUCCESS && now == before)
  df11_gpu* g = NULL;
  MUST(df11_gpu_create(0, NULL, &g));
  same &= SAME_CTX();
  /* The legacy default stream of g's device (df11 enters it for every
   * call): no call of the test's own binds a context. */
  void* stream = NULL;
  const void* image_dev = NULL;
  MUST(df11_gpu_upload(g, j->f, j->idx, 2, stream, &image_dev));
  same &= SAME_CTX();
  df11_plan* p = NULL;
  MUST(df11_plan_create(g, j->f, j->idx, 2, image_dev, j->outs, stream, &p));
  same &= SAME_CTX();
  MUST(df11_plan_launch(p, stream));
  same &= SAME_CTX();
  uint64_t failed = 0;
  MUST(df11_plan_status(p, stream, &failed));
  same &= SAME_CTX();
  df11_plan_destroy(p);
  same &= SAME_CTX();
  df11_gpu_destroy(g);
  same &= SAME_CTX();
#undef SAME_CTX
  if (own) {
    set(NULL);
    destroy(own);
  }
  j->same = same;
  j->ran = 1;
  return NULL;
}

static void context_tests(df11_file* f, const uint64_t* idx) {
  df11_tensor_info info[2];
  MUST(df11_tensor_info_at(f, idx[0], &info[0]));
  MUST(df11_tensor_info_at(f, idx[1], &info[1]));
  void* outs[2];
  CUDA_MUST(cudaMalloc(&outs[0], info[0].original_bytes));
  CUDA_MUST(cudaMalloc(&outs[1], info[1].original_bytes));
  const char* names[3] = {"no context", "the primary context", "a context of its own"};
  for (int mode = CTX_NONE; mode <= CTX_OWN; ++mode) {
    CtxJob j = {f, idx, {outs[0], outs[1]}, mode, 0, 0, 0};
    pthread_t t;
    if (pthread_create(&t, NULL, ctx_job, &j) != 0) {
      CHECK(!"pthread_create");
      break;
    }
    pthread_join(t, NULL);
    if (!j.ran) {
      printf("SKIPPED: the caller's context, with %s (a driver entry point is missing)\n", names[mode]);
      continue;
    }
    if (!j.start_ok) fprintf(stderr, "context test: the thread did not start with %s\n", names[mode]);
    CHECK(j.start_ok);
    if (!j.same) fprintf(stderr, "context test: a call changed the thread's context (it had %s)\n", names[mode]);
    CHECK(j.same);
  }
  CUDA_MUST(cudaFree(outs[0]));
  CUDA_MUST(cudaFree(outs[1]));
  printf("GPU: the calling thread's context is left as it was (none, the primary one, one of its own)\n");
}

static void gpu_tests(df11_file* f, const Tensor* ts, int nts) {
  uint64_t idx[3];
  MUST(df11_find_tensor(f, "a.weight", &idx[0]));
  MUST(df11_find_tensor(f, "b.weight", &idx[1]));
  MUST(df11_find_tensor(f, "c.const", &idx[2]));
  cudaStream_t stream;
  CUDA_MUST(cudaStreamCreate(&stream));
  Counter c = {0, 0, 0};
  df11_allocator a = {&c, counting_alloc, counting_free};
  df11_gpu* g = NULL;
  /* A device that is not there is a usage error; no device at all is
   * CudaUnavailable (the test's CPU-only branch). */
  EXPECT_ERROR(df11_gpu_create(df11_gpu_device_count(), NULL, &g), "Usage", "no such device");
  EXPECT_ERROR(df11_gpu_create(-1, NULL, &g), "Usage", "cuda:-1");
  CHECK(g == NULL);
  MUST(df11_gpu_create(0, &a, &g));

  /* 1. df11 uploads the image (through the allocator). */
  const void* image_dev = NULL;
  MUST(df11_gpu_upload(g, f, idx, 3, stream, &image_dev));
  CHECK(image_dev != NULL && (uintptr_t)image_dev % 256 == 0);
  CHECK(c.allocs == 1);
  uint64_t failed = 0;
  MUST(decode_group(g, f, idx, 3, image_dev, ts, nts, stream, &failed, -1));
  CHECK(failed == UINT64_MAX);
  CHECK(c.allocs == 2 && c.frees == 1); /* + the plan's workspace, freed with it */

  /* 1b. A second upload on a df11_gpu after the first upload's stream was destroyed:
   * df11 waits for the first copy through an event of its own, not through
   * that stream. Both images decode. (A g of cudaMalloc: an allocator's
   * free would get that stream, which the header says must outlive g.) */
  {
    df11_gpu* g2 = NULL;
    MUST(df11_gpu_create(0, NULL, &g2));
    cudaStream_t gone;
    CUDA_MUST(cudaStreamCreate(&gone));
    const void* first = NULL;
    const void* second = NULL;
    MUST(df11_gpu_upload(g2, f, idx, 3, gone, &first));
    CUDA_MUST(cudaStreamSynchronize(gone));
    CUDA_MUST(cudaStreamDestroy(gone));
    MUST(df11_gpu_upload(g2, f, idx, 3, stream, &second));
    CHECK(first != NULL && second != NULL && first != second);
    MUST(decode_group(g2, f, idx, 3, first, ts, nts, stream, &failed, -1));
    MUST(decode_group(g2, f, idx, 3, second, ts, nts, stream, &failed, -1));
    df11_gpu_destroy(g2);
  }

  /* 2. The caller places a packed image in memory of its own. */
  uint64_t bytes = 0;
  MUST(df11_image_size(f, idx, 3, &bytes));
  uint8_t* img = (uint8_t*)xmalloc(bytes);
  MUST(df11_pack_host(f, idx, 3, img, bytes));
  void* own = NULL;
  CUDA_MUST(cudaMalloc(&own, bytes));
  CUDA_MUST(cudaMemcpy(own, img, bytes, cudaMemcpyHostToDevice));
  MUST(decode_group(g, f, idx, 3, own, ts, nts, stream, &failed, -1));

  /* 3. A corrupted stream: tensor 2 (one-symbol code) gets bit patterns that
   * are not codes; the status names it, its neighbours still decode. */
  df11_image_entry e;
  MUST(df11_image_entry_at(f, idx, 3, 2, &e));
  memset(img + e.stream, 0xFF, 8);
  CUDA_MUST(cudaMemcpy(own, img, bytes, cudaMemcpyHostToDevice));
  const df11_status st = decode_group(g, f, idx, 3, own, ts, nts, stream, &failed, 2);
  CHECK(strcmp(df11_status_name(st), "Df11StreamCorrupt") == 0);
  CHECK(failed == 2);
  CHECK(strstr(df11_last_error(), "c.const") != NULL);
  printf("corrupted stream: %s: %s\n", df11_status_name(st), df11_last_error());

  CUDA_MUST(cudaFree(own));
  free(img);
  df11_gpu_destroy(g);
  CHECK(c.allocs == c.frees && c.live_bytes == 0);
  CUDA_MUST(cudaStreamDestroy(stream));
  printf("GPU: grouped decode from df11's and the caller's images, allocator %d allocs / %d frees\n", c.allocs,
         c.frees);
  context_tests(f, idx);
}
#endif

/* ---- main ------------------------------------------------------------------------------- */

/* Runs df11_open(path) in a child process and waits at most `seconds` for it:
 * a call that blocks (a FIFO opened before it was checked) is killed and
 * reported as -1. Otherwise 0 when the child saw error `want` with a message
 * holding `needle`, 1 when not. */
static int open_fails_within(const char* path, const char* want, const char* needle, int seconds) {
  fflush(NULL);
  const pid_t pid = fork();
  if (pid < 0) return 1;
  if (pid == 0) {
    df11_file* f = NULL;
    const df11_status s = df11_open(path, &f);
    const int ok = strcmp(df11_status_name(s), want) == 0 && strstr(df11_last_error(), needle) != NULL;
    if (!ok) fprintf(stderr, "child: df11_open(%s): %s: %s\n", path, df11_status_name(s), df11_last_error());
    _exit(ok ? 0 : 1);
  }
  const struct timespec tick = {0, 10 * 1000 * 1000};
  for (int i = 0; i < seconds * 100; ++i) {
    int st = 0;
    if (waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
    nanosleep(&tick, NULL);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  return -1;
}

/* Input that the C API cannot or must not take, and files that change after
 * df11_open. `model` is a valid .df11 file with BF16 tensors a.weight and
 * b.weight, in that order. */
static void input_file_tests(const char* cli, const char* dir, const char* model) {
  char path[2048], path2[2048];
  df11_file* bad = (df11_file*)1;

  /* A tensor name with a NUL byte ("a\u0000x" in the JSON) is valid
   * safetensors and the df11 command restores it exactly, but
   * df11_tensor_info.name is a C string: df11_open refuses the file, naming
   * it and the tensor. */
  {
    Tensor nul[3];
    nul[0] = make_bf16("a\\u0000x", 64, 64, 0);
    nul[1] = make_bf16("a\\u0000y", 64, 64, 0);
    nul[2] = make_f32("b", 100);
    snprintf(path, sizeof path, "%s/nul.safetensors", dir);
    write_safetensors(path, nul, 3);
    run("'%s' compress -q -f '%s' && '%s' decompress -q -f '%s/nul.df11' -o '%s/nul-back.safetensors' && "
        "cmp -s '%s' '%s/nul-back.safetensors'",
        cli, path, cli, dir, dir, path, dir);
    snprintf(path, sizeof path, "%s/nul.df11", dir);
    EXPECT_ERROR(df11_open(path, &bad), "TensorNameHasNul", path);
    EXPECT_ERROR(df11_open(path, &bad), "TensorNameHasNul", "tensor 'a\\x00x'");
    CHECK(bad == NULL);
    CHECK(df11_status_exit_code(df11_open(path, &bad)) == 3);
    for (int i = 0; i < 3; ++i) free(nul[i].bytes);
  }

  /* A name with control characters ("a\nb" + ESC) is a C string: the file
   * opens, and a message naming the tensor stays one line, the characters
   * escaped as the command prints them. */
  {
    Tensor odd[1];
    odd[0] = make_bf16("a\\nb\\u001b", 64, 64, 0);
    snprintf(path, sizeof path, "%s/odd.safetensors", dir);
    write_safetensors(path, odd, 1);
    run("'%s' compress -q -f '%s'", cli, path);
    snprintf(path, sizeof path, "%s/odd.df11", dir);
    df11_file* f = NULL;
    CHECK(df11_open(path, &f) == DF11_OK);
    if (f) {
      uint64_t index = 99;
      CHECK(df11_find_tensor(f, "a\nb\x1b", &index) == DF11_OK && index == 0);
      uint16_t small[4];
      EXPECT_ERROR(df11_decode_host(f, 0, small, sizeof small, 1), "Usage", "tensor 'a\\nb\\x1b'");
      CHECK(strchr(df11_last_error(), '\n') == NULL && strchr(df11_last_error(), 0x1b) == NULL);
      df11_close(f);
    }
    free(odd[0].bytes);
  }

  /* A path that cannot be examined is named with its real cause. */
  snprintf(path, sizeof path, "%s/loop.df11", dir);
  CHECK(symlink("loop.df11", path) == 0);
  EXPECT_ERROR(df11_open(path, &bad), "Io", strerror(ELOOP));
  EXPECT_ERROR(df11_open(path, &bad), "Io", path);
  {
    char longname[400];
    memset(longname, 'x', 300);
    longname[300] = 0;
    snprintf(path, sizeof path, "%s/%s.df11", dir, longname);
    EXPECT_ERROR(df11_open(path, &bad), "Io", strerror(ENAMETOOLONG));
  }

  /* A FIFO is refused at once, not waited on (no writer will come). */
  snprintf(path, sizeof path, "%s/fifo.df11", dir);
  CHECK(mkfifo(path, 0600) == 0);
  {
    const int r = open_fails_within(path, "Io", "not a regular file", 5);
    if (r < 0) fprintf(stderr, "df11_open on a FIFO still blocked after 5 s\n");
    CHECK(r == 0);
  }
  /* ... and a df11 directory whose manifest is a FIFO. */
  snprintf(path, sizeof path, "%s/fifodir.df11", dir);
  mkdir(path, 0755);
  snprintf(path2, sizeof path2, "%s/fifodir.df11/df11-manifest.json", dir);
  CHECK(mkfifo(path2, 0600) == 0);
  CHECK(open_fails_within(path, "Io", "not a regular file", 5) == 0);

  /* A file cut short after df11_open: decoding is an Io error, not SIGBUS
   * (and so is packing a GPU image, which copies from the mapping).
   * b.weight's sections lie pages past the fixed header, beyond the last page
   * of the cut file (there a load reads zeros; past it, it is SIGBUS). */
  snprintf(path, sizeof path, "%s/cut.df11", dir);
  run("cp '%s' '%s'", model, path);
  df11_file* f = NULL;
  MUST(df11_open(path, &f));
  uint64_t a = 0;
  MUST(df11_find_tensor(f, "b.weight", &a));
  df11_tensor_info info;
  MUST(df11_tensor_info_at(f, a, &info));
  uint8_t* out = (uint8_t*)xmalloc(info.original_bytes);
  MUST(df11_decode_host(f, a, out, info.original_bytes, 2));
  CHECK(truncate(path, 128) == 0);
  EXPECT_ERROR(df11_decode_host(f, a, out, info.original_bytes, 1), "Io", "file shrank while being read");
  EXPECT_ERROR(df11_decode_host(f, a, out, info.original_bytes, 3), "Io", path);
  uint64_t bytes = 0;
  if (df11_image_size(f, &a, 1, &bytes) == DF11_OK) {
    uint8_t* img = (uint8_t*)xmalloc(bytes);
    EXPECT_ERROR(df11_pack_host(f, &a, 1, img, bytes), "Io", "tensor 'b.weight': file shrank while being read");
    free(img);
  }
  free(out);
  df11_close(f);
}

/* c_api_test --decode FILE THREADS: decodes FILE's first tensor and prints
 * the status's name and message (run under limits by thread_refusal_test). */
static int decode_mode(const char* path, unsigned threads) {
  df11_file* f = NULL;
  df11_status s = df11_open(path, &f);
  if (s == DF11_OK) {
    df11_tensor_info info;
    s = df11_tensor_info_at(f, 0, &info);
    void* buf = s == DF11_OK ? malloc(info.original_bytes) : NULL;
    if (buf) s = df11_decode_host(f, 0, buf, info.original_bytes, threads);
    free(buf);
  }
  printf("%s: %s\n", df11_status_name(s), df11_last_error());
  df11_close(f);
  return 0;
}

/* The audit's reproduction: decoding a 16 MB BF16 tensor on 3 threads with
 * thread stacks of 512 MB (glibc sizes them from RLIMIT_STACK, read when a
 * process starts: hence a new process) in 1.3 GB of address space. A thread
 * that cannot start was std::terminate inside df11_decode_host; it is
 * OutOfMemory now, with the threads already started joined. */
static void thread_refusal_test(const char* cli, const char* dir) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  (void)cli, (void)dir;
  printf("SKIPPED: thread refusal under ulimit -v (the sanitizer's shadow memory does not fit it)\n");
#else
  char self[1024], path[2048], out[2048];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) {
    printf("SKIPPED: thread refusal (no /proc/self/exe)\n");
    return;
  }
  self[n] = 0;
  Tensor big = make_bf16("big", 2048, 4096, 0);
  snprintf(path, sizeof path, "%s/big.safetensors", dir);
  write_safetensors(path, &big, 1);
  free(big.bytes);
  run("'%s' compress -q -f '%s'", cli, path);
  snprintf(path, sizeof path, "%s/big.df11", dir);
  snprintf(out, sizeof out, "%s/big.out", dir);
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "(ulimit -v 1300000 && ulimit -s 512000 && exec '%s' --decode '%s' 3) >'%s' 2>&1", self,
           path, out);
  const int st = system(cmd);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0); /* not SIGABRT */
  char line[4096] = "";
  FILE* o = fopen(out, "r");
  if (o) {
    if (!fgets(line, sizeof line, o)) line[0] = 0;
    fclose(o);
  }
  CHECK(strncmp(line, "OutOfMemory: ", 13) == 0);
  CHECK(strstr(line, "big.df11: tensor 'big': cannot start a thread: Resource temporarily unavailable (OutOfMemory)") !=
        NULL);
  if (strncmp(line, "OutOfMemory: ", 13) != 0) fprintf(stderr, "decode under limits: %s", line);
#endif
}

int main(int argc, char** argv) {
  if (argc == 4 && strcmp(argv[1], "--decode") == 0) return decode_mode(argv[2], (unsigned)atoi(argv[3]));
  if (argc < 2) {
    fprintf(stderr, "usage: %s DF11_CLI [WORK_DIR]\n", argv[0]);
    return 2;
  }
  const char* cli = argv[1];
  char dir[1024];
  if (argc > 2) {
    snprintf(dir, sizeof dir, "%s", argv[2]);
    mkdir(dir, 0755);
  } else {
    snprintf(dir, sizeof dir, "/tmp/df11-c-api-XXXXXX");
    if (!mkdtemp(dir)) return 1;
  }
  char path[2048], path2[2048], dpath[2048];

  CHECK(strcmp(df11_version(), "1.0.0") == 0);
  CHECK(df11_c_api_version() == DF11_C_API_VERSION);
  CHECK(strcmp(df11_status_name(DF11_OK), "Ok") == 0);
  CHECK(strcmp(df11_status_name(100000), "Unknown") == 0);
  CHECK(df11_status_exit_code(DF11_OK) == 0);

  Tensor ts[5];
  ts[0] = make_bf16("a.weight", 96, 320, 0);
  ts[1] = make_bf16("b.weight", 130, 257, 0);
  ts[2] = make_bf16("c.const", 20000, 0, 1);
  ts[3] = make_f32("d.norm", 300);
  ts[4] = make_bf16("e.empty", 0, 0, 0);
  const int nts = 5;

  /* A single file. */
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  write_safetensors(path, ts, nts);
  run("'%s' compress -q -f '%s'", cli, path);
  snprintf(path, sizeof path, "%s/model.df11", dir);
  df11_file* f = NULL;
  MUST(df11_open(path, &f));
  check_all_tensors(f, ts, nts, path);
  {
    df11_tensor_info info;
    MUST(df11_tensor_info_at(f, 0, &info));
    CHECK(strcmp(info.shard, "") == 0);
  }

  /* Error paths: code, and a message naming the file (and tensor). */
  df11_file* bad = (df11_file*)1;
  snprintf(path2, sizeof path2, "%s/missing.df11", dir);
  EXPECT_ERROR(df11_open(path2, &bad), "Io", path2);
  CHECK(bad == NULL);
  CHECK(df11_status_exit_code(df11_open(path2, &bad)) == 3);
  snprintf(path2, sizeof path2, "%s/model.safetensors", dir); /* not a .df11 */
  EXPECT_ERROR(df11_open(path2, &bad), "Df11BadMagic", path2);
  EXPECT_ERROR(df11_open(NULL, &bad), "Usage", "df11_open");
  df11_tensor_info info;
  EXPECT_ERROR(df11_tensor_info_at(f, 5, &info), "Usage", path);
  CHECK(df11_status_exit_code(df11_tensor_info_at(f, 99, &info)) == 2);
  uint8_t small[16];
  EXPECT_ERROR(df11_decode_host(f, 0, small, sizeof small, 1), "Usage", "a.weight");
  EXPECT_ERROR(df11_decode_host(f, 0, small, sizeof small, 1), "Usage", path);
  uint64_t index = 0;
  EXPECT_ERROR(df11_find_tensor(f, "no.such.tensor", &index), "Usage", "no.such.tensor");
  EXPECT_ERROR(df11_find_tensor(f, "no.such.tensor", &index), "Usage", path);
  CHECK(df11_tensor_count(NULL) == 0);
  df11_close(NULL);

  input_file_tests(cli, dir, path);
  thread_refusal_test(cli, dir);

  /* A sharded model directory. */
  snprintf(path, sizeof path, "%s/model", dir);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/model/model-00001-of-00002.safetensors", dir);
  write_safetensors(path, ts, 2);
  snprintf(path, sizeof path, "%s/model/model-00002-of-00002.safetensors", dir);
  write_safetensors(path, ts + 2, 3);
  snprintf(path, sizeof path, "%s/model/config.json", dir);
  FILE* cfg = fopen(path, "w");
  if (!cfg) return 1;
  fputs("{\"model_type\":\"test\"}\n", cfg);
  fclose(cfg);
  run("'%s' compress -q -f '%s/model' -o '%s/model.df11'", cli, dir, dir);
  snprintf(dpath, sizeof dpath, "%s/model.df11", dir);
  df11_file* d = NULL;
  MUST(df11_open(dpath, &d));
  check_all_tensors(d, ts, nts, dpath);
  MUST(df11_tensor_info_at(d, 0, &info));
  CHECK(strcmp(info.name, "a.weight") == 0 && strcmp(info.shard, "model-00001-of-00002.df11") == 0);
  MUST(df11_tensor_info_at(d, 4, &info));
  CHECK(strcmp(info.shard, "model-00002-of-00002.df11") == 0);

  /* A shard replaced by another valid container (the shards swapped by
   * name): the manifest's original_xxh64 refuses it (FORMAT.md section 7). */
  run("cp -r '%s/model.df11' '%s/swapped.df11' && cd '%s/swapped.df11' && mv model-00001-of-00002.df11 t && "
      "mv model-00002-of-00002.df11 model-00001-of-00002.df11 && mv t model-00002-of-00002.df11",
      dir, dir, dir);
  snprintf(path, sizeof path, "%s/swapped.df11", dir);
  EXPECT_ERROR(df11_open(path, &bad), "VerifyMismatch", "model-00001-of-00002.df11");
  EXPECT_ERROR(df11_open(path, &bad), "VerifyMismatch", "not the manifest's file");

  /* A container that the manifest does not list (its entry lost): refused,
   * not left out of the tensors without a word (FORMAT.md section 7). */
  run("cp -r '%s/model.df11' '%s/stray.df11' && cp '%s/stray.df11/model-00001-of-00002.df11' '%s/stray.df11/extra.df11'",
      dir, dir, dir, dir);
  snprintf(path, sizeof path, "%s/stray.df11", dir);
  EXPECT_ERROR(df11_open(path, &bad), "VerifyMismatch", "extra.df11");
  EXPECT_ERROR(df11_open(path, &bad), "VerifyMismatch", "the manifest does not list");

  /* A stored file reached through a folder that is a link (here to a folder
   * outside the df11 directory): refused, as decompress refuses it
   * (FORMAT.md section 7; was: followed). */
  run("cp -r '%s/model.df11' '%s/sublink.df11' && mkdir -p '%s/realdir' && "
      "mv '%s/sublink.df11/model-00001-of-00002.df11' '%s/realdir/' && ln -s ../realdir '%s/sublink.df11/sub' && "
      "sed -i 's#\"stored_as\": \"model-00001-of-00002.df11\"#\"stored_as\": \"sub/model-00001-of-00002.df11\"#' "
      "'%s/sublink.df11/df11-manifest.json'",
      dir, dir, dir, dir, dir, dir, dir);
  snprintf(path, sizeof path, "%s/sublink.df11", dir);
  EXPECT_ERROR(df11_open(path, &bad), "DirLinkToDirectory", "'sub'");

  /* Two shards holding the same tensor name. */
  snprintf(path, sizeof path, "%s/dup", dir);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/dup/x.safetensors", dir);
  write_safetensors(path, ts, 2);
  snprintf(path, sizeof path, "%s/dup/y.safetensors", dir);
  write_safetensors(path, ts + 1, 2);
  run("'%s' compress -q -f '%s/dup' -o '%s/dup.df11'", cli, dir, dir);
  snprintf(path, sizeof path, "%s/dup.df11", dir);
  EXPECT_ERROR(df11_open(path, &bad), "DirDuplicateTensor", "b.weight");
  EXPECT_ERROR(df11_open(path, &bad), "DirDuplicateTensor", path);

  /* GPU images. */
  uint64_t idx[3];
  MUST(df11_find_tensor(d, "a.weight", &idx[0]));
  MUST(df11_find_tensor(d, "b.weight", &idx[1]));
  MUST(df11_find_tensor(d, "c.const", &idx[2]));
  uint64_t bytes = 0;
  const df11_status is = df11_image_size(d, idx, 3, &bytes);
  if (is == DF11_OK) {
    CHECK(bytes % 256 == 0);
    uint8_t* img = (uint8_t*)xmalloc(bytes);
    uint8_t* img2 = (uint8_t*)xmalloc(bytes);
    /* Different garbage in the two buffers: every byte of an image, padding
     * included, must be written by the pack, from the file alone. */
    memset(img, 0xA5, bytes);
    memset(img2, 0x5A, bytes);
    MUST(df11_pack_host(d, idx, 3, img, bytes));
    MUST(df11_pack_host(d, idx, 3, img2, bytes));
    CHECK(memcmp(img, img2, bytes) == 0);
    CHECK(memcmp(img, "DF11IMG", 8) == 0);
    /* Position independence: tensor b's part equals b's image alone. */
    df11_image_entry e, e1;
    MUST(df11_image_entry_at(d, idx, 3, 1, &e));
    CHECK(e.offset % 256 == 0 && e.stream % 256 == 0 && e.sm % 256 == 0 && e.block_out % 256 == 0);
    CHECK(e.offset < e.block_out && e.block_out < e.gaps && e.gaps < e.stream && e.stream < e.sm);
    CHECK(e.sm + 130 * 257 <= e.offset + e.bytes);
    uint64_t one = 0;
    MUST(df11_image_size(d, idx + 1, 1, &one));
    MUST(df11_image_entry_at(d, idx + 1, 1, 0, &e1));
    CHECK(e1.bytes == e.bytes && e1.offset + e1.bytes == one);
    memset(img2, 0xC3, bytes);
    MUST(df11_pack_host(d, idx + 1, 1, img2, one));
    CHECK(memcmp(img + e.offset, img2 + e1.offset, e.bytes) == 0);
    /* The sign-mantissa section holds the low bytes' sign and mantissa. */
    const uint8_t* sm = img + e.sm;
    int sm_ok = 1;
    for (uint64_t i = 0; i < 130 * 257; ++i) {
      uint16_t v;
      memcpy(&v, ts[1].bytes + 2 * i, 2);
      if (sm[i] != (uint8_t)(((v >> 8) & 0x80u) | (v & 0x7Fu))) sm_ok = 0;
    }
    CHECK(sm_ok);
    /* Same tensors, same file or directory: the same image. */
    uint64_t fidx[3];
    MUST(df11_find_tensor(f, "a.weight", &fidx[0]));
    MUST(df11_find_tensor(f, "b.weight", &fidx[1]));
    MUST(df11_find_tensor(f, "c.const", &fidx[2]));
    uint64_t fbytes = 0;
    MUST(df11_image_size(f, fidx, 3, &fbytes));
    CHECK(fbytes == bytes);
    memset(img2, 0x3C, bytes);
    MUST(df11_pack_host(f, fidx, 3, img2, bytes));
    CHECK(memcmp(img, img2, bytes) == 0);
    /* Errors. */
    EXPECT_ERROR(df11_pack_host(d, idx, 3, img, bytes - 1), "Usage", dpath);
    uint64_t nonbf16;
    MUST(df11_find_tensor(d, "d.norm", &nonbf16));
    EXPECT_ERROR(df11_image_size(d, &nonbf16, 1, &bytes), "Usage", "d.norm");
    const uint64_t wrong = 77;
    EXPECT_ERROR(df11_image_size(d, &wrong, 1, &bytes), "Usage", dpath);
    EXPECT_ERROR(df11_image_entry_at(d, idx, 3, 3, &e), "Usage", dpath);
    free(img);
    free(img2);
    printf("GPU images: %llu bytes for 3 tensors, position-independent\n", (unsigned long long)bytes);
  } else {
    CHECK(strcmp(df11_status_name(is), "CudaUnavailable") == 0);
    printf("SKIPPED: GPU images (%s)\n", df11_last_error());
  }

  if (df11_gpu_device_count() > 0) {
#ifdef DF11_TEST_CUDA
    gpu_tests(d, ts, nts);
#else
    printf("SKIPPED: GPU decoding (test built without the CUDA runtime)\n");
#endif
  } else {
    df11_gpu* g = NULL;
    const df11_status s = df11_gpu_create(0, NULL, &g);
    CHECK(strcmp(df11_status_name(s), "CudaUnavailable") == 0 && g == NULL);
    printf("SKIPPED: GPU decoding (no CUDA device: %s)\n", df11_last_error());
  }

  df11_close(f);
  df11_close(d);
  for (int i = 0; i < nts; ++i) free(ts[i].bytes);
  if (argc <= 2) run("rm -rf '%s'", dir);
  printf("\n%d checks, %d failures\n", g_checks, g_failures);
  return g_failures ? 1 : 0;
}
