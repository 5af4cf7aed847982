// The --device value: one rule (df11::parse_device) for the library, the
// directory front end and the command line. CPU only: no case here needs a
// GPU, so they run in every build (gpu_*_test.cpp are built only with CUDA).
#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <utility>

#include "df11.h"
#include "gpu_verify.h"
#include "safetensors_writer.h"
#include "sample_model.h"
#include "test_options.h"
#include "test_util.h"

using namespace df11;

namespace {

const char* const kRefused[] = {
    "", "tpu", "CUDA", "Cuda:0", "cuda0", "cuda:", "cuda:-1", "cuda:+1", "cuda: 1", "cuda:1 ", "cuda:1x",
    "cuda:0x1", "cuda:01", "cuda:00", "cuda:2147483648", "cuda:99999999999999999999", "cuda:all ", "cuda:ALL",
    "auto ", "cpu:0"};

std::string refusal(const std::string& text) {
  return "--device: expected auto, cpu, cuda, cuda:N or cuda:all, got '" + text + "' (Usage)";
}

void small_file(const std::string& path) {
  const auto w = df11test::gaussian_bf16(4096, 0.02, 5);
  std::vector<uint8_t> b(w.size() * 2);
  std::memcpy(b.data(), w.data(), b.size());
  df11test::write_safetensors(path, {{"w", "BF16", {64, 64}, b}});
}

}  // namespace

TEST_CASE("device: parse_device takes the five forms", "[device]") {
  using Kind = DeviceChoice::Kind;
  const std::pair<const char*, DeviceChoice> cases[] = {
      {"auto", {Kind::Auto, 0}},           {"cpu", {Kind::Cpu, 0}},
      {"cuda", {Kind::Cuda, 0}},           {"cuda:all", {Kind::CudaAll, 0}},
      {"cuda:0", {Kind::CudaIndex, 0}},    {"cuda:7", {Kind::CudaIndex, 7}},
      {"cuda:10", {Kind::CudaIndex, 10}},  {"cuda:2147483647", {Kind::CudaIndex, 2147483647}},
  };
  for (const auto& [text, want] : cases) {
    INFO("'" << text << "'");
    DeviceChoice got{Kind::Cpu, -5};
    REQUIRE(parse_device(text, &got).ok());
    CHECK(got.kind == want.kind);
    CHECK(got.index == want.index);
  }
}

TEST_CASE("device: parse_device refuses anything else with Usage and leaves *out alone", "[device]") {
  for (const char* text : kRefused) {
    INFO("'" << text << "'");
    DeviceChoice got{DeviceChoice::Kind::Cpu, -5};
    const Status s = parse_device(text, &got);
    CHECK(s.code == Error::Usage);
    CHECK(s.message == refusal(text));
    CHECK(got.kind == DeviceChoice::Kind::Cpu);
    CHECK(got.index == -5);
  }
}

TEST_CASE("device: verify refuses a malformed --device with Usage, for a file and a directory", "[device]") {
  df11test::TempDir t;
  small_file(t.path + "/m.safetensors");
  df11test::make_sample_model(t.path + "/d", df11test::tiny_sample());
  const Options cpu = df11test::cpu_options();
  REQUIRE(compress(t.path + "/m.safetensors", t.path + "/m.df11", cpu, nullptr).ok());
  REQUIRE(compress(t.path + "/d", t.path + "/d.df11", cpu, nullptr).ok());
  for (const char* text : {"tpu", "cuda:", "cuda:1x", "cuda:01", "cuda:2147483648"}) {
    INFO("--device '" << text << "'");
    Options o = cpu;
    o.device = text;
    for (const char* in : {"/m.df11", "/d.df11"}) {
      INFO(in);
      VerifyReport r;
      const Status s = verify(t.path + in, "", o, &r);
      CHECK(s.code == Error::Usage);
      CHECK(s.message == refusal(text));
      CHECK(r.failures.empty());
    }
  }
}

TEST_CASE("device: the command line refuses what the library refuses, before looking at IN", "[device][cli]") {
  df11test::TempDir t;
  for (const char* text : kRefused) {
    if (!*text) continue;  // an empty shell word is no value at all
    INFO("--device '" << text << "'");
    const df11test::CliRun r = df11test::run_df11(std::string("verify absent.df11 --device '") + text + "'", t.path);
    CHECK(r.code == 2);
    CHECK(r.err.find("--device: expected auto, cpu, cuda, cuda:N or cuda:all") != std::string::npos);
  }
  // Accepted values get as far as IN, or, for a GPU this machine lacks, as
  // far as CudaUnavailable (never Usage).
  for (const char* text : {"auto", "cpu", "cuda", "cuda:0", "cuda:7", "cuda:2147483647", "cuda:all"}) {
    INFO("--device '" << text << "'");
    const df11test::CliRun r = df11test::run_df11(std::string("verify absent.df11 --device ") + text, t.path);
    CHECK(r.code == 3);
    const bool no_gpu = r.err.rfind("df11: --device " + std::string(text) + ": ", 0) == 0 &&
                        r.err.find("(CudaUnavailable)\n") != std::string::npos;
    if (!no_gpu) CHECK(r.err == "df11: absent.df11: no such file or directory (Io)\n");
    if (std::strcmp(text, "auto") == 0 || std::strcmp(text, "cpu") == 0) CHECK_FALSE(no_gpu);
  }
}

