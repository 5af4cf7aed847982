// AtomicOutputFile::map_for_writers: several threads storing pieces of one
// file through a shared mapping (decompress from four workers per file).
// The mapping is used on tmpfs, ext4 and XFS only, so these tests work in
// /dev/shm (tmpfs), and skip with a warning where it is absent.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

#include "df11.h"
#include "file_io.h"
#include "safetensors_writer.h"
#include "test_util.h"

using namespace df11;
namespace fs = std::filesystem;

namespace {

// Pieces of odd sizes, so that most start and end inside a page that the
// neighbouring piece also writes.
std::vector<uint8_t> pattern(uint64_t n) {
  std::vector<uint8_t> b(n);
  for (uint64_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(i * 2654435761u >> 13);
  return b;
}

void no_temporaries(const std::string& dir) { CHECK(df11test::temporaries_in(dir).empty()); }

bool have_shm() {
  std::error_code ec;
  if (fs::is_directory("/dev/shm", ec)) return true;
  WARN("skipped: no /dev/shm (tmpfs) to map an output in");
  return false;
}

}  // namespace

// Four threads store odd-sized pieces of one file, after a 64-byte head
// written with write() (as decompress writes the original header). The file
// is mapped with its size times `estimate` (compress knows only an estimate,
// and then sets the real size): pieces past a short estimate go through
// pwrite, and a long one is cut back.
static void four_writers(bool pwrite_first, double estimate = 1.0) {
  if (!have_shm()) return;
  df11test::TempDir t("/dev/shm");
  const std::string out = t.path + "/o.bin";
  const uint64_t size = (uint64_t{5} << 20) + 12345, piece = 100003;
  const std::vector<uint8_t> want = pattern(size);
  AtomicOutputFile f;
  REQUIRE(f.open(out, false).ok());
  REQUIRE(f.map_for_writers(static_cast<uint64_t>(static_cast<double>(size) * estimate), pwrite_first));
  REQUIRE(f.write(want.data(), 64).ok());
  std::vector<std::thread> th;
  std::vector<Status> st(4);
  for (int w = 0; w < 4; ++w)
    th.emplace_back([&, w] {
      for (uint64_t at = 64 + w * piece; at < size && st[w].ok(); at += 4 * piece)
        st[w] = f.pwrite(want.data() + at, std::min(piece, size - at), at);
    });
  for (auto& x : th) x.join();
  for (const Status& s : st) CHECK(s.ok());
  if (estimate != 1.0) REQUIRE(f.set_final_size(size).ok());
  REQUIRE(f.commit().ok());
  CHECK(fs::file_size(out) == size);
  CHECK(df11test::read_file(out) == want);
  no_temporaries(t.path);
}

TEST_CASE("mapped output: four threads' pieces give the exact bytes", "[mapped_output]") {
  SECTION("every piece through the mapping") { four_writers(false); }
  SECTION("pwrite while it is free, the mapping otherwise") { four_writers(true); }
  SECTION("mapped with a size estimate too large, then cut to the real size") { four_writers(false, 1.5); }
  SECTION("mapped with a size estimate too small: the pieces past it through pwrite") { four_writers(false, 0.5); }
}

TEST_CASE("mapped output: a piece whose pages cannot be prefaulted goes through pwrite(2)", "[mapped_output]") {
  if (!have_shm()) return;
  df11test::TempDir t("/dev/shm");
  const std::string out = t.path + "/o.bin";
  const uint64_t size = uint64_t{1} << 20;
  const std::vector<uint8_t> want = pattern(size);
  AtomicOutputFile f;
  REQUIRE(f.open(out, false).ok());
  REQUIRE(f.map_for_writers(size, false));
  // Shrunk behind the mapping's back, the second half lies past the end of
  // the file: a store there would raise SIGBUS, MADV_POPULATE_WRITE fails
  // instead, and the piece is written with pwrite(2), which extends the file.
  REQUIRE(truncate(f.temp_path().c_str(), size / 2) == 0);
  REQUIRE(f.pwrite(want.data(), size / 2, 0).ok());
  REQUIRE(f.pwrite(want.data() + size / 2, size / 2, size / 2).ok());
  REQUIRE(f.commit().ok());
  CHECK(df11test::read_file(out) == want);
}

TEST_CASE("mapped output: past the file-size limit the file stays in pwrite mode and fails cleanly",
          "[mapped_output]") {
  if (!have_shm()) return;
  df11test::TempDir t("/dev/shm");
  const std::string out = t.path + "/o.bin";
  const uint64_t size = uint64_t{4} << 20;
  const std::vector<uint8_t> want = pattern(size);
  rlimit old{};
  getrlimit(RLIMIT_FSIZE, &old);
  Status s;
  bool mapped = true;
  {
    AtomicOutputFile f;
    REQUIRE(f.open(out, false).ok());
    rlimit lim = old;
    lim.rlim_cur = 1 << 20;
    REQUIRE(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    // SIGXFSZ still kills here, as in a library caller that does not ignore
    // it: the mapping is refused without extending the file past the limit.
    mapped = f.map_for_writers(size);
    signal(SIGXFSZ, SIG_IGN);  // the writes past the limit are this test's point
    for (uint64_t at = 0; at < size && s.ok(); at += 1 << 20) s = f.pwrite(want.data() + at, 1 << 20, at);
    setrlimit(RLIMIT_FSIZE, &old);
  }
  signal(SIGXFSZ, SIG_DFL);
  CHECK_FALSE(mapped);
  INFO(s.message);
  CHECK(s.code == Error::Io);
  CHECK(s.message.find(out) != std::string::npos);
  CHECK_FALSE(fs::exists(out));
  no_temporaries(t.path);
}

TEST_CASE("mapped output: compress at -T4 under a file-size limit that its output fits succeeds", "[mapped_output]") {
  // Compress maps its output with the input's size as the estimate. A limit
  // between the container's size and the input's must not kill a library
  // caller with SIGXFSZ (left at its default here) nor fail: the estimate is
  // not mapped, and the container is written with pwrite.
  if (!have_shm()) return;
  df11test::TempDir t("/dev/shm");
  const std::vector<uint16_t> w = df11test::gaussian_bf16(4'000'000, 0.02, 5);
  std::vector<uint8_t> bytes(w.size() * 2);
  std::memcpy(bytes.data(), w.data(), bytes.size());
  df11test::write_safetensors(t.path + "/m.safetensors", {{"w", "BF16", {4000, 1000}, bytes}});
  const uint64_t input = fs::file_size(t.path + "/m.safetensors");
  rlimit old{};
  getrlimit(RLIMIT_FSIZE, &old);
  rlimit lim = old;
  lim.rlim_cur = input - 1;  // the container is about 70% of the input
  REQUIRE(setrlimit(RLIMIT_FSIZE, &lim) == 0);
  Options o;
  o.threads = 4;
  const Status s = compress(t.path + "/m.safetensors", t.path + "/m.df11", o, nullptr);
  setrlimit(RLIMIT_FSIZE, &old);
  INFO(s.message);
  REQUIRE(s.ok());
  CHECK(fs::file_size(t.path + "/m.df11") < input);
  REQUIRE(decompress(t.path + "/m.df11", t.path + "/r.safetensors", o, nullptr).ok());
  CHECK((df11test::read_file(t.path + "/r.safetensors") == df11test::read_file(t.path + "/m.safetensors")));
}

TEST_CASE("mapped output: discarded, it leaves no temporary; size 0, or after a write, is not mapped", "[mapped_output]") {
  if (!have_shm()) return;
  df11test::TempDir t("/dev/shm");
  {
    AtomicOutputFile f;
    REQUIRE(f.open(t.path + "/a.bin", false).ok());
    REQUIRE(f.map_for_writers(uint64_t{1} << 20, false));  // the page below is dirty in the mapping
    const std::vector<uint8_t> b = pattern(4096);
    REQUIRE(f.pwrite(b.data(), b.size(), 8192).ok());
  }  // destroyed uncommitted
  CHECK_FALSE(fs::exists(t.path + "/a.bin"));
  no_temporaries(t.path);
  AtomicOutputFile e;
  REQUIRE(e.open(t.path + "/e.bin", false).ok());
  CHECK_FALSE(e.map_for_writers(0));
  REQUIRE(e.commit().ok());
  CHECK(fs::file_size(t.path + "/e.bin") == 0);
  // After a write the file would have to grow under it: pwrite mode.
  AtomicOutputFile w;
  REQUIRE(w.open(t.path + "/w.bin", false).ok());
  const std::vector<uint8_t> b = pattern(100);
  REQUIRE(w.write(b.data(), b.size()).ok());
  CHECK_FALSE(w.map_for_writers(uint64_t{1} << 20));
  REQUIRE(w.pwrite(b.data(), b.size(), 100).ok());
  REQUIRE(w.commit().ok());
  CHECK(fs::file_size(t.path + "/w.bin") == 200);
}

TEST_CASE("mapped output: a file system that fills up gives ENOSPC as an Io error, not SIGBUS", "[mapped_output]") {
  df11test::TempDir t;
  const std::string dir = t.path + "/full";
  fs::create_directories(dir);
  if (!df11test::can_mount_small_tmpfs(dir)) {
    WARN("skipped: cannot mount a tmpfs in a private mount namespace here");
    return;
  }
  // In a child with a 1 MiB tmpfs of its own: a 4 MiB output, every piece
  // through the mapping. Exit 0: the write past the first MiB failed with
  // Io naming the output and "No space"; 1-5: something else; a signal:
  // the store was not protected.
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    if (!df11test::mount_small_tmpfs(dir, uint64_t{1} << 20)) _exit(5);
    const std::string out = dir + "/o.bin";
    const uint64_t size = uint64_t{4} << 20, piece = 256 << 10;
    const std::vector<uint8_t> b = pattern(piece);
    Status s;
    {
      AtomicOutputFile f;
      if (!f.open(out, false).ok()) _exit(1);
      if (!f.map_for_writers(size, false)) _exit(2);
      for (uint64_t at = 0; at < size && s.ok(); at += piece) s = f.pwrite(b.data(), piece, at);
    }
    if (s.ok() || s.code != Error::Io) _exit(3);
    if (s.message.find(out) == std::string::npos || s.message.find("No space") == std::string::npos) _exit(4);
    std::error_code ec;
    _exit(fs::is_empty(dir, ec) && !ec ? 0 : 6);  // the temporary is gone
  }
  int st = 0;
  REQUIRE(waitpid(pid, &st, 0) == pid);
  INFO("child status " << st << (WIFSIGNALED(st) ? " (killed by a signal)" : ""));
  REQUIRE(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 0);
}
