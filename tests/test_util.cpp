#include "test_util.h"

#include <sys/wait.h>

#include <cstdlib>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>

namespace df11test {

std::vector<uint16_t> gaussian_bf16(uint64_t n, double stddev, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, static_cast<float>(stddev));
  std::vector<uint16_t> out(n);
  for (uint64_t i = 0; i < n; ++i) {
    const float f = dist(rng);
    uint32_t u;
    std::memcpy(&u, &f, 4);
    u += 0x7FFF + ((u >> 16) & 1);  // round to nearest even
    out[i] = static_cast<uint16_t>(u >> 16);
  }
  return out;
}

std::string shared_gpt2_path() {
  const std::string p = std::string(DF11_SHARED_TESTDATA) + "/gpt2-small-h0-5.safetensors";
  return std::filesystem::exists(p) ? p : std::string();
}

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "df11test-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

std::string read_text(const std::string& path) {
  const std::vector<uint8_t> b = read_file(path);
  return std::string(b.begin(), b.end());
}

void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

CliRun run_df11(const std::string& args, const std::string& dir) {
  const std::string bin = std::string(DF11_BINARY_DIR) + "/df11";
  const std::string cmd = "cd '" + dir + "' && '" + bin + "' " + args + " >" + dir + "/.out 2>" + dir + "/.err </dev/null";
  const int st = std::system(cmd.c_str());
  CliRun r;
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  r.out = read_text(dir + "/.out");
  r.err = read_text(dir + "/.err");
  return r;
}

}  // namespace df11test
