#include "gpu_verify.h"

#include "file_io.h"

namespace df11 {

#ifndef DF11_HAVE_CUDA
struct GpuVerifier::Impl {};
GpuVerifier::GpuVerifier() = default;
GpuVerifier::~GpuVerifier() = default;
bool GpuVerifier::active() const { return false; }
int GpuVerifier::device_count() { return 0; }

Status GpuVerifier::init(const std::string& device, VerifyReport* rep) {
  if (device == "auto" || device == "cpu") {
    rep->device = "cpu";
    return Status::Ok();
  }
  if (device == "cuda" || device.rfind("cuda:", 0) == 0)
    return make_status(Error::CudaUnavailable, "--device " + device, "this df11 was built without CUDA");
  return make_status(Error::Usage, "--device", "expected auto, cpu, cuda, cuda:N or cuda:all, got '" + device + "'");
}

Status GpuVerifier::decode(const Reader&, size_t, uint8_t*, VerifyReport*) {
  return {Error::CudaUnavailable, "built without CUDA"};
}
#endif

}  // namespace df11

#ifdef DF11_HAVE_CUDA
#include <chrono>
#include <cstring>

#include "df11_cuda.h"
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace df11 {

struct GpuVerifier::Impl {
  bool active = false;
};

GpuVerifier::GpuVerifier() : impl_(new Impl) {}
GpuVerifier::~GpuVerifier() = default;
bool GpuVerifier::active() const { return impl_->active; }
int GpuVerifier::device_count() { return cuda::device_count(); }

Status GpuVerifier::init(const std::string& device, VerifyReport* rep) {
  if (device == "cpu") {
    rep->device = "cpu";
    return Status::Ok();
  }
  int index = 0;
  if (device.rfind("cuda:", 0) == 0 && device != "cuda:all") {
    const std::string num = device.substr(5);
    if (num.empty() || num.find_first_not_of("0123456789") != std::string::npos || num.size() > 4)
      return make_status(Error::Usage, "--device", "expected auto, cpu, cuda, cuda:N or cuda:all, got '" + device + "'");
    index = std::stoi(num);
  } else if (device != "auto" && device != "cuda" && device != "cuda:all") {
    return make_status(Error::Usage, "--device", "expected auto, cpu, cuda, cuda:N or cuda:all, got '" + device + "'");
  }
  const int count = cuda::device_count();
  if (count == 0) {
    if (device == "auto") {
      rep->device = "cpu";
      return Status::Ok();
    }
    return make_status(Error::CudaUnavailable, "--device " + device, "no CUDA GPU is available");
  }
  if (index >= count)
    return make_status(Error::CudaUnavailable, "--device " + device,
                       "only " + std::to_string(count) + " CUDA device(s) present");
  if (cuda::set_device(index) != Error::Ok)
    return make_status(Error::CudaError, "--device " + device, cuda::last_cuda_error());
  rep->device = "cuda:" + std::to_string(index) + " (" + cuda::device_name(index) + ")";
  impl_->active = true;
  return Status::Ok();
}

// One tensor at a time is on the device (its sections, tables and output), so
// models larger than GPU memory are verified in pieces that fit.
Status GpuVerifier::decode(const Reader& reader, size_t i, uint8_t* out, VerifyReport* rep) {
  const ReaderTensor& t = reader.tensors().at(i);
  auto fail = [&](Error e, const std::string& what) {
    return make_status(e, reader.path(), "tensor '" + t.name + "': " + what);
  };
  cuda::DeviceTensor dt;
  Error e = cuda::upload(t.bf16, &dt, nullptr);
  if (e == Error::Ok) e = cuda::synchronize(nullptr);
  if (e != Error::Ok) return fail(e, e == Error::CudaError ? cuda::last_cuda_error() : "invalid sections");
  cuda::DeviceBuffer outbuf;
  if (outbuf.allocate(t.orig_size) != Error::Ok) return fail(Error::CudaError, cuda::last_cuda_error());
  const auto t0 = std::chrono::steady_clock::now();
  e = cuda::decode_one(dt, outbuf.as<uint16_t>(), nullptr);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (e != Error::Ok) return fail(e, e == Error::CudaError ? cuda::last_cuda_error() : "exponent stream does not decode consistently");
  rep->decode_seconds += secs;
  rep->decoded_bytes += t.orig_size;
  e = cuda::copy_to_host(out, outbuf.data(), t.orig_size, nullptr);
  if (e == Error::Ok) e = cuda::synchronize(nullptr);
  if (e != Error::Ok) return fail(e, cuda::last_cuda_error());
  if (XXH64(out, t.orig_size, 0) != t.orig_xxh64) return fail(Error::Df11TensorChecksum, "XXH64 of decoded bytes differs");
  return Status::Ok();
}

}  // namespace df11
#endif
