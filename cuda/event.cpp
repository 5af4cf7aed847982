// cuda::Event: a point in a stream that the host can wait for later without
// holding on to the stream (its owner may destroy it meanwhile).
#include <cuda_runtime_api.h>

#include "df11_cuda.h"
#include "internal.h"

namespace df11::cuda {

Event::~Event() {
  if (ev_) (void)cudaEventDestroy(static_cast<cudaEvent_t>(ev_));
}

Error Event::record(Stream stream) {
  recorded_ = false;  // a failed record leaves nothing to wait for
  if (!ev_) {
    cudaEvent_t e = nullptr;
    if (const cudaError_t rc = cudaEventCreateWithFlags(&e, cudaEventDisableTiming); rc != cudaSuccess)
      return detail::cuda_fail(static_cast<int>(rc), "cudaEventCreateWithFlags");
    ev_ = e;
  }
  if (const cudaError_t rc = cudaEventRecord(static_cast<cudaEvent_t>(ev_), static_cast<cudaStream_t>(stream));
      rc != cudaSuccess)
    return detail::cuda_fail(static_cast<int>(rc), "cudaEventRecord");  // e.g. a stream of another context
  recorded_ = true;
  return Error::Ok;
}

Error Event::wait() {
  if (!recorded_) return Error::Ok;
  // Not pending after this, whatever the answer: an error here is the
  // context's (sticky), and waiting again would only repeat it.
  recorded_ = false;
  if (const cudaError_t rc = cudaEventSynchronize(static_cast<cudaEvent_t>(ev_)); rc != cudaSuccess)
    return detail::cuda_fail(static_cast<int>(rc), "cudaEventSynchronize");
  return Error::Ok;
}

}  // namespace df11::cuda
