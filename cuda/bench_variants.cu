// Extra kernel variants for df11_gpu_bench only (built for sm_90 alone, when
// DF11_CUDA_BENCH_VARIANTS is ON), so that one device call can compare them.
#include <cstdio>
#include <string>
#include <vector>

#include "decode_loop.cuh"
#include "internal.h"

namespace {
using namespace df11::cuda::detail;
template <int P, bool kSmem, int kMin = 1, bool kTimed = false, int kDiag = 0, bool kTrace = false,
          int kPrefetchAt = kPrefetchByWave, int kOpt = kLoopOpt>
int reg_loop(const char* name) {
  using L = LoopLayout<P, kSmem>;
  return register_variant(name, &decode_loop_kernel<P, kSmem, kMin, kTimed, kDiag, kTrace, kPrefetchAt, kOpt>, L::kFixed,
                          false, 64 * P, L::kPass1Bytes);
}
const int kRegistered[] = {
    reg_loop<4, false>("loop4+ldg"),
    reg_loop<4, false, 5>("loop4+ldg+lb5"),
    reg_loop<4, true, 1>("loop4+smem+lb1"),  // no register bound: 56 registers, 4 blocks per SM
    reg_loop<2, true>("loop2+smem"),
    reg_loop<4, true, 1, true>("loop4+timed"),  // prints per-phase cycles of sampled blocks
    reg_loop<4, true, kLoopMinBlocks, false, 0, true>("loop4+trace"),
    // Round 6: the sign-mantissa prefetch after the prologue / after pass 1 for every block.
    reg_loop<4, true, kLoopMinBlocks, false, 0, false, kPrefetchEarly>("loop4+pf-early"),
    reg_loop<4, true, kLoopMinBlocks, false, 0, false, kPrefetchLate>("loop4+pf-late"),
    // Round 7, the ladder up to production (kLoopOpt adds kOptInline to the last):
    // two lookups per bit-reader sync in pass 1 / pass 2 / both, + the first-word walks.
    reg_loop<4, true, kLoopMinBlocks, false, 0, false, kPrefetchByWave, kOptPair1>("loop4+pair1"),
    reg_loop<4, true, kLoopMinBlocks, false, 0, false, kPrefetchByWave, kOptPair2>("loop4+pair2"),
    reg_loop<4, true, kLoopMinBlocks, false, 0, false, kPrefetchByWave, kOptPair1 | kOptPair2>("loop4+pair"),
    reg_loop<4, true, kLoopMinBlocks, false, 0, false, kPrefetchByWave, kOptPair1 | kOptPair2 | kOptWalk>("loop4+pair+walk"),
    // Wrong output on purpose (df11_gpu_bench does not check "diag-" variants):
    // pass 2 without its stores, with a computed entry instead of the table, both.
    reg_loop<4, true, 1, true, 1>("diag-nostore"),
    reg_loop<4, true, 1, true, 2>("diag-nolut"),
    reg_loop<4, true, 1, true, 3>("diag-nostore-nolut"),
};
}  // namespace

// Referenced from bench_main.cpp so that the linker keeps this object.
int df11_bench_variant_count() { return static_cast<int>(sizeof(kRegistered) / sizeof(kRegistered[0])); }

// The timeline of the last launch of a "+trace" variant, one CSV line per block
// (times in ns from the launch's first block start). False if there is none.
bool df11_bench_dump_trace(const std::string& path, unsigned long long blocks) {
  if (blocks > kTraceBlocks) blocks = kTraceBlocks;
  std::vector<unsigned long long> t(blocks * 7);
  if (cudaMemcpyFromSymbol(t.data(), g_trace<0>, t.size() * sizeof(t[0])) != cudaSuccess) return false;
  unsigned long long t0 = ~0ull;
  for (unsigned long long b = 0; b < blocks; ++b) t0 = t[7 * b + 1] < t0 ? t[7 * b + 1] : t0;
  FILE* f = std::fopen(path.c_str(), "w");
  if (!f) return false;
  std::fprintf(f, "block,sm,start,stream_in,prologue_end,scan_end,pass2_end,end\n");
  for (unsigned long long b = 0; b < blocks; ++b) {
    const unsigned long long* r = &t[7 * b];
    std::fprintf(f, "%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu\n", b, r[0], r[1] - t0, r[2] - t0, r[3] - t0,
                 r[4] - t0, r[5] - t0, r[6] - t0);
  }
  return std::fclose(f) == 0;
}
