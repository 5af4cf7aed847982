// df11_gpu_bench: the GPU decode benchmark without the CLI.
//   df11_gpu_bench [--synthetic llama-8b-block | --sizes | --shape RxC] [--variant NAME|all] [--reps N] [--json] [--list]
// (--shape: one synthetic RxC matrix, e.g. for a profiler run on that shape alone)
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench.h"
#include "df11_cuda.h"
#include "internal.h"

#ifdef DF11_BENCH_VARIANTS
int df11_bench_variant_count();
bool df11_bench_dump_trace(const std::string& path, unsigned long long blocks);
#endif

using namespace df11;

int main(int argc, char** argv) {
  std::string mode = "llama-8b-block", variant;
  bool json = false, list = false;
  cuda::BenchOptions opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--synthetic" && i + 1 < argc) mode = argv[++i];
    else if (a == "--sizes") mode = "sizes";
    else if (a == "--shape" && i + 1 < argc) mode = std::string("shape:") + argv[++i];
    else if (a == "--variant" && i + 1 < argc) variant = argv[++i];
    else if (a == "--reps" && i + 1 < argc) opt.reps = std::atoi(argv[++i]);
    else if (a == "--device" && i + 1 < argc) opt.device = std::atoi(argv[++i]);
    else if (a == "--batch-only") opt.per_tensor = false;
    else if (a == "--json") json = true;
    else if (a == "--list") list = true;
    else {
      std::fprintf(stderr,
                   "usage: df11_gpu_bench [--synthetic llama-8b-block | --sizes | --shape RxC] [--variant NAME|all] [--reps N]\n"
                   "                      [--device N] [--batch-only] [--json] [--list]\n");
      return 2;
    }
  }
#ifdef DF11_BENCH_VARIANTS
  std::fprintf(stderr, "bench variants compiled in: %d extra\n", df11_bench_variant_count());
#endif
  if (list) {
    for (const auto& v : cuda::detail::variants()) std::printf("%s\n", v.name.c_str());
    return 0;
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

  std::vector<std::string> names;
  if (variant == "all")
    for (const auto& v : cuda::detail::variants()) names.push_back(v.name);
  else
    names.push_back(variant);
  int rc = 0;
  for (const std::string& name : names) {
    opt.variant = name;
#ifdef DF11_BENCH_VARIANTS
    // "+trace" variants: the timeline of each configuration's last launch, to
    // $TRACE_DIR (default .) as trace-<variant>-<configuration>.csv.
    if (name.find("+trace") != std::string::npos)
      opt.after_timing = [name](const std::string& config, uint64_t blocks) {
        const char* dir = std::getenv("TRACE_DIR");
        std::string file = std::string(dir ? dir : ".") + "/trace-" + name + "-" + config.substr(0, config.find(' ')) + ".csv";
        for (char& ch : file) if (ch == '+') ch = '_';
        if (!df11_bench_dump_trace(file, blocks)) std::fprintf(stderr, "could not write %s\n", file.c_str());
      };
    else
      opt.after_timing = nullptr;
#endif
    cuda::BenchResult r;
    const Error e = cuda::run_bench(ts, opt, &r);
    if (e != Error::Ok) {
      std::fprintf(stderr, "bench (%s) failed: %s %s\n", name.c_str(), error_name(e), r.message.c_str());
      rc = 1;
      continue;
    }
    if (json) std::printf("%s\n", cuda::format_json(r).c_str());
    else std::printf("%s\n", cuda::format_table(r).c_str());
    std::fflush(stdout);
  }
  return rc;
}
