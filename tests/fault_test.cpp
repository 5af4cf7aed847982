// Faults around the CLI: disk full (RLIMIT_FSIZE), SIGINT / SIGTERM in the
// middle of a directory compress, an output directory that is not writable,
// and an input that vanishes during the run. In every case: a clean error
// exit, nothing at the output path, no temporary files, the input untouched.
// Permission tests need an ordinary user: as root (CI) they run df11 in a
// child that drops to nobody (65534) first.
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "safetensors_writer.h"
#include "sample_model.h"
#include "test_util.h"

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

namespace {

struct SpawnOptions {
  uint64_t fsize_limit = 0;  // bytes; 0: none
  bool as_nobody = false;
  // A tmpfs of this many bytes mounted at tmpfs_at (a private mount
  // namespace of the child's own): a disk that fills up.
  uint64_t tmpfs_bytes = 0;
  std::string tmpfs_at;
};

SpawnOptions file_size_limit(uint64_t bytes) {
  SpawnOptions o;
  o.fsize_limit = bytes;
  return o;
}


struct Child {
  pid_t pid = -1;
  int err_fd = -1;
};

// Starts `df11 ARGS` in DIR, stderr into a pipe.
Child spawn(const std::vector<std::string>& args, const std::string& dir, const SpawnOptions& o) {
  const std::string bin = std::string(DF11_BINARY_DIR) + "/df11";
  std::vector<std::string> all = {bin};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  int p[2];
  REQUIRE(pipe(p) == 0);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(p[1], 2);
    close(p[0]);
    close(p[1]);
    const int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, 0);
    dup2(devnull, 1);
    if (o.tmpfs_bytes) {
      if (!df11test::mount_small_tmpfs(o.tmpfs_at, o.tmpfs_bytes)) _exit(123);
      // The tmpfs exists only in this namespace: this child waits for df11
      // and looks at what it left there (no output, no temporary: exit 124).
      const pid_t df11_pid = fork();
      if (df11_pid < 0) _exit(126);
      if (df11_pid > 0) {
        int st = 0;
        waitpid(df11_pid, &st, 0);
        if (!WIFEXITED(st)) _exit(125);
        std::error_code ec;
        _exit(fs::is_empty(o.tmpfs_at, ec) && !ec ? WEXITSTATUS(st) : 124);
      }
    }
    if (chdir(dir.c_str()) != 0) _exit(120);
    if (o.fsize_limit) {
      struct rlimit rl {o.fsize_limit, o.fsize_limit};
      if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(121);
      // SIGXFSZ has its default action (core dump): df11 itself must
      // ignore it, so that writes fail with EFBIG and it cleans up.
      signal(SIGXFSZ, SIG_DFL);
    }
    if (o.as_nobody && geteuid() == 0) {
      if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0) _exit(122);
    }
    // What a user's shell gives: a test runner may ignore SIGINT, and df11
    // (like sort or zstd) leaves an ignored signal ignored.
    for (const int sig : {SIGINT, SIGTERM, SIGHUP}) signal(sig, SIG_DFL);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  close(p[1]);
  return {pid, p[0]};
}

struct Result {
  int code = -1;
  std::string err;
};

Result wait_for(const Child& c) {
  Result r;
  char buf[4096];
  ssize_t n;
  while ((n = read(c.err_fd, buf, sizeof buf)) > 0) r.err.append(buf, static_cast<size_t>(n));
  close(c.err_fd);
  int st = 0;
  waitpid(c.pid, &st, 0);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

Result run(const std::vector<std::string>& args, const std::string& dir, const SpawnOptions& o = {}) {
  return wait_for(spawn(args, dir, o));
}

// Every entry under `dir`, relative, sorted, with contents for files.
std::vector<std::pair<std::string, Bytes>> snapshot(const std::string& dir) {
  std::vector<std::pair<std::string, Bytes>> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const std::string rel = fs::relative(e.path(), dir).generic_string();
    out.push_back({rel, e.is_regular_file() ? df11test::read_file(e.path().string()) : Bytes()});
  }
  std::sort(out.begin(), out.end());
  return out;
}

void no_temporaries(const std::string& dir) { CHECK(df11test::temporaries_in(dir).empty()); }

