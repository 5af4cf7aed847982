// The calling thread's CUDA context, saved and set back, through the driver
// entry points that cudart itself loads: libdf11.so does not link libcuda, so
// that it still loads (and decodes on the CPU) where there is no driver.
#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_runtime_api.h>

#include "df11_cuda.h"

namespace df11::cuda {
namespace {

struct CtxEntryPoints {
  PFN_cuCtxGetCurrent_v4000 get = nullptr;
  PFN_cuCtxSetCurrent_v4000 set = nullptr;
};

const CtxEntryPoints& ctx_entry_points() {
  static const CtxEntryPoints eps = [] {
    CtxEntryPoints e;
    void* get = nullptr;
    void* set = nullptr;
    cudaDriverEntryPointQueryResult q1 = cudaDriverEntryPointSymbolNotFound, q2 = q1;
    // 4000: the signature these two have had since CUDA 4.0.
    if (cudaGetDriverEntryPointByVersion("cuCtxGetCurrent", &get, 4000, cudaEnableDefault, &q1) == cudaSuccess &&
        cudaGetDriverEntryPointByVersion("cuCtxSetCurrent", &set, 4000, cudaEnableDefault, &q2) == cudaSuccess &&
        q1 == cudaDriverEntryPointSuccess && q2 == cudaDriverEntryPointSuccess && get && set) {
      e.get = reinterpret_cast<PFN_cuCtxGetCurrent_v4000>(get);
      e.set = reinterpret_cast<PFN_cuCtxSetCurrent_v4000>(set);
    } else {
      (void)cudaGetLastError();  // no driver: nothing to save or restore
    }
    return e;
  }();
  return eps;
}

}  // namespace

bool current_context(void** ctx) {
  const CtxEntryPoints& e = ctx_entry_points();
  CUcontext c = nullptr;
  if (!e.get || e.get(&c) != CUDA_SUCCESS) return false;
  *ctx = c;
  return true;
}

bool set_current_context(void* ctx) {
  const CtxEntryPoints& e = ctx_entry_points();
  return e.set && e.set(static_cast<CUcontext>(ctx)) == CUDA_SUCCESS;
}

}  // namespace df11::cuda
