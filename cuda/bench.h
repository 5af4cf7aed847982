// GPU decode benchmark (`df11 bench`, and the standalone df11_gpu_bench).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "bf16_codec.h"
#include "df11_errors.h"

namespace df11::cuda {

struct BenchTensor {
  std::string name;
  Bf16View view;  // host sections (validated before upload)
};

struct BenchOptions {
  int device = 0;
  int warmup = 5;        // untimed launches before each measurement
  int reps = 50;         // timed launches; the median is reported
  bool per_tensor = true;   // time each tensor alone as well as the batch
};

struct BenchRow {
  std::string name;            // tensor name, or "batch (k tensors)"
  uint64_t elems = 0;
  uint64_t compressed_bytes = 0;  // stream + sign-mantissa + block_out + gaps
  uint64_t blocks = 0;            // CUDA blocks of the launch
  uint32_t smem_bytes = 0;        // dynamic shared memory per block
  int rotation = 1;               // input/output sets rotated between launches (L2)
  double decode_ms = 0;           // median
  double decode_ms_min = 0;
  double decode_ms_max = 0;
  // Back to back: kB2B launches between one pair of events, per launch (median
  // of several such runs). What a stream of decodes costs each; the difference
  // to decode_ms is the launch and event overhead of an isolated launch.
  double decode_ms_b2b = 0;
  double out_gbps_b2b = 0;
  double out_gbps = 0;            // BF16 bytes written / decode time (GB/s = 1e9 B/s)
  double traffic_gbps = 0;        // (compressed bytes read + BF16 bytes written) / decode time
  double pct_of_copy = 0;         // out_gbps / copy_gbps
  double traffic_pct_of_copy = 0; // traffic_gbps / copy_gbps
  double h2d_ms = 0;              // BF16 bytes host (pinned) -> device, median
  double h2d_gbps = 0;
  double h2d_over_decode = 0;     // h2d_ms / decode_ms
};

struct BenchResult {
  std::string device;
  std::string variant;         // the kernel's name (reports keep the field)
  double copy_gbps = 0;       // device-to-device cudaMemcpyAsync, (read + write) bytes / time
  double copy_ms = 0;
  uint64_t copy_bytes = 0;    // buffer size copied
  std::vector<BenchRow> tensors;
  BenchRow batch;
  std::string message;        // error detail
};

// Uploads the tensors, checks that the GPU output equals the CPU decoder's on
// every tensor (a mismatch returns VerifyMismatch), then times. Needs device
// memory for all tensors plus their outputs (and rotation copies of small ones).
Error run_bench(const std::vector<BenchTensor>& tensors, const BenchOptions& opt, BenchResult* out);

// The 7 weight matrices of one Llama-3-8B layer (q, k, v, o, gate, up, down;
// 218,103,808 weights) from df11::synthetic_weights, encoded with encode_bf16.
struct SyntheticTensor {
  std::string name;
  uint64_t rows = 0, cols = 0;
  EncodedBf16 enc;
};
std::vector<SyntheticTensor> synthetic_llama8b_layer(unsigned threads = 0, uint64_t seed = 1);
SyntheticTensor synthetic_matrix(const std::string& name, uint64_t rows, uint64_t cols, unsigned threads = 0,
                                 uint64_t seed = 1);

std::string format_table(const BenchResult& r);
std::string format_json(const BenchResult& r);

}  // namespace df11::cuda