TEST_CASE("device: a GPU asked for and absent is the one error, before any input is read", "[device]") {
  // cuda:N past the last GPU is absent on every machine, plain cuda where
  // there is none. The inputs are each wrong in another way: a missing file,
  // bad magic, a directory with a .df11 its manifest does not list. The
  // device comes first (it was: Io, Df11BadMagic, or a FAILED line for the
  // stray file before the CudaUnavailable).
  df11test::TempDir t;
  df11test::make_sample_model(t.path + "/d", df11test::tiny_sample());
  const Options cpu = df11test::cpu_options();
  REQUIRE(compress(t.path + "/d", t.path + "/d.df11", cpu, nullptr).ok());
  small_file(t.path + "/m.safetensors");
  REQUIRE(compress(t.path + "/m.safetensors", t.path + "/d.df11/stray.df11", cpu, nullptr).ok());
  df11test::write_file(t.path + "/junk.df11", std::vector<uint8_t>(200, 0x5a));
  const int gpus = GpuVerifier::device_count();
  std::vector<std::string> absent = {"cuda:" + std::to_string(gpus)};
  if (gpus == 0) {
    absent.push_back("cuda");
    absent.push_back("cuda:all");
  }
  for (const std::string& d : absent) {
    for (const char* in : {"/absent.df11", "/junk.df11", "/d.df11"}) {
      INFO("--device " << d << ", " << in);
      Options o = cpu;
      o.device = d;
      VerifyReport r;
      const Status s = verify(t.path + in, "", o, &r);
      CHECK(s.code == Error::CudaUnavailable);
      CHECK(s.message.rfind("--device " + d + ": ", 0) == 0);
      CHECK(r.failures.empty());
      const df11test::CliRun c = df11test::run_df11("verify " + t.path + in + " --device " + d, t.path);
      CHECK(c.code == 3);
      CHECK(c.err == "df11: " + s.message + "\n");
    }
  }
  // Without the GPU request the same inputs fail each in its own way.
  VerifyReport r;
  CHECK(verify(t.path + "/junk.df11", "", cpu, &r).code == Error::Df11BadMagic);
  CHECK(verify(t.path + "/d.df11", "", cpu, &r).code == Error::VerifyMismatch);
}

// The refusals come before any GPU is looked for, in every build (without
// CUDA they were skipped: every bench was CudaUnavailable, exit 3).
TEST_CASE("bench: its arguments' rules hold in every build; then the GPU is looked for", "[cli]") {
  df11test::TempDir t;
  for (const char* text : {"auto", "cpu", "cuda:all", "cuda:", "cuda:x", "cuda:-1", "cuda:1x", "cuda:01", "cuda:2147483648"}) {
    INFO("--device '" << text << "'");
    const df11test::CliRun r = df11test::run_df11(std::string("bench --synthetic llama-8b-block --device ") + text, t.path);
    CHECK(r.code == 2);
    CHECK(r.err == "df11: bench: --device must be cuda or cuda:N (Usage)\n");
  }
  const std::pair<const char*, const char*> usage[] = {
      {"bench", "give a .df11 file or --synthetic llama-8b-block"},
      {"bench x.df11 --synthetic llama-8b-block", "give a .df11 file or --synthetic llama-8b-block"},
      {"bench --synthetic foo", "unknown --synthetic 'foo'"}};
  for (const auto& [args, what] : usage) {
    INFO(args);
    const df11test::CliRun r = df11test::run_df11(args, t.path);
    CHECK(r.code == 2);
    CHECK(r.err == std::string("df11: bench: ") + what + " (Usage)\n");
  }
  // A well-formed index gets as far as the device count (no host has this many).
  const df11test::CliRun r = df11test::run_df11("bench --synthetic llama-8b-block --device cuda:2147483647", t.path);
  CHECK(r.code == 3);
  CHECK((r.err == "df11: bench: no CUDA GPU 2147483647 (CudaUnavailable)\n" ||
         r.err == "df11: bench: this df11 was built without CUDA (CudaUnavailable)\n"));
}
