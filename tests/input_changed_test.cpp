// An input that another process rewrites while df11 reads it: compress reads
// a tensor twice (checksum, then code) and the file once more (SHA-256), so a
// rewrite in place gave exit 0 and a container that did not decode, or that
// decoded to neither version (a black-box audit of concurrent runs found
// both). Every command now checks, after its last read and before its output
// is renamed into place, that the input's size and mtime are those it
// opened (MappedFile::check_unchanged), and says so when they are not.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>

#include "bf16_payload_writer.h"
#include "df11.h"
#include "file_io.h"
#include "huffman.h"
#include "safetensors_writer.h"
#include "sha256.h"
#include "test_util.h"

using namespace df11;
namespace fs = std::filesystem;

namespace {

// Flips bytes at the given offsets of `path`, in place (the size stays), as
// `dd conv=notrunc` or a program rewriting a file does, and sets its mtime a
// second later: where timestamps are coarse, a write in the same tick as the
// open would leave them unchanged (check_unchanged's documented limit).
void rewrite_in_place(const std::string& path, std::initializer_list<uint64_t> offsets) {
  const int fd = ::open(path.c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  for (uint64_t at : offsets) {
    uint8_t b = 0;
    REQUIRE(::pread(fd, &b, 1, static_cast<off_t>(at)) == 1);
    b ^= 0x5a;
    REQUIRE(::pwrite(fd, &b, 1, static_cast<off_t>(at)) == 1);
  }
  struct stat st {};
  REQUIRE(::fstat(fd, &st) == 0);
  timespec t[2] = {st.st_atim, st.st_mtim};
  t[1].tv_sec += 1;
  REQUIRE(::futimens(fd, t) == 0);
  ::close(fd);
}

// A two-tensor BF16 model: the progress callback fires after the first.
std::vector<uint8_t> two_tensor_model(const std::string& path) {
  std::vector<df11test::StEntry> ts;
  for (int k = 0; k < 2; ++k) {
    const std::vector<uint16_t> w = df11test::gaussian_bf16(300'000, 0.02, 11 + k);
    std::vector<uint8_t> bytes(w.size() * 2);
    std::memcpy(bytes.data(), w.data(), bytes.size());
    ts.push_back({k == 0 ? "a" : "b", "BF16", {300, 1000}, bytes});
  }
  df11test::write_safetensors(path, ts);
  return df11test::read_file(path);
}

void check_changed(const Status& s, const std::string& path) {
  INFO(s.message);
  CHECK(s.code == Error::Io);
  CHECK(s.message.find(path) != std::string::npos);
  CHECK(s.message.find("changed while being read") != std::string::npos);
}

}  // namespace

TEST_CASE("input changed: MappedFile::check_unchanged sees a rewrite in place, an append, a cut", "[input_changed]") {
  df11test::TempDir t;
  const std::string p = t.path + "/f.bin";
  df11test::write_file(p, std::vector<uint8_t>(100000, 7));
  for (int how = 0; how < 3; ++how) {
    MappedFile f;
    REQUIRE(f.open(p).ok());
    CHECK(f.check_unchanged().ok());
    if (how == 0) rewrite_in_place(p, {5000});
    if (how == 1) {
      std::FILE* a = std::fopen(p.c_str(), "ab");
      REQUIRE(a);
      std::fputc(1, a);
      std::fclose(a);
    }
    if (how == 2) REQUIRE(::truncate(p.c_str(), 50000) == 0);
    check_changed(f.check_unchanged(), p);
  }
}

TEST_CASE("input changed: a rename over the path, a hard link or a chmod is not a change", "[input_changed]") {
  // They change the ctime, not the bytes: a verify must not fail because
  // another df11 -f committed a new file over the path it reads (the open
  // file is the old one, intact), nor because a cache hard-linked it.
  df11test::TempDir t;
  const std::string p = t.path + "/f.bin";
  df11test::write_file(p, std::vector<uint8_t>(10000, 3));
  MappedFile f;
  REQUIRE(f.open(p).ok());
  REQUIRE(::chmod(p.c_str(), 0600) == 0);
  REQUIRE(::link(p.c_str(), (t.path + "/hard").c_str()) == 0);
  df11test::write_file(t.path + "/new.bin", std::vector<uint8_t>(20000, 4));
  REQUIRE(::rename((t.path + "/new.bin").c_str(), p.c_str()) == 0);
  CHECK(f.check_unchanged().ok());
}

TEST_CASE("input changed: compress of a file rewritten meanwhile fails and writes nothing", "[input_changed]") {
  df11test::TempDir t;
  const std::string in = t.path + "/m.safetensors", out = t.path + "/m.df11";
  const std::vector<uint8_t> orig = two_tensor_model(in);
  Options o;
  o.threads = 1;
  bool rewritten = false;
  o.progress = [&](uint64_t, uint64_t) {
    if (!rewritten) rewrite_in_place(in, {orig.size() - 1000});  // in tensor b, not read yet
    rewritten = true;
  };
  check_changed(compress(in, out, o, nullptr), in);
  CHECK(rewritten);
  CHECK_FALSE(fs::exists(out));
  CHECK(df11test::temporaries_in(t.path).empty());
}

namespace {
// The between-passes hook's work: give the first weights of tensor "a" the
// exponent with the longest code, in place, and put the mtime back, so that
// only the bytes tell (a rewrite check_unchanged cannot see).
std::string g_rewrite_path;
void rewrite_keeping_mtime() {
  const int fd = ::open(g_rewrite_path.c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  struct stat st {};
  REQUIRE(::fstat(fd, &st) == 0);
  uint64_t header = 0;
  REQUIRE(::pread(fd, &header, 8, 0) == 8);
  std::vector<uint16_t> w(300'000);
  REQUIRE(::pread(fd, w.data(), 2 * w.size(), static_cast<off_t>(8 + header)) == static_cast<ssize_t>(2 * w.size()));
  const CodeLengths len = build_code_lengths(exponent_histogram(w.data(), w.size()));
  const int longest = static_cast<int>(std::max_element(len.begin(), len.end()) - len.begin());
  for (size_t i = 0; i < 100'000; ++i) w[i] = static_cast<uint16_t>((w[i] & 0x807F) | (longest << 7));
  REQUIRE(::pwrite(fd, w.data(), 2 * w.size(), static_cast<off_t>(8 + header)) == static_cast<ssize_t>(2 * w.size()));
  const timespec t[2] = {st.st_atim, st.st_mtim};
  REQUIRE(::futimens(fd, t) == 0);
  ::close(fd);
}
}  // namespace

TEST_CASE("input changed: tensor data rewritten between compress's two reads, size and mtime kept, is an error",
          "[input_changed]") {
  // Pass 2 reads each window again and codes it at the bit offset pass 1
  // planned; other exponents end it elsewhere. That is the error (before, the
  // encoder marked chunks past the planned stream, outside its arrays, and
  // compress wrote a container that did not decode).
  df11test::TempDir t;
  const std::string in = t.path + "/m.safetensors", out = t.path + "/m.df11";
  two_tensor_model(in);
  g_rewrite_path = in;
  struct Hooks {
    uint64_t window = testing::set_bf16_window_elems(4096);  // several windows: pass 2 reads the file again
    void (*between)() = testing::set_bf16_between_passes(rewrite_keeping_mtime);
    ~Hooks() {
      testing::set_bf16_window_elems(window);
      testing::set_bf16_between_passes(between);
    }
  } hooks;
  for (unsigned threads : {1u, 3u}) {
    INFO("-T" << threads);
    two_tensor_model(in);
    Options o;
    o.threads = threads;
    check_changed(compress(in, out, o, nullptr), in);
    CHECK_FALSE(fs::exists(out));
    CHECK(df11test::temporaries_in(t.path).empty());
  }
}

TEST_CASE("input changed: decompress and verify of a container rewritten meanwhile say so, not 'corrupt'",
          "[input_changed]") {
  df11test::TempDir t;
  const std::string in = t.path + "/m.safetensors", packed = t.path + "/m.df11", out = t.path + "/r.safetensors";
  two_tensor_model(in);
  Options o;
  o.threads = 1;
  o.device = "cpu";
  REQUIRE(compress(in, packed, o, nullptr).ok());
  const uint64_t size = fs::file_size(packed);
  bool rewritten = false;
  o.progress = [&](uint64_t, uint64_t) {
    // Tensor b's payload lies in the second half: its checksum then fails,
    // which used to be reported as damage (Df11TensorChecksum, exit 1).
    if (!rewritten) rewrite_in_place(packed, {size / 2 + 1000, size * 3 / 4});
    rewritten = true;
  };
  check_changed(decompress(packed, out, o, nullptr), packed);
  CHECK(rewritten);
  CHECK_FALSE(fs::exists(out));
  CHECK(df11test::temporaries_in(t.path).empty());

  // Restore the container, then verify it while it is rewritten again.
  Options f = o;
  f.overwrite = true;
  f.progress = nullptr;
  REQUIRE(compress(in, packed, f, nullptr).ok());
  rewritten = false;
  VerifyReport rep;
  check_changed(verify(packed, "", o, &rep), packed);
  CHECK(rewritten);
  CHECK(rep.failures.empty());  // no verdict on a mix of two versions
}

TEST_CASE("input changed: a directory's verbatim file is copied and hashed from one read", "[input_changed]") {
  // copy_file_atomic gives the SHA-256 of exactly the bytes it wrote; the
  // manifest's entry therefore matches the stored copy, whatever happened to
  // the source after.
  df11test::TempDir t;
  const std::string src = t.path + "/tokenizer.json", dst = t.path + "/copy.json";
  std::vector<uint8_t> bytes(5 << 20);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 31);
  df11test::write_file(src, bytes);
  std::string hex;
  REQUIRE(copy_file_atomic(src, dst, false, &hex).ok());
  CHECK(df11test::read_file(dst) == bytes);
  CHECK(hex == sha256_hex(bytes.data(), bytes.size()));
  std::string again;
  REQUIRE(hash_file(src, &again).ok());
  CHECK(again == hex);
}

// ---- a file cut short under its mapping (SIGBUS) ----------------------------

TEST_CASE("input changed: a mapped page that vanished reads as zeros and fails the checks, not SIGBUS",
          "[input_changed][fault_guard]") {
  install_fault_handler();
  df11test::TempDir t;
  const std::string p = t.path + "/f.bin";
  df11test::write_file(p, std::vector<uint8_t>(1 << 20, 7));
  MappedFile f;
  REQUIRE(f.open(p).ok());
  REQUIRE(f.data()[(1 << 20) - 1] == 7);
  f.release(0, 1 << 20);  // the next loads fault the pages in again
  REQUIRE(::truncate(p.c_str(), 0) == 0);
  // Past the end of the file now: SIGBUS, handled by mapping a zero page.
  volatile const uint8_t* d = f.data();
  CHECK(d[(1 << 20) - 1] == 0);
  CHECK(d[12345] == 0);
  check_changed(f.check_unchanged(), p);
  const Status s = f.check_size(1);
  CHECK(s.code == Error::Io);
  CHECK(s.message.find("shrank") != std::string::npos);
}

TEST_CASE("input changed: compress of a file cut short meanwhile fails cleanly", "[input_changed][fault_guard]") {
  install_fault_handler();
  df11test::TempDir t;
  const std::string in = t.path + "/m.safetensors", out = t.path + "/m.df11";
  const std::vector<uint8_t> orig = two_tensor_model(in);
  for (const unsigned threads : {1u, 4u}) {
    df11test::write_file(in, orig);
    Options o;
    o.threads = threads;
    bool cut = false;
    o.progress = [&](uint64_t, uint64_t) {
      if (!cut) REQUIRE(::truncate(in.c_str(), static_cast<off_t>(orig.size() / 2)) == 0);  // tensor b is gone
      cut = true;
    };
    const Status s = compress(in, out, o, nullptr);
    INFO(s.message);
    CHECK(cut);
    CHECK(s.code == Error::Io);
    CHECK(s.message.find(in) != std::string::npos);
    CHECK((s.message.find("changed while being read") != std::string::npos ||
           s.message.find("shrank while being read") != std::string::npos));
    CHECK_FALSE(fs::exists(out));
    CHECK(df11test::temporaries_in(t.path).empty());
  }
}

TEST_CASE("input changed: a fault outside df11's mappings keeps its default action", "[input_changed][fault_guard]") {
  df11test::TempDir t;
  const std::string p = t.path + "/g.bin";
  df11test::write_file(p, std::vector<uint8_t>(1 << 16, 7));
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    signal(SIGBUS, SIG_DFL);
    install_fault_handler();
    const int fd = ::open(p.c_str(), O_RDONLY);
    void* m = mmap(nullptr, 1 << 16, PROT_READ, MAP_PRIVATE, fd, 0);  // not registered
    if (m == MAP_FAILED || ::truncate(p.c_str(), 0) != 0) _exit(2);
    volatile const uint8_t* d = static_cast<const uint8_t*>(m);
    _exit(d[100] == 0 ? 3 : 4);  // must not get here
  }
  int st = 0;
  REQUIRE(waitpid(pid, &st, 0) == pid);
  INFO("child status " << st);
  CHECK(WIFSIGNALED(st));
  if (WIFSIGNALED(st)) CHECK(WTERMSIG(st) == SIGBUS);
}

TEST_CASE("input changed: a SIGBUS sent with kill(2) still ends the process", "[input_changed][fault_guard]") {
  // It carries no fault address: the handler must not swallow it.
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    signal(SIGBUS, SIG_DFL);
    install_fault_handler();
    raise(SIGBUS);
    _exit(3);  // must not get here
  }
  int st = 0;
  REQUIRE(waitpid(pid, &st, 0) == pid);
  INFO("child status " << st);
  CHECK(WIFSIGNALED(st));
  if (WIFSIGNALED(st)) CHECK(WTERMSIG(st) == SIGBUS);
}
