// Peak memory of the streaming codec (issue 11): compress, verify and
// decompress a file with one BF16 tensor of more than 2^31 weights (4.3 GB)
// through the CLI and check each child's peak RSS (getrusage) against the
// bound: 128 MB at -T1, 64 MB more per further thread. Byte-identical round
// trip. [slow]: it writes ~11 GB and takes minutes on two cores; run it with
// `df11_tests "[slow][memory]"` (scripts/bench_cpu.sh BIG=1 measures the same).
// A small-file case runs by default: the bound must not depend on the size.
#include <catch2/catch.hpp>
#include <sys/resource.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>
#include <filesystem>
#include <string>

#include "test_util.h"

namespace fs = std::filesystem;

namespace {

const std::string kBin = std::string(DF11_BINARY_DIR) + "/df11";
const std::string kMake = std::string(DF11_BINARY_DIR) + "/tests/make_bench_file";

// Runs a command in a child shell; returns its exit code and the peak RSS
// (MB) of the command itself (GNU time is not assumed: the shell execs it).
// Linux carries the forking process's resident size into the child's
// ru_maxrss across exec, so this measures the command only while this
// process is small: ctest runs each test case in a process of its own; a run
// of the whole df11_tests binary in one process can fail these bounds after
// other tests have grown it.
struct Child {
  int code = -1;
  double peak_mb = 0;
};

Child run_measured(const std::string& cmd) {
  Child c;
  const pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  struct rusage ru {};
  wait4(pid, &status, 0, &ru);
  c.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  c.peak_mb = static_cast<double>(ru.ru_maxrss) / 1024.0;  // KB on Linux
  return c;
}

bool same_files(const std::string& a, const std::string& b) {
  return std::system(("cmp -s '" + a + "' '" + b + "'").c_str()) == 0;
}

bool same_trees(const std::string& a, const std::string& b) {
  return std::system(("diff -r -q '" + a + "' '" + b + "' >/dev/null").c_str()) == 0;
}

void check_bounded(const std::string& in, unsigned threads, double bound_mb) {
  const std::string dir = fs::path(in).parent_path().string();
  const std::string T = " -T" + std::to_string(threads);
  const Child c = run_measured(kBin + " compress -q -f" + T + " '" + in + "' -o '" + dir + "/x.df11'");
  REQUIRE(c.code == 0);
  const Child v = run_measured(kBin + " verify -q --device cpu" + T + " '" + dir + "/x.df11'");
  REQUIRE(v.code == 0);
  const Child d = run_measured(kBin + " decompress -q -f" + T + " '" + dir + "/x.df11' -o '" + dir + "/y.safetensors'");
  REQUIRE(d.code == 0);
  INFO("-T" << threads << ": compress " << c.peak_mb << " MB, verify " << v.peak_mb << " MB, decompress " << d.peak_mb
            << " MB (bound " << bound_mb << " MB)");
#ifdef DF11_TEST_SHADOW_MEMORY
  // A sanitizer's shadow memory (and ASan's quarantine) inflate RSS: the
  // bound is checked in the normal build only; the round trip still runs here.
  WARN("sanitizer build: peak RSS not checked");
#else
  CHECK(c.peak_mb <= bound_mb);
  CHECK(v.peak_mb <= bound_mb);
  CHECK(d.peak_mb <= bound_mb);
#endif
  CHECK((fs::is_directory(in) ? same_trees(in, dir + "/y.safetensors") : same_files(in, dir + "/y.safetensors")));
  fs::remove_all(dir + "/x.df11");
  fs::remove_all(dir + "/y.safetensors");
}

}  // namespace

TEST_CASE("memory: a 256 MiB tensor stays under the streaming bound", "[memory][cli]") {
  if (!fs::exists(kMake)) {
    WARN("make_bench_file not built: skipped");
    return;
  }
  df11test::TempDir tmp;
  const std::string in = tmp.path + "/t.safetensors";
  REQUIRE(run_measured(kMake + " '" + in + "' --kind one-tensor --elements " + std::to_string(1 << 27) + " -T 2").code == 0);
  // Far less than the tensor (256 MiB): the bound holds for a small file too.
  check_bounded(in, 1, 128);
  check_bounded(in, 2, 128 + 64);
}

TEST_CASE("memory: a directory of four shards in flight at once stays under the bound", "[memory][cli][dir]") {
  if (!fs::exists(kMake)) {
    WARN("make_bench_file not built: skipped");
    return;
  }
  df11test::TempDir tmp;
  // The input directory sits one level down: check_bounded writes its
  // outputs beside it.
  const std::string in = tmp.path + "/model";
  fs::create_directories(in);
  REQUIRE(run_measured(kMake + " '" + in + "/a.safetensors' --kind one-tensor --elements " + std::to_string(1 << 25) +
                       " -T 2").code == 0);
  for (const char* name : {"b", "c", "d"}) fs::copy_file(in + "/a.safetensors", in + "/" + name + ".safetensors");
  // -T8: four files at once with two threads each; memory must not be four
  // times one file's (128 MB) but within the bound of 8 threads.
  check_bounded(in, 1, 128);
  check_bounded(in, 8, 128 + 7 * 64);
  check_bounded(in, 4, 128 + 3 * 64);
}

