// df11_gpu_bench: the GPU decode benchmark without the CLI.
//   df11_gpu_bench [--synthetic llama-8b-block | --sizes | --shape RxC] [--reps N] [--json]
// (--shape: one synthetic RxC matrix, e.g. for a profiler run on that shape alone)
// The kernel variants it compared until issue 12 (bench_variants.cu, the
// round-1 kernels) are in git history; it now times the production kernel.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench.h"
#include "df11_cuda.h"

using namespace df11;

int main(int argc, char** argv) {
  std::string mode = "llama-8b-block";
  bool json = false;
  cuda::BenchOptions opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--synthetic" && i + 1 < argc) mode = argv[++i];
    else if (a == "--sizes") mode = "sizes";
    else if (a == "--shape" && i + 1 < argc) mode = std::string("shape:") + argv[++i];
    else if (a == "--reps" && i + 1 < argc) opt.reps = std::atoi(argv[++i]);
    else if (a == "--device" && i + 1 < argc) opt.device = std::atoi(argv[++i]);
    else if (a == "--batch-only") opt.per_tensor = false;
    else if (a == "--json") json = true;
    else {
      std::fprintf(stderr,
                   "usage: df11_gpu_bench [--synthetic llama-8b-block | --sizes | --shape RxC] [--reps N]\n"
                   "                      [--device N] [--batch-only] [--json]\n");
      return 2;
    }
  }
  if (cuda::device_count() == 0) {
    std::fprintf(stderr, "no CUDA device\n");
    return 3;
  }
  std::vector<cuda::SyntheticTensor> syn;
  if (mode == "llama-8b-block") {
    syn = cuda::synthetic_llama8b_layer();
  } else if (mode == "sizes") {
    const std::pair<uint64_t, uint64_t> sizes[] = {{256, 4096}, {1024, 4096}, {4096, 4096}, {4096, 14336}, {8192, 28672}};
    uint64_t seed = 7;
    for (const auto& s : sizes)
      syn.push_back(cuda::synthetic_matrix(std::to_string(s.first) + "x" + std::to_string(s.second), s.first,
                                           s.second, 0, seed++));
  } else if (mode.rfind("shape:", 0) == 0) {
    const std::string rc = mode.substr(6);
    char* endp = nullptr;
    const unsigned long long rows = std::strtoull(rc.c_str(), &endp, 10);
    const unsigned long long cols = (endp && *endp == 'x') ? std::strtoull(endp + 1, &endp, 10) : 0;
    if (rows == 0 || cols == 0 || !endp || *endp != '\0') {
      std::fprintf(stderr, "--shape wants ROWSxCOLS, got %s\n", rc.c_str());
      return 2;
    }
    syn.push_back(cuda::synthetic_matrix(rc, rows, cols, 0, 10));
  } else {
    std::fprintf(stderr, "unknown --synthetic %s (llama-8b-block)\n", mode.c_str());
    return 2;
  }
  std::vector<cuda::BenchTensor> ts;
  for (const auto& s : syn) ts.push_back({s.name, view_of(s.enc)});

  cuda::BenchResult r;
  const Error e = cuda::run_bench(ts, opt, &r);
  if (e != Error::Ok) {
    std::fprintf(stderr, "bench failed: %s %s\n", error_name(e), r.message.c_str());
    return 1;
  }
  if (json) std::printf("%s\n", cuda::format_json(r).c_str());
  else std::printf("%s\n", cuda::format_table(r).c_str());
  return 0;
}