void one_line(const Result& r) {
  INFO("stderr: " << r.err);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK(r.err.rfind("df11: ", 0) == 0);
}

Bytes bf16_bytes(const std::vector<uint16_t>& w) {
  Bytes b(w.size() * 2);
  std::memcpy(b.data(), w.data(), b.size());
  return b;
}

// ~2.4 MB safetensors: compresses to ~1.6 MB.
// "a" spans two compress windows (kBf16WindowElems), so that -T2 and up code
// it on two workers.
void model_file(const std::string& path) {
  df11test::write_safetensors(path, {{"a", "BF16", {1500, 1000}, bf16_bytes(df11test::gaussian_bf16(1500000, 0.02, 1))},
                                     {"b", "BF16", {600, 1000}, bf16_bytes(df11test::gaussian_bf16(600000, 0.05, 2))},
                                     {"n", "F32", {1000}, Bytes(4000, 0)}});
}

// A model directory big enough that compressing it takes a noticeable time.
void model_dir(const std::string& dir) {
  df11test::SampleOptions o;
  o.hidden = 768;
  o.layers = 6;
  o.intermediate = 2048;
  o.vocab = 8192;
  df11test::make_sample_model(dir, o);
}

// Waits until `df11 compress DIR -o OUT` has begun writing output: its
// temporary directory beside OUT holds at least one file.
bool wait_for_output_start(const std::string& parent, pid_t pid, int timeout_ms = 20000) {
  for (int i = 0; i < timeout_ms; ++i) {
    for (const auto& e : fs::directory_iterator(parent))
      if (e.path().filename().string().find("df11tmp") != std::string::npos && e.is_directory()) {
        std::error_code ec;
        for (const auto& f : fs::recursive_directory_iterator(e.path(), ec)) {
          (void)f;
          return true;
        }
      }
    if (waitpid(pid, nullptr, WNOHANG) != 0) return false;  // finished already
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

// Sends `sig` unless the child has already exited (left unreaped for
// wait_for): a signal that comes after the end interrupts nothing, and a
// loaded machine can stretch the test's pause past a short run.
bool signal_if_running(pid_t pid, int sig) {
  siginfo_t info{};
  if (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid)
    return false;
  return kill(pid, sig) == 0;
}

}  // namespace

TEST_CASE("faults: disk full during compress and decompress (RLIMIT_FSIZE)", "[faults]") {
  df11test::TempDir t;
  model_file(t.path + "/m.safetensors");
  const Bytes input = df11test::read_file(t.path + "/m.safetensors");
  // -T1 writes through the writer thread, -T4 from every worker (one pwrite
  // at a time; decompress cannot map an output that the limit will not let
  // it extend): both paths must fail cleanly.
  for (const char* threads : {"1", "4"})
  for (uint64_t limit : {uint64_t{0} + 100, uint64_t{64} << 10, uint64_t{1} << 20}) {
    INFO("file size limit " << limit << ", -T" << threads);
    const Result r = run({"compress", "m.safetensors", "-o", "m.df11", "-T", threads}, t.path, file_size_limit(limit));
    CHECK(r.code == 3);
    one_line(r);
    CHECK(r.err.find("(Io)") != std::string::npos);
    CHECK_FALSE(fs::exists(t.path + "/m.df11"));
    no_temporaries(t.path);
    CHECK(df11test::read_file(t.path + "/m.safetensors") == input);
  }
  // Decompress: the container is fine, the restored file does not fit.
  REQUIRE(run({"compress", "m.safetensors", "-o", "m.df11"}, t.path).code == 0);
  const Bytes container = df11test::read_file(t.path + "/m.df11");
  for (const char* threads : {"1", "4"})
  for (uint64_t limit : {uint64_t{100}, uint64_t{1} << 20, input.size() - 1}) {
    INFO("file size limit " << limit << ", -T" << threads);
    const Result r = run({"decompress", "m.df11", "-o", "back.safetensors", "-T", threads}, t.path, file_size_limit(limit));
    CHECK(r.code == 3);
    one_line(r);
    CHECK_FALSE(fs::exists(t.path + "/back.safetensors"));
    no_temporaries(t.path);
    CHECK(df11test::read_file(t.path + "/m.df11") == container);
  }
  // A directory: the output directory is not created at all.
  fs::create_directories(t.path + "/dir");
  fs::rename(t.path + "/m.safetensors", t.path + "/dir/m.safetensors");
  df11test::write_file(t.path + "/dir/config.json", {'{', '}'});
  const auto before = snapshot(t.path + "/dir");
  const Result r = run({"compress", "dir", "-o", "out"}, t.path, file_size_limit(uint64_t{256} << 10));
  CHECK(r.code == 3);
  one_line(r);
  // It names the output (out/m.df11), not the temporary directory it was written in.
  CHECK(r.err.find("df11tmp") == std::string::npos);
  CHECK(r.err.find("out/m.df11") != std::string::npos);
  CHECK_FALSE(fs::exists(t.path + "/out"));
  no_temporaries(t.path);
  CHECK(snapshot(t.path + "/dir") == before);
}

TEST_CASE("faults: a file system that fills up (a 1 MiB tmpfs) during compress and decompress", "[faults]") {
  df11test::TempDir t;
  model_file(t.path + "/m.safetensors");
  fs::create_directories(t.path + "/full");
  if (!df11test::can_mount_small_tmpfs(t.path + "/full")) {
    WARN("skipped: cannot mount a tmpfs in a private mount namespace here");
    return;
  }
  REQUIRE(run({"compress", "m.safetensors", "-o", "m.df11"}, t.path).code == 0);
  const Bytes container = df11test::read_file(t.path + "/m.df11");
  SpawnOptions full;
  full.tmpfs_bytes = uint64_t{1} << 20;  // the file is 2.4 MB, the container 1.6 MB
  full.tmpfs_at = t.path + "/full";
  // -T1: the writer thread; -T2: every worker, one pwrite at a time; -T8:
  // the shared mapping (map_for_writers) for the windows that find pwrite
  // busy, where the pages past the first MiB cannot be allocated and
  // pwrite(2) reports ENOSPC instead of a SIGBUS.
  for (const char* threads : {"1", "2", "8"}) {
    INFO("-T" << threads);
    // Exit 124: df11 left something in the full file system; 125: it died
    // of a signal.
    Result r = run({"decompress", "m.df11", "-o", "full/back.safetensors", "-T", threads}, t.path, full);
    REQUIRE(r.code != 123);
    CHECK(r.code == 3);
    one_line(r);
    CHECK(r.err.find("full/back.safetensors") != std::string::npos);
    CHECK(r.err.find("(Io)") != std::string::npos);
    r = run({"compress", "m.safetensors", "-o", "full/m2.df11", "-T", threads}, t.path, full);
    CHECK(r.code == 3);
    one_line(r);
    CHECK(r.err.find("(Io)") != std::string::npos);
  }
  // The tmpfs lived in the children's namespaces only.
  CHECK(fs::is_empty(t.path + "/full"));
  CHECK(df11test::read_file(t.path + "/m.df11") == container);
}

TEST_CASE("faults: SIGINT and SIGTERM during a directory compress", "[faults]") {
  df11test::TempDir t;
  model_dir(t.path + "/model");
  const auto before = snapshot(t.path + "/model");
  // -T4: two files in flight (dir_tasks.cpp); every worker stops and the
  // temporary directory goes.
  for (const auto& [sig, threads] : {std::pair<int, const char*>{SIGINT, "1"}, {SIGTERM, "1"}, {SIGINT, "4"}}) {
    INFO("signal " << sig << ", -T" << threads);
    const Child c = spawn({"compress", "model", "-o", "out", "-T", threads}, t.path, {});
    bool started = wait_for_output_start(t.path, c.pid);
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    started = started && signal_if_running(c.pid, sig);
    if (!started) WARN("compress finished before the signal could be sent");
    const Result r = wait_for(c);
    if (started) {
      // Ends by the signal once it has cleaned up (wait_for: 128 + signal).
      CHECK(r.code == 128 + sig);
      CHECK(r.err.find("Interrupted") != std::string::npos);
      CHECK_FALSE(fs::exists(t.path + "/out"));
    }
    no_temporaries(t.path);
    std::error_code ec;
    fs::remove_all(t.path + "/out", ec);
  }
  CHECK(snapshot(t.path + "/model") == before);
  // Decompress of a directory, interrupted the same way.
  REQUIRE(run({"compress", "model", "-o", "packed"}, t.path).code == 0);
  const Child c = spawn({"decompress", "packed", "-o", "restored", "-T", "1"}, t.path, {});
  bool started = wait_for_output_start(t.path, c.pid);
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  started = started && signal_if_running(c.pid, SIGTERM);
  if (!started) WARN("decompress finished before the signal could be sent");
  const Result r = wait_for(c);
  INFO("decompress: exit " << r.code << ", stderr: " << r.err);
  if (started) {
    CHECK(r.code == 128 + SIGTERM);
    // The interrupt itself is reported, not a decode error of a half-read group.
    CHECK(r.err.find("Interrupted") != std::string::npos);
    CHECK_FALSE(fs::exists(t.path + "/restored"));
  }
  no_temporaries(t.path);
}

TEST_CASE("faults: output directory not writable", "[faults]") {
  df11test::TempDir t;
  // As root, df11 runs as nobody: the tree must be readable by it.
  fs::permissions(t.path, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                              fs::perms::others_read | fs::perms::others_exec);
  model_file(t.path + "/m.safetensors");
  fs::create_directories(t.path + "/ro");
  fs::create_directories(t.path + "/in");
  model_file(t.path + "/in/m.safetensors");
  REQUIRE(run({"compress", "m.safetensors", "-o", "m.df11"}, t.path).code == 0);
  for (const char* f : {"m.safetensors", "m.df11", "in/m.safetensors"})
    fs::permissions(t.path + "/" + f, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                                          fs::perms::others_read);
  fs::permissions(t.path + "/in", fs::perms::owner_all | fs::perms::others_read | fs::perms::others_exec);
  fs::permissions(t.path + "/ro", fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                                      fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec);
  SpawnOptions o;
  o.as_nobody = true;
  // Can this user (or nobody) really not write there?
  const Result probe = run({"compress", "m.safetensors", "-o", "ro/x.df11"}, t.path, o);
  if (probe.code == 122 || probe.code == 127) {
    WARN("cannot run df11 as an unprivileged user here (exit " << probe.code << "): skipping");
    return;
  }
  CHECK(probe.code == 3);
  one_line(probe);
  CHECK(probe.err.find("(Io)") != std::string::npos);
  CHECK(probe.err.find("ro/x.df11") != std::string::npos);
  const Result d = run({"decompress", "m.df11", "-o", "ro/back.safetensors"}, t.path, o);
  CHECK(d.code == 3);
  one_line(d);
  const Result dir = run({"compress", "in", "-o", "ro/out"}, t.path, o);
  CHECK(dir.code == 3);
  one_line(dir);
  CHECK(fs::is_empty(t.path + "/ro"));
  // The directory itself as output for a default path: `df11 compress ro/...` cannot create ro/*.df11.
  fs::permissions(t.path + "/ro", fs::perms::owner_all);
  fs::copy_file(t.path + "/m.safetensors", t.path + "/ro/m.safetensors");
  fs::permissions(t.path + "/ro/m.safetensors", fs::perms::owner_read | fs::perms::others_read);
  fs::permissions(t.path + "/ro", fs::perms::owner_read | fs::perms::owner_exec | fs::perms::others_read |
                                      fs::perms::others_exec);
  const Result def = run({"compress", "ro/m.safetensors"}, t.path, o);
  CHECK(def.code == 3);
  CHECK_FALSE(fs::exists(t.path + "/ro/m.df11"));
  no_temporaries(t.path);
  fs::permissions(t.path + "/ro", fs::perms::owner_all);
}

TEST_CASE("faults: an unreadable subdirectory is an Io error naming it, never a silent skip", "[faults]") {
  df11test::TempDir t;
  // As root, df11 runs as nobody: the tree must be readable, out/ writable by it.
  fs::permissions(t.path, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                              fs::perms::others_read | fs::perms::others_exec);
  const fs::perms readable = fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                             fs::perms::others_read | fs::perms::others_exec;
  fs::create_directories(t.path + "/in/locked");
  fs::create_directories(t.path + "/out");
  fs::permissions(t.path + "/out", fs::perms::all);
  fs::permissions(t.path + "/in", readable);
  // Files on both sides of locked/ in the scan's order: the old loop dropped
  // every entry after it and exited 0.
  for (const char* f : {"a.safetensors", "z.safetensors", "locked/inner.safetensors"}) {
    model_file(t.path + "/in/" + f);
    fs::permissions(t.path + "/in/" + f, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                                             fs::perms::others_read);
  }
  fs::permissions(t.path + "/in/locked", fs::perms::none);
  SpawnOptions o;
  o.as_nobody = true;
  const Result r = run({"compress", "in", "-o", "out/in.df11"}, t.path, o);
  fs::permissions(t.path + "/in/locked", readable);  // so that TempDir can remove it
  if (r.code == 122 || r.code == 127) {
    WARN("cannot run df11 as an unprivileged user here (exit " << r.code << "): skipping");
    return;
  }
  CHECK(r.code == 3);
  one_line(r);
  CHECK(r.err.find("in/locked") != std::string::npos);
  CHECK(r.err.find("(Io)") != std::string::npos);
  CHECK(fs::is_empty(t.path + "/out"));
}

TEST_CASE("faults: an input file that vanishes during a directory compress", "[faults]") {
  df11test::TempDir t;
  model_dir(t.path + "/model");
  // Files are compressed in byte order of their paths; vision/model.safetensors is last.
  REQUIRE(fs::exists(t.path + "/model/vision/model.safetensors"));
  const Child c = spawn({"compress", "model", "-o", "out", "-T", "1"}, t.path, {});
  const bool started = wait_for_output_start(t.path, c.pid);
  fs::remove(t.path + "/model/vision/model.safetensors");
  const Result r = wait_for(c);
  if (started && r.code == 0) {
    // A loaded machine can delay the removal until df11 has read the file:
    // then its container is in the output. A success without it would be a
    // file skipped in silence.
    CHECK(fs::exists(t.path + "/out/vision/model.df11"));
    WARN("compress read the file before it was removed");
  } else if (!started) {
    WARN("compress finished before the file could be removed");
  } else {
    CHECK(r.code == 3);
    one_line(r);
    CHECK(r.err.find("vision/model.safetensors") != std::string::npos);
    CHECK_FALSE(fs::exists(t.path + "/out"));
  }
  no_temporaries(t.path);
  // Removed before the run even starts (file mode): exit 3, no output.
  const Result gone = run({"compress", "model/vision/model.safetensors", "-o", "v.df11"}, t.path);
  CHECK(gone.code == 3);
  one_line(gone);
  CHECK_FALSE(fs::exists(t.path + "/v.df11"));
  // A directory whose shard index names a missing shard.
  fs::remove(t.path + "/model/model-00002-of-00002.safetensors");
  const Result idx = run({"compress", "model", "-o", "out2"}, t.path);
  CHECK(idx.code == 3);
  CHECK(idx.err.find("DirIndexMissingShard") != std::string::npos);
  CHECK_FALSE(fs::exists(t.path + "/out2"));
}

// No address space left for the input's mapping (a tight ulimit -v) is
// OutOfMemory naming the file, one line, exit 3 (it was Io).
TEST_CASE("faults: an input too large for the address space left is OutOfMemory, naming it", "[faults]") {
#ifdef DF11_TEST_SHADOW_MEMORY
  WARN("skipped under a sanitizer: its shadow memory does not fit ulimit -v");
  return;
#endif
  df11test::TempDir t;
  {
    // 2 GiB, sparse: nothing is written but its size.
    const int fd = ::open((t.path + "/big.safetensors").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(::ftruncate(fd, off_t{2} << 30) == 0);
    ::close(fd);
  }
  const std::string bin = std::string(DF11_BINARY_DIR) + "/df11";
  for (const char* cmd : {"compress big.safetensors -o big.df11", "verify big.safetensors"}) {
    INFO(cmd);
    const std::string sh = "cd '" + t.path + "' && (ulimit -v 1000000 && exec '" + bin + "' " + cmd +
                           ") >.out 2>.err </dev/null";
    const int st = std::system(sh.c_str());
    const std::string err = df11test::read_text(t.path + "/.err");
    INFO(err);
    REQUIRE(WIFEXITED(st));
    CHECK(WEXITSTATUS(st) == 3);
    CHECK(err == "df11: big.safetensors: cannot map: Cannot allocate memory (OutOfMemory)\n");
    CHECK_FALSE(fs::exists(t.path + "/big.df11"));
  }
}
