#include "gpu_verify.h"

#include <charconv>
#include <utility>

#include "file_io.h"

namespace df11 {

namespace {

// N of cuda:N. from_chars alone would take a '-' and leading zeros.
bool parse_index(const std::string& digits, int* index) {
  if (digits.empty() || digits[0] < '0' || digits[0] > '9' || (digits[0] == '0' && digits.size() > 1)) return false;
  const char* end = digits.data() + digits.size();
  const auto [at, ec] = std::from_chars(digits.data(), end, *index);
  return ec == std::errc() && at == end;
}

}  // namespace

Status parse_device(const std::string& text, DeviceChoice* out) {
  using Kind = DeviceChoice::Kind;
  static const std::pair<const char*, Kind> kWords[] = {
      {"auto", Kind::Auto}, {"cpu", Kind::Cpu}, {"cuda", Kind::Cuda}, {"cuda:all", Kind::CudaAll}};
  for (const auto& [word, kind] : kWords) {
    if (text == word) {
      *out = {kind, 0};
      return Status::Ok();
    }
  }
  int index = 0;
  if (text.rfind("cuda:", 0) == 0 && parse_index(text.substr(5), &index)) {
    *out = {Kind::CudaIndex, index};
    return Status::Ok();
  }
  return make_status(Error::Usage, "--device", std::string("expected ") + kDeviceValues + ", got '" + text + "'");
}

#ifndef DF11_HAVE_CUDA
struct GpuVerifier::Impl {};
GpuVerifier::GpuVerifier() = default;
GpuVerifier::~GpuVerifier() = default;
bool GpuVerifier::active() const { return false; }
int GpuVerifier::device_count() { return 0; }

Status GpuVerifier::require(const std::string& device) {
  DeviceChoice choice;
  const Status s = parse_device(device, &choice);
  if (!s.ok() || choice.kind == DeviceChoice::Kind::Auto || choice.kind == DeviceChoice::Kind::Cpu) return s;
  return make_status(Error::CudaUnavailable, "--device " + device, "this df11 was built without CUDA");
}

Status GpuVerifier::init(const std::string& device, VerifyReport* rep) {
  const Status s = require(device);
  if (s.ok()) rep->device = "cpu";
  return s;
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

Status GpuVerifier::require(const std::string& device) {
  DeviceChoice choice;
  const Status s = parse_device(device, &choice);
  if (!s.ok() || choice.kind == DeviceChoice::Kind::Auto || choice.kind == DeviceChoice::Kind::Cpu) return s;
  const int count = cuda::device_count();
  if (count == 0) return make_status(Error::CudaUnavailable, "--device " + device, "no CUDA GPU is available");
  if (choice.kind != DeviceChoice::Kind::CudaAll && choice.index >= count)
    return make_status(Error::CudaUnavailable, "--device " + device,
                       "only " + std::to_string(count) + " CUDA device(s) present");
  return Status::Ok();
}

Status GpuVerifier::init(const std::string& device, VerifyReport* rep) {
  DeviceChoice choice;
  Status s = parse_device(device, &choice);
  if (!s.ok()) return s;
  if (choice.kind == DeviceChoice::Kind::Cpu ||
      (choice.kind == DeviceChoice::Kind::Auto && cuda::device_count() == 0)) {
    rep->device = "cpu";
    return Status::Ok();
  }
  if (s = require(device); !s.ok()) return s;
  const int index = choice.index;
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
  // The upload copies the sections from the mapping.
  if (Status s = reader.check_mapped(i); !s.ok()) return s;
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
