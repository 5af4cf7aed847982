// Helpers shared by the tests: deterministic synthetic weights and temp dirs.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

// DF11_TEST_ASAN / DF11_TEST_TSAN: defined in AddressSanitizer and
// ThreadSanitizer builds (gcc and clang). DF11_TEST_SHADOW_MEMORY: either;
// their shadow memory makes `ulimit -v` and peak-RSS bounds meaningless.
#if defined(__SANITIZE_ADDRESS__)
#define DF11_TEST_ASAN 1
#elif defined(__SANITIZE_THREAD__)
#define DF11_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DF11_TEST_ASAN 1
#elif __has_feature(thread_sanitizer)
#define DF11_TEST_TSAN 1
#endif
#endif
#if defined(DF11_TEST_ASAN) || defined(DF11_TEST_TSAN)
#define DF11_TEST_SHADOW_MEMORY 1
#endif

namespace df11test {

// BF16 weights drawn from N(0, stddev^2) with a fixed seed, rounded to nearest even.
std::vector<uint16_t> gaussian_bf16(uint64_t n, double stddev, uint64_t seed);

// Path of the shared GPT-2 test file, or "" when ../shared is absent.
std::string shared_gpt2_path();

// A fresh empty directory under the system temp dir, removed by the destructor.
struct TempDir {
  std::string path;
  TempDir();
  explicit TempDir(const std::string& parent);  // under `parent` instead
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

// In a child process only: a mount namespace of its own (a user namespace
// too where not root) with a tmpfs of `bytes` mounted at `at`, a disk that
// fills up. False where the kernel or the container forbids it.
bool mount_small_tmpfs(const std::string& at, uint64_t bytes);
// Whether mount_small_tmpfs works here (tried in a child, which exits).
bool can_mount_small_tmpfs(const std::string& at);

// Every df11 temporary (".df11tmp" in its name) under `dir`, recursively:
// the tests CHECK that a run, failed or not, left none.
std::vector<std::string> temporaries_in(const std::string& dir);

std::vector<uint8_t> read_file(const std::string& path);
std::string read_text(const std::string& path);  // the same bytes as a string
void write_file(const std::string& path, const std::vector<uint8_t>& bytes);

// Runs the built df11 command with `args` (shell words) in `dir`, stdin from
// /dev/null; its exit code (128 + signal when killed), stdout and stderr.
struct CliRun {
  int code = -1;
  std::string out, err;
};
CliRun run_df11(const std::string& args, const std::string& dir);

}  // namespace df11test