// Writes a safetensors file tensor by tensor, so that this process stays
// small (its size would count in the children's peak RSS, above).
void write_streamed(const std::string& path, uint64_t count, const std::string& dtype, uint64_t elems,
                    const std::function<void(uint64_t k, std::vector<uint8_t>& bytes)>& fill) {
  const uint64_t width = dtype == "F32" ? 4 : 2;
  std::string json = "{";
  for (uint64_t k = 0; k < count; ++k)
    json += (k ? ",\"t" : "\"t") + std::to_string(k) + "\":{\"dtype\":\"" + dtype + "\",\"shape\":[" +
            std::to_string(elems) + "],\"data_offsets\":[" + std::to_string(k * elems * width) + "," +
            std::to_string((k + 1) * elems * width) + "]}";
  json += "}";
  std::FILE* f = std::fopen(path.c_str(), "wb");
  REQUIRE(f);
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(static_cast<uint64_t>(json.size()) >> (8 * i));
  std::fwrite(len, 1, 8, f);
  std::fwrite(json.data(), 1, json.size(), f);
  std::vector<uint8_t> bytes(elems * width);
  for (uint64_t k = 0; k < count; ++k) {
    fill(k, bytes);
    REQUIRE(std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size());
  }
  REQUIRE(std::fclose(f) == 0);
}

TEST_CASE("memory: large zstd tensors and thousands of small tensors stay under the bound", "[memory][cli]") {
  // A black-box audit of other checkpoint shapes found memory growing with
  // the file: verify, decompress and info held about half of a 1 GB F32
  // container (the open-time check of each zstd frame walked it through the
  // mapping), and about 130 KB per tensor of a many-tensor file (the
  // open-time checks' pages were never dropped).
  df11test::TempDir tmp;
  const std::string dir = tmp.path + "/f32";
  fs::create_directories(dir);
  // Two 128 MiB F32 tensors of normal values (zstd shrinks their exponents).
  write_streamed(dir + "/m.safetensors", 2, "F32", uint64_t{1} << 25, [](uint64_t k, std::vector<uint8_t>& b) {
    uint32_t x = 12345 + static_cast<uint32_t>(k);
    for (size_t i = 0; i + 4 <= b.size(); i += 4) {
      float v = 0;
      for (int j = 0; j < 4; ++j) {
        x = x * 1664525u + 1013904223u;
        v += static_cast<float>(x >> 8) * (1.0f / 16777216.0f) - 0.5f;
      }
      v *= 0.02f;
      std::memcpy(b.data() + i, &v, 4);
    }
  });
  check_bounded(dir + "/m.safetensors", 1, 128);
  const std::string many = tmp.path + "/many";
  fs::create_directories(many);
  // 4,000 BF16 tensors of 16,384 weights (32 KiB each).
  write_streamed(many + "/m.safetensors", 4000, "BF16", 16384, [](uint64_t k, std::vector<uint8_t>& b) {
    const std::vector<uint16_t> w = df11test::gaussian_bf16(b.size() / 2, 0.02, 100 + k);
    std::memcpy(b.data(), w.data(), b.size());
  });
  check_bounded(many + "/m.safetensors", 1, 128);
  REQUIRE(run_measured(kBin + " compress -q -f -T1 '" + many + "/m.safetensors' -o '" + many + "/x.df11'").code == 0);
  const Child i = run_measured(kBin + " info -T1 '" + many + "/x.df11' >/dev/null");
  INFO("info of 4,000 tensors: " << i.peak_mb << " MB");
  CHECK(i.code == 0);
#ifndef DF11_TEST_SHADOW_MEMORY
  CHECK(i.peak_mb <= 128);
#endif
}

TEST_CASE("memory: a tensor of more than 2^31 weights in bounded memory", "[memory][slow]") {
  df11test::TempDir tmp;
  const std::string in = tmp.path + "/big.safetensors";
  const uint64_t n = (uint64_t{1} << 31) + (uint64_t{1} << 20);
  REQUIRE(run_measured(kMake + " '" + in + "' --kind one-tensor --elements " + std::to_string(n)).code == 0);
  REQUIRE(fs::file_size(in) > 2 * n);
  check_bounded(in, 1, 128);
  check_bounded(in, 2, 128 + 64);
}
