#include "gpu_verify.h"

#include "file_io.h"

namespace df11 {

#ifndef DF11_HAVE_CUDA
struct GpuVerifier::Impl {};
GpuVerifier::GpuVerifier() = default;
GpuVerifier::~GpuVerifier() = default;
bool GpuVerifier::active() const { return false; }

Status GpuVerifier::init(const std::string& device, VerifyReport* rep) {
  if (device == "auto" || device == "cpu") {
    rep->device = "cpu";
    return Status::Ok();
  }
  if (device == "cuda" || device.rfind("cuda:", 0) == 0)
    return make_status(Error::CudaUnavailable, "--device " + device, "this df11 was built without CUDA");
  return make_status(Error::Usage, "--device", "expected auto, cpu, cuda or cuda:N, got '" + device + "'");
}

Status GpuVerifier::decode(const Reader&, size_t, uint8_t*, VerifyReport*) {
  return {Error::CudaUnavailable, "built without CUDA"};
}
#endif

}  // namespace df11
