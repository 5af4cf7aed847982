#include "bench_command.h"

#include <cstdio>
#include <memory>

#ifdef DF11_HAVE_CUDA
#include "bench.h"
#include "df11_cuda.h"
#endif

namespace df11cli {

#ifndef DF11_HAVE_CUDA
df11::Status run_bench(const BenchArgs&, bool, nlohmann::ordered_json*) {
  return {df11::Error::CudaUnavailable, "bench: this df11 was built without CUDA (CudaUnavailable)"};
}
#else
df11::Status run_bench(const BenchArgs& a, bool json, nlohmann::ordered_json* body) {
  using df11::Error;
  auto fail = [](Error e, const std::string& what) {
    return df11::Status{e, "bench: " + what + " (" + df11::error_name(e) + ")"};
  };
  if (a.input.empty() == a.synthetic.empty()) return fail(Error::Usage, "give a .df11 file or --synthetic llama-8b-block");
  df11::cuda::BenchOptions opt;
  df11::DeviceChoice device;
  if (!df11::parse_device(a.device, &device).ok() ||
      (device.kind != df11::DeviceChoice::Kind::Cuda && device.kind != df11::DeviceChoice::Kind::CudaIndex))
    return fail(Error::Usage, "--device must be cuda or cuda:N");
  opt.device = device.index;
  if (df11::cuda::device_count() <= opt.device) return fail(Error::CudaUnavailable, "no CUDA GPU " + std::to_string(opt.device));
  opt.reps = a.reps;
  std::vector<df11::cuda::BenchTensor> tensors;
  std::vector<df11::cuda::SyntheticTensor> synth;
  std::unique_ptr<df11::Reader> reader;
  if (!a.synthetic.empty()) {
    if (a.synthetic != "llama-8b-block") return fail(Error::Usage, "unknown --synthetic '" + a.synthetic + "'");
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
