#include "bench_command.h"

namespace df11cli {

#ifndef DF11_HAVE_CUDA
df11::Status run_bench(const BenchArgs&, bool, nlohmann::ordered_json*) {
  return {df11::Error::CudaUnavailable, "bench: this df11 was built without CUDA (CudaUnavailable)"};
}
#endif

}  // namespace df11cli
