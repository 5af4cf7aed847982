// make_bench_file OUT.safetensors [--mib N] [--seed N]
// One synthetic BF16 safetensors file of about N MiB (default 1024), made of
// 4096-wide matrices with realistic statistics, for the CPU benchmarks.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "safetensors_writer.h"
#include "synthetic.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s OUT.safetensors [--mib N] [--seed N]\n", argv[0]);
    return 2;
  }
  uint64_t mib = 1024, seed = 7;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--mib")) mib = std::strtoull(argv[i + 1], nullptr, 10);
    else if (!std::strcmp(argv[i], "--seed")) seed = std::strtoull(argv[i + 1], nullptr, 10);
    else return 2;
  }
  const uint64_t cols = 4096, rows_per = 4096;  // 32 MiB per matrix
  const uint64_t matrices = (mib + 31) / 32;
  std::vector<df11test::StEntry> entries;
  for (uint64_t m = 0; m < matrices; ++m) {
    std::vector<uint16_t> w(rows_per * cols);
    df11::synthetic_weights(w.data(), rows_per, cols, seed + m, 0.02, 0);
    df11test::StEntry e{"layers." + std::to_string(m) + ".weight", "BF16", {rows_per, cols}, {}};
    e.bytes.resize(w.size() * 2);
    std::memcpy(e.bytes.data(), w.data(), e.bytes.size());
    entries.push_back(std::move(e));
  }
  df11test::write_safetensors(argv[1], entries, R"({"format":"pt"})");
  return 0;
}
