// `df11 verify --device cuda` and `df11 bench` end to end on a GPU machine.
#include <catch2/catch.hpp>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>

#include "df11.h"
#include "df11_cuda.h"
#include "sample_model.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace {

int run(const std::string& cmd) {
  const int st = std::system(cmd.c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

}  // namespace

TEST_CASE("gpu verify: the GPT-2 container decodes on the GPU, and corruption is caught", "[gpu]") {
  if (df11::cuda::device_count() == 0) {
    WARN("no CUDA GPU: skipping");
    return;
  }
  const std::string src = df11test::shared_gpt2_path();
  df11test::TempDir t;
  std::string in = src;
  if (src.empty()) {
    WARN("../shared/testdata absent: using synthetic weights instead of GPT-2");
    in = t.path + "/m.safetensors";
    REQUIRE(run(std::string(DF11_BINARY_DIR) + "/tests/make_bench_file " + in + " --mib 64") == 0);
  }
  const std::string df11 = std::string(DF11_BINARY_DIR) + "/df11";
  REQUIRE(run(df11 + " compress -q " + in + " -o " + t.path + "/g.df11") == 0);
  df11::VerifyReport r;
  df11::Options o;
  o.device = "cuda:0";
  const df11::Status s = df11::verify(t.path + "/g.df11", in, o, &r);
  REQUIRE(s.message == "");
  REQUIRE(r.device.rfind("cuda:0", 0) == 0);
  REQUIRE(r.decoded_bytes > 0);
  REQUIRE(run(df11 + " verify " + t.path + "/g.df11 --device cuda --against " + in) == 0);
  // A flipped sign/mantissa byte in the first BF16 payload: the GPU path must name it.
  df11::Report info;
  REQUIRE(df11::info(t.path + "/g.df11", o, &info).ok());
  auto bytes = df11test::read_file(t.path + "/g.df11");
  bytes[128 + info.files[0].tensors[0].stored_bytes - 7] ^= 0x10;
  df11test::write_file(t.path + "/bad.df11", bytes);
  df11::VerifyReport bad;
  REQUIRE(df11::verify(t.path + "/bad.df11", "", o, &bad).code == df11::Error::VerifyMismatch);
  REQUIRE(bad.failures.size() == 1);
  CHECK(bad.failures[0].find(info.files[0].tensors[0].name) != std::string::npos);
  REQUIRE(run(df11 + " verify -q " + t.path + "/bad.df11 --device cuda") == 1);
}

TEST_CASE("gpu verify: --device cuda:all spreads a directory's files over every GPU", "[gpu]") {
  const int gpus = df11::cuda::device_count();
  if (gpus == 0) {
    WARN("no CUDA GPU: skipping");
    return;
  }
  df11test::TempDir t;
  df11test::SampleOptions so;
  so.layers = 4;
  df11test::make_sample_model(t.path + "/m", so);
  df11::Options o;
  o.threads = 4;
  REQUIRE(df11::compress(t.path + "/m", t.path + "/m.df11", o, nullptr).ok());
  o.device = "cuda:all";
  df11::VerifyReport r;
  const df11::Status s = df11::verify(t.path + "/m.df11", t.path + "/m", o, &r);
  REQUIRE(s.message == "");
  CHECK(r.failures.empty());
  CHECK(r.decoded_bytes > 0);
  // Every GPU that decoded a file is named once, as "cuda:K (its name)", in
  // index order, cuda:0 first.
  INFO("devices: " << r.device);
  CHECK(r.device.rfind("cuda:0 (", 0) == 0);
  size_t at = 0;
  for (int k = 0; k < gpus; ++k) {
    const std::string named = std::string(at ? ", " : "") + "cuda:" + std::to_string(k) + " (" +
                              df11::cuda::device_name(k) + ")";
    if (r.device.compare(at, named.size(), named) == 0) at += named.size();
  }
  CHECK(at == r.device.size());
  const std::string df11 = std::string(DF11_BINARY_DIR) + "/df11";
  REQUIRE(run(df11 + " verify -q " + t.path + "/m.df11 --device cuda:all --against " + t.path + "/m") == 0);
}

