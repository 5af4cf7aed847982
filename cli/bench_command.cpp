#include "bench_command.h"

#include <cstdio>
#include <memory>

#ifdef DF11_HAVE_CUDA
#include "bench.h"
#include "df11_cuda.h"
#endif

namespace df11cli {

namespace {

df11::Status fail(df11::Error e, const std::string& what) {
  return df11::Status{e, "bench: " + what + " (" + df11::error_name(e) + ")"};
}

// The arguments' own rules, in every build: a usage error is one whether or
// not this df11 can run the benchmark. *gpu gets the index of cuda:N.
df11::Status check_args(const BenchArgs& a, int* gpu) {
  using df11::Error;
  if (a.input.empty() == a.synthetic.empty()) return fail(Error::Usage, "give a .df11 file or --synthetic llama-8b-block");
  if (!a.synthetic.empty() && a.synthetic != "llama-8b-block")
    return fail(Error::Usage, "unknown --synthetic '" + a.synthetic + "'");
  df11::DeviceChoice device;
  if (!df11::parse_device(a.device, &device).ok() ||
      (device.kind != df11::DeviceChoice::Kind::Cuda && device.kind != df11::DeviceChoice::Kind::CudaIndex))
    return fail(Error::Usage, "--device must be cuda or cuda:N");
  *gpu = device.index;
  return df11::Status::Ok();
}

}  // namespace

#ifndef DF11_HAVE_CUDA
df11::Status run_bench(const BenchArgs& a, bool, nlohmann::ordered_json*) {
  int gpu = 0;
  const df11::Status s = check_args(a, &gpu);
  return s.ok() ? fail(df11::Error::CudaUnavailable, "this df11 was built without CUDA") : s;
}
#else
df11::Status run_bench(const BenchArgs& a, bool json, nlohmann::ordered_json* body) {
  using df11::Error;
  df11::cuda::BenchOptions opt;
  if (const df11::Status s = check_args(a, &opt.device); !s.ok()) return s;
  if (df11::cuda::device_count() <= opt.device) return fail(Error::CudaUnavailable, "no CUDA GPU " + std::to_string(opt.device));
  opt.reps = a.reps;
  std::vector<df11::cuda::BenchTensor> tensors;
  std::vector<df11::cuda::SyntheticTensor> synth;
  std::unique_ptr<df11::Reader> reader;
  if (!a.synthetic.empty()) {
    synth = df11::cuda::synthetic_llama8b_layer(a.threads);
    for (const auto& s : synth) tensors.push_back({s.name, df11::view_of(s.enc)});
  } else {
    const df11::Status s = df11::Reader::open(a.input, &reader);
    if (!s.ok()) return s;
    for (const auto& t : reader->tensors())
      if (t.encoding == 2) tensors.push_back({t.name, t.bf16});
    if (tensors.empty()) return fail(Error::Usage, a.input + " has no BF16_HUFFMAN tensors");
  }
  df11::cuda::BenchResult r;
  const Error e = df11::cuda::run_bench(tensors, opt, &r);
  if (e != Error::Ok) return fail(e, r.message.empty() ? std::string(df11::cuda::last_cuda_error()) : r.message);
  if (json) *body = nlohmann::ordered_json::parse(df11::cuda::format_json(r));
  else std::fputs(df11::cuda::format_table(r).c_str(), stdout);
  return df11::Status::Ok();
}
#endif

}  // namespace df11cli
