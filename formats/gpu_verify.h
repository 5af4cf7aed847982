// GPU decoding for `verify --device`: internal to formats/, a no-op shell
// when df11 is built without CUDA.
#pragma once
#include <memory>
#include <string>

#include "df11.h"

namespace df11 {

class GpuVerifier {
 public:
  GpuVerifier();
  ~GpuVerifier();
  // device: a parse_device value (else its Usage error). "auto" uses a GPU if one
  // is present; "cuda..." fails with CudaUnavailable when none is. One file
  // uses one GPU: "cuda:all" is cuda:0 here (a directory spreads its files
  // over the GPUs, api_dir.cpp).
  Status init(const std::string& device, VerifyReport* rep);
  // The same choice checked alone, before anything is read: CudaUnavailable
  // when it names a GPU (cuda, cuda:N, cuda:all) that is not there, with one
  // message per cause (built without CUDA, no GPU, index past the last).
  static Status require(const std::string& device);
  // CUDA devices visible to this process (0 without CUDA).
  static int device_count();
  bool active() const;
  // Decode BF16 tensor i of `reader` on the GPU into host `out`, check XXH64.
  Status decode(const Reader& reader, size_t i, uint8_t* out, VerifyReport* rep);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace df11
