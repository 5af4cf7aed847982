#include "test_util.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

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

TempDir::TempDir() : TempDir(std::filesystem::temp_directory_path().string()) {}

TempDir::TempDir(const std::string& parent) {
  std::string tmpl = (std::filesystem::path(parent) / "df11test-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed under " + parent);
  path = tmpl;
}

std::vector<std::string> temporaries_in(const std::string& dir) {
  std::vector<std::string> found;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.path().filename().string().find("df11tmp") != std::string::npos) found.push_back(e.path().string());
  return found;
}

bool mount_small_tmpfs(const std::string& at, uint64_t bytes) {
  const uid_t uid = geteuid();
  const gid_t gid = getegid();
  if (uid != 0) {
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) return false;
    auto put = [](const char* file, const std::string& text) {
      const int fd = open(file, O_WRONLY);
      if (fd < 0) return false;
      const bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
      close(fd);
      return ok;
    };
    put("/proc/self/setgroups", "deny");
    if (!put("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1") ||
        !put("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1"))
      return false;
  } else if (unshare(CLONE_NEWNS) != 0) {
    return false;
  }
  // Private first, so that the mount never shows in the parent's namespace.
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return false;
  return mount("df11test", at.c_str(), "tmpfs", 0, ("size=" + std::to_string(bytes)).c_str()) == 0;
}

bool can_mount_small_tmpfs(const std::string& at) {
  const pid_t pid = fork();
  if (pid == 0) _exit(mount_small_tmpfs(at, 1 << 20) ? 0 : 1);
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) && WEXITSTATUS(st) == 0;
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
