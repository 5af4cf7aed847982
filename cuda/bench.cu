// GPU decode benchmark: decode time (CUDA events, median), BF16 output rate,
// the device-to-device copy ceiling measured in the same call, and the time of
// the plain BF16 host->device copy that decoding on the GPU replaces.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <sstream>
#include <thread>
#include <vector>

#include <cuda_runtime.h>

#include "bench.h"
#include "df11_cuda.h"
#include "internal.h"
#include "synthetic.h"

namespace df11::cuda {

namespace {

Error ck(cudaError_t e, const char* what) {
  return e == cudaSuccess ? Error::Ok : detail::cuda_fail(static_cast<int>(e), what);
}

#define DF11_TRY(expr)                         \
  do {                                         \
    const ::df11::Error df11_e_ = (expr);      \
    if (df11_e_ != ::df11::Error::Ok) return df11_e_; \
  } while (0)

struct Events {
  std::vector<cudaEvent_t> ev;
  ~Events() {
    for (cudaEvent_t e : ev) cudaEventDestroy(e);
  }
  Error make(size_t n) {
    ev.resize(n, nullptr);
    for (auto& e : ev) DF11_TRY(ck(cudaEventCreate(&e), "cudaEventCreate"));
    return Error::Ok;
  }
};

struct PinnedBuffer {
  void* p = nullptr;
  ~PinnedBuffer() {
    if (p) cudaFreeHost(p);
  }
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

// Times `body(rep)` enqueued reps times (after warmup) with one event pair each.
template <typename Body>
Error time_reps(int warmup, int reps, cudaStream_t s, Body&& body, std::vector<double>* ms) {
  for (int r = 0; r < warmup; ++r) DF11_TRY(body(r));
  Events ev;
  DF11_TRY(ev.make(2 * static_cast<size_t>(reps)));
  for (int r = 0; r < reps; ++r) {
    DF11_TRY(ck(cudaEventRecord(ev.ev[2 * r], s), "cudaEventRecord"));
    DF11_TRY(body(r));
    DF11_TRY(ck(cudaEventRecord(ev.ev[2 * r + 1], s), "cudaEventRecord"));
  }
  DF11_TRY(ck(cudaStreamSynchronize(s), "cudaStreamSynchronize"));
  ms->clear();
  for (int r = 0; r < reps; ++r) {
    float t = 0;
    DF11_TRY(ck(cudaEventElapsedTime(&t, ev.ev[2 * r], ev.ev[2 * r + 1]), "cudaEventElapsedTime"));
    ms->push_back(t);
  }
  return Error::Ok;
}

uint64_t compressed_bytes(const Bf16View& v) {
  const Bf16Geometry& g = v.geom;
  return 4 * g.stream_words() + g.n + 8 * g.block_out_entries() + g.gap_bytes();
}

// One timed configuration: a set of tensors decoded in one launch, rotated over
// `rotation` copies of inputs and outputs so that consecutive launches miss L2.
struct Config {
  std::vector<std::vector<DeviceTensor>> inputs;   // [rotation][tensor]
  std::vector<std::vector<DeviceBuffer>> outputs;  // [rotation][tensor]
  std::vector<Workspace> ws;                       // [rotation]
};

Error build_config(const std::vector<const BenchTensor*>& ts, int rotation, cudaStream_t s,
                   Config* c) {
  c->inputs.resize(rotation);
  c->outputs.resize(rotation);
  c->ws.resize(rotation);
  for (int r = 0; r < rotation; ++r) {
    c->inputs[r].resize(ts.size());
    c->outputs[r].resize(ts.size());
    std::vector<const DeviceTensor*> tp;
    std::vector<uint16_t*> op;
    for (size_t i = 0; i < ts.size(); ++i) {
      DF11_TRY(upload(ts[i]->view, &c->inputs[r][i], s));
      DF11_TRY(c->outputs[r][i].allocate(std::max<uint64_t>(2, ts[i]->view.geom.n * 2)));
      DF11_TRY(fill_device(c->outputs[r][i].data(), 0xFF, c->outputs[r][i].size(), s));
      tp.push_back(&c->inputs[r][i]);
      op.push_back(c->outputs[r][i].as<uint16_t>());
    }
    DF11_TRY(prepare(tp.data(), op.data(), tp.size(), &c->ws[r], s));
  }
  return synchronize(s);
}

Error time_config(const std::vector<const BenchTensor*>& ts, const std::string& name, const BenchOptions& opt,
                  uint64_t l2_bytes, double copy_gbps, cudaStream_t s,
                  const std::vector<std::vector<uint16_t>>* expect, BenchRow* row) {
  uint64_t elems = 0, comp = 0;
  for (const BenchTensor* t : ts) {
    elems += t->view.geom.n;
    comp += compressed_bytes(t->view);
  }
  const uint64_t set_bytes = comp + 2 * elems;
  const int rotation = static_cast<int>(std::clamp<uint64_t>((3 * l2_bytes + set_bytes - 1) / std::max<uint64_t>(set_bytes, 1), 1, 16));
  Config c;
  DF11_TRY(build_config(ts, rotation, s, &c));
  row->name = name;
  row->elems = elems;
  row->compressed_bytes = comp;
  row->rotation = rotation;
  const detail::PlanInfo pi = detail::plan_info(c.ws[0]);
  row->blocks = pi.blocks;
  row->smem_bytes = pi.smem_bytes;

  // Correctness of this very launch configuration first (all rotation sets).
  for (int r = 0; r < rotation; ++r) {
    DF11_TRY(launch(c.ws[r], s));
    DF11_TRY(read_status(c.ws[r], s));
  }
  if (expect) {
    std::vector<uint16_t> got;
    for (int r = 0; r < rotation; ++r)
      for (size_t i = 0; i < ts.size(); ++i) {
        got.resize(ts[i]->view.geom.n);
        DF11_TRY(copy_to_host(got.data(), c.outputs[r][i].data(), got.size() * 2, s));
        DF11_TRY(synchronize(s));
        if (got != (*expect)[i]) return Error::VerifyMismatch;
      }
  }

  std::vector<double> ms;
  DF11_TRY(time_reps(opt.warmup, opt.reps, s, [&](int r) { return launch(c.ws[r % rotation], s); }, &ms));
  for (int r = 0; r < rotation; ++r) DF11_TRY(read_status(c.ws[r], s));
  row->decode_ms = median(ms);
  row->decode_ms_min = *std::min_element(ms.begin(), ms.end());
  row->decode_ms_max = *std::max_element(ms.begin(), ms.end());
  {
    constexpr int kB2B = 20;
    std::vector<double> runs;
    DF11_TRY(time_reps(1, std::max(3, opt.reps / 10), s,
                       [&](int r) {
                         for (int k = 0; k < kB2B; ++k) DF11_TRY(launch(c.ws[(r * kB2B + k) % rotation], s));
                         return Error::Ok;
                       },
                       &runs));
    for (int r = 0; r < rotation; ++r) DF11_TRY(read_status(c.ws[r], s));
    row->decode_ms_b2b = median(runs) / kB2B;
    row->out_gbps_b2b = 2.0 * elems / (row->decode_ms_b2b * 1e-3) / 1e9;
  }
  const double sec = row->decode_ms * 1e-3;
  row->out_gbps = 2.0 * elems / sec / 1e9;
  row->traffic_gbps = (2.0 * elems + comp) / sec / 1e9;
  row->pct_of_copy = 100.0 * row->out_gbps / copy_gbps;
  row->traffic_pct_of_copy = 100.0 * row->traffic_gbps / copy_gbps;

  // Plain BF16 host (pinned) -> device copy of the same bytes.
  PinnedBuffer host;
  DF11_TRY(ck(cudaMallocHost(&host.p, 2 * elems), "cudaMallocHost"));
  std::memset(host.p, 0x5A, 2 * elems);
  DeviceBuffer dst;
  DF11_TRY(dst.allocate(2 * elems));
  std::vector<double> h2d;
  DF11_TRY(time_reps(2, std::max(3, opt.reps / 5), s,
                     [&](int) {
                       return ck(cudaMemcpyAsync(dst.data(), host.p, 2 * elems, cudaMemcpyHostToDevice, s),
                                 "cudaMemcpyAsync(HtoD)");
                     },
                     &h2d));
  row->h2d_ms = median(h2d);
  row->h2d_gbps = 2.0 * elems / (row->h2d_ms * 1e-3) / 1e9;
  row->h2d_over_decode = row->h2d_ms / row->decode_ms;
  return Error::Ok;
}

}  // namespace

Error run_bench(const std::vector<BenchTensor>& tensors, const BenchOptions& opt, BenchResult* out) {
  if (!out || tensors.empty() || opt.reps < 1) return Error::Usage;
  *out = BenchResult{};
  if (device_count() == 0) {
    out->message = "no CUDA device";
    return Error::CudaUnavailable;
  }
  DF11_TRY(set_device(opt.device));
  cudaDeviceProp prop;
  DF11_TRY(ck(cudaGetDeviceProperties(&prop, opt.device), "cudaGetDeviceProperties"));
  out->device = prop.name;
  out->variant = "loop4+smem";  // the one kernel (decode_loop_kernel<4, true>)
  for (const BenchTensor& t : tensors)
    if (const Error e = validate_bf16(t.view); e != Error::Ok) {
      out->message = "tensor " + t.name + " is invalid: " + error_name(e);
      return e;
    }

  cudaStream_t s = nullptr;
  DF11_TRY(ck(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate"));
  struct StreamGuard {
    cudaStream_t s;
    ~StreamGuard() { cudaStreamDestroy(s); }
  } guard{s};

  // Copy ceiling: one large device-to-device copy, counting bytes read + written.
  {
    const uint64_t bytes = 1ull << 30;
    DeviceBuffer a, b;
    DF11_TRY(a.allocate(bytes));
    DF11_TRY(b.allocate(bytes));
    DF11_TRY(fill_device(a.data(), 0x3C, bytes, s));
    std::vector<double> ms;
    DF11_TRY(time_reps(3, 20, s,
                       [&](int) {
                         return ck(cudaMemcpyAsync(b.data(), a.data(), bytes, cudaMemcpyDeviceToDevice, s),
                                   "cudaMemcpyAsync(DtoD)");
                       },
                       &ms));
    out->copy_ms = median(ms);
    out->copy_bytes = bytes;
    out->copy_gbps = 2.0 * bytes / (out->copy_ms * 1e-3) / 1e9;
  }

  // CPU reference outputs.
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::vector<uint16_t>> expect(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    expect[i].resize(tensors[i].view.geom.n);
    if (const Error e = decode_bf16(tensors[i].view, expect[i].data(), threads); e != Error::Ok) {
      out->message = "CPU decode of " + tensors[i].name + " failed: " + error_name(e);
      return e;
    }
  }

  const uint64_t l2 = static_cast<uint64_t>(prop.l2CacheSize);
  if (opt.per_tensor) {
    for (size_t i = 0; i < tensors.size(); ++i) {
      BenchRow row;
      std::vector<std::vector<uint16_t>> one{expect[i]};
      const Error e = time_config({&tensors[i]}, tensors[i].name, opt, l2, out->copy_gbps, s, &one, &row);
      if (e != Error::Ok) {
        out->message = "tensor " + tensors[i].name + ": " + error_name(e) + " " + last_cuda_error();
        return e;
      }
      out->tensors.push_back(row);
    }
  }
  std::vector<const BenchTensor*> all;
  for (const BenchTensor& t : tensors) all.push_back(&t);
  const Error e = time_config(all, "batch (" + std::to_string(tensors.size()) + " tensors, 1 launch)", opt,
                              l2, out->copy_gbps, s, &expect, &out->batch);
  if (e != Error::Ok) {
    out->message = std::string("batch: ") + error_name(e) + " " + last_cuda_error();
    return e;
  }
  return Error::Ok;
}

SyntheticTensor synthetic_matrix(const std::string& name, uint64_t rows, uint64_t cols, unsigned threads,
                                 uint64_t seed) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  SyntheticTensor t;
  t.name = name;
  t.rows = rows;
  t.cols = cols;
  std::vector<uint16_t> w(rows * cols);
  synthetic_weights(w.data(), rows, cols, seed, 0.02, threads);
  t.enc = encode_bf16(w.data(), w.size(), threads);
  return t;
}

std::vector<SyntheticTensor> synthetic_llama8b_layer(unsigned threads, uint64_t seed) {
  struct Shape {
    const char* name;
    uint64_t rows, cols;
  };
  const Shape shapes[] = {{"self_attn.q_proj", 4096, 4096},  {"self_attn.k_proj", 1024, 4096},
                          {"self_attn.v_proj", 1024, 4096},  {"self_attn.o_proj", 4096, 4096},
                          {"mlp.gate_proj", 14336, 4096},    {"mlp.up_proj", 14336, 4096},
                          {"mlp.down_proj", 4096, 14336}};
  std::vector<SyntheticTensor> out;
  uint64_t i = 0;
  for (const Shape& s : shapes) out.push_back(synthetic_matrix(s.name, s.rows, s.cols, threads, seed * 100 + i++));
  return out;
}

namespace {

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

void table_row(std::ostringstream& o, const BenchRow& r) {
  char b[512];
  std::snprintf(b, sizeof b, "%-34s %11llu %9.1f %8.3f %8.1f %6.1f%% %8.1f %6.1f%% %8.3f %6.2fx %4d %7u %8.4f %8.1f\n",
                r.name.c_str(), static_cast<unsigned long long>(r.elems), r.compressed_bytes / 1e6, r.decode_ms,
                r.out_gbps, r.pct_of_copy, r.traffic_gbps, r.traffic_pct_of_copy, r.h2d_ms, r.h2d_over_decode,
                r.rotation, r.smem_bytes, r.decode_ms_b2b, r.out_gbps_b2b);
  o << b;
}

void json_row(std::ostringstream& o, const BenchRow& r) {
  std::string name;
  for (char c : r.name) {
    if (c == '"' || c == '\\') name += '\\';
    name += c;
  }
  o << "{\"name\":\"" << name << "\",\"elems\":" << r.elems << ",\"compressed_bytes\":" << r.compressed_bytes
    << ",\"blocks\":" << r.blocks << ",\"smem_bytes\":" << r.smem_bytes << ",\"rotation\":" << r.rotation
    << ",\"decode_ms\":" << fmt("%.6f", r.decode_ms) << ",\"decode_ms_min\":" << fmt("%.6f", r.decode_ms_min)
    << ",\"decode_ms_max\":" << fmt("%.6f", r.decode_ms_max) << ",\"decode_ms_b2b\":" << fmt("%.6f", r.decode_ms_b2b)
    << ",\"out_gbps_b2b\":" << fmt("%.2f", r.out_gbps_b2b) << ",\"out_gbps\":" << fmt("%.2f", r.out_gbps)
    << ",\"traffic_gbps\":" << fmt("%.2f", r.traffic_gbps) << ",\"pct_of_copy\":" << fmt("%.2f", r.pct_of_copy)
    << ",\"traffic_pct_of_copy\":" << fmt("%.2f", r.traffic_pct_of_copy) << ",\"h2d_ms\":" << fmt("%.6f", r.h2d_ms)
    << ",\"h2d_gbps\":" << fmt("%.2f", r.h2d_gbps) << ",\"h2d_over_decode\":" << fmt("%.3f", r.h2d_over_decode)
    << "}";
}

}  // namespace

std::string format_table(const BenchResult& r) {
  std::ostringstream o;
  o << "device: " << r.device << "   kernel: " << r.variant << "\n";
  o << "copy ceiling (D2D memcpy of " << (r.copy_bytes >> 20) << " MiB, read+write): " << fmt("%.1f", r.copy_gbps)
    << " GB/s\n";
  char h[512];
  std::snprintf(h, sizeof h, "%-34s %11s %9s %8s %8s %7s %8s %7s %8s %7s %4s %7s %8s %8s\n", "tensor", "weights",
                "comp_MB", "dec_ms", "out_GB/s", "%copy", "io_GB/s", "%copy", "h2d_ms", "h2d/dec", "rot", "smem",
                "b2b_ms", "b2b_GB/s");
  o << h;
  for (const BenchRow& t : r.tensors) table_row(o, t);
  table_row(o, r.batch);
  o << "out_GB/s: BF16 bytes written per second; io_GB/s adds the compressed bytes read; %copy: of the copy "
       "ceiling.\nh2d_ms: copying the same BF16 bytes from pinned host memory; h2d/dec: how many times longer "
       "that takes than decoding.\ndec_ms: median of single launches, each between its own pair of events; b2b_ms: "
       "per launch of 20 launched back to back (the launch and event overhead of an isolated launch excluded).\n";
  return o.str();
}

std::string format_json(const BenchResult& r) {
  std::ostringstream o;
  o << "{\"device\":\"" << r.device << "\",\"variant\":\"" << r.variant << "\",\"copy_gbps\":"
    << fmt("%.2f", r.copy_gbps) << ",\"copy_ms\":" << fmt("%.6f", r.copy_ms) << ",\"copy_bytes\":" << r.copy_bytes
    << ",\"tensors\":[";
  for (size_t i = 0; i < r.tensors.size(); ++i) {
    if (i) o << ",";
    json_row(o, r.tensors[i]);
  }
  o << "],\"batch\":";
  json_row(o, r.batch);
  o << "}";
  return o.str();
}

}  // namespace df11::cuda
