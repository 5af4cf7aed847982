// Input paths that are not plain readable files, and files that change under
// an open Reader:
//  - a FIFO is refused at once with "not a regular file" (Io), by every
//    library entry point (open(2) used to wait for a writer before the
//    S_ISREG check could run: `df11 compress fifo` hung); the command reads
//    one only with -o or -c, and says so at once without;
//  - a path that cannot be examined (a link loop, a name too long) is named
//    with its real cause, not "no such file or directory";
//  - a .df11 cut short after Reader::open gives Io "file shrank while being
//    read" when a tensor is decoded, not SIGBUS (the BF16 index arrays were
//    read through the mapping).
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "df11.h"
#include "safetensors_writer.h"
#include "test_util.h"

namespace fs = std::filesystem;
using df11::Error;
using df11::Status;

namespace {

// Opens each FIFO for writing once `after` has passed without stop(): a call
// blocked in open(2) of one (the bug) then returns, late, instead of hanging
// the suite. fired() says whether it had to.
class FifoWatchdog {
 public:
  FifoWatchdog(std::vector<std::string> fifos, std::chrono::seconds after) : fifos_(std::move(fifos)) {
    thread_ = std::thread([this, after] {
      std::unique_lock<std::mutex> lock(mu_);
      if (cv_.wait_for(lock, after, [&] { return stop_; })) return;
      fired_ = true;
      while (!stop_) {
        for (const std::string& f : fifos_) {
          const int fd = ::open(f.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);  // ENXIO while no reader waits
          if (fd >= 0) ::close(fd);
        }
        cv_.wait_for(lock, std::chrono::milliseconds(20), [&] { return stop_; });
      }
    });
  }
  ~FifoWatchdog() { stop(); }
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  bool fired() {
    std::lock_guard<std::mutex> lock(mu_);
    return fired_;
  }

 private:
  std::vector<std::string> fifos_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false, fired_ = false;
  std::thread thread_;
};

std::vector<uint8_t> bytes_of(const std::vector<uint16_t>& w) {
  std::vector<uint8_t> b(2 * w.size());
  std::memcpy(b.data(), w.data(), b.size());
  return b;
}

// A container with a RAW tensor, a BF16_HUFFMAN one of several groups and a ZSTD one.
void make_container(const std::string& dir, const std::string& out) {
  std::vector<uint8_t> f32(4 * 5000);
  for (size_t i = 0; i < 5000; ++i) {
    const float v = 1.0f + 0.001f * static_cast<float>(i % 97);
    std::memcpy(&f32[4 * i], &v, 4);
  }
  // First, and stored RAW (random bytes): the BF16 tensor's sections then
  // start pages after the fixed header, beyond the last page of a file cut
  // to 128 bytes, where a load from the mapping is SIGBUS (in the last page
  // it reads zeros).
  std::vector<uint8_t> u8(20000);
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (auto& b : u8) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    b = static_cast<uint8_t>(x >> 24);
  }
  df11test::write_safetensors(dir + "/m.safetensors",
                              {{"ids", "U8", {20000}, u8},
                               {"w", "BF16", {512, 4096}, bytes_of(df11test::gaussian_bf16(512 * 4096, 0.02, 3))},
                               {"norm", "F32", {5000}, f32}});
  df11::Options o;
  o.threads = 2;
  REQUIRE(df11::compress(dir + "/m.safetensors", out, o, nullptr).ok());
}

void expect_io(const Status& s, const std::string& path, const std::string& why) {
  INFO(s.message);
  CHECK(s.code == Error::Io);
  CHECK(s.message.find(path) != std::string::npos);
  CHECK(s.message.find(why) != std::string::npos);
  CHECK(s.message.find("(Io)") != std::string::npos);
}

}  // namespace

TEST_CASE("input files: a FIFO is refused at once, not waited on") {
  df11test::TempDir tmp;
  const std::string st_fifo = tmp.path + "/fifo.safetensors", df11_fifo = tmp.path + "/fifo.df11";
  REQUIRE(mkfifo(st_fifo.c_str(), 0600) == 0);
  REQUIRE(mkfifo(df11_fifo.c_str(), 0600) == 0);
  // A df11 directory whose manifest is a FIFO.
  make_container(tmp.path, tmp.path + "/valid.df11");
  fs::create_directory(tmp.path + "/model.df11");
  const std::string manifest = tmp.path + "/model.df11/df11-manifest.json";
  REQUIRE(mkfifo(manifest.c_str(), 0600) == 0);

  FifoWatchdog watchdog({st_fifo, df11_fifo, manifest}, std::chrono::seconds(5));
  df11::Options o;
  o.threads = 2;
  o.device = "cpu";
  const std::string not_regular = "not a regular file";
  std::vector<std::pair<std::string, std::function<void()>>> calls = {
      {"compress", [&] { expect_io(df11::compress(st_fifo, tmp.path + "/o.df11", o, nullptr), st_fifo, not_regular); }},
      {"decompress",
       [&] { expect_io(df11::decompress(df11_fifo, tmp.path + "/o.safetensors", o, nullptr), df11_fifo, not_regular); }},
      {"verify",
       [&] {
         df11::VerifyReport rep;
         expect_io(df11::verify(df11_fifo, "", o, &rep), df11_fifo, not_regular);
       }},
      {"verify --against",
       [&] {
         df11::VerifyReport rep;
         expect_io(df11::verify(tmp.path + "/valid.df11", st_fifo, o, &rep), st_fifo, not_regular);
       }},
      {"info",
       [&] {
         df11::Report rep;
         expect_io(df11::info(df11_fifo, o, &rep), df11_fifo, not_regular);
       }},
      {"Reader::open",
       [&] {
         std::unique_ptr<df11::Reader> r;
         expect_io(df11::Reader::open(df11_fifo, &r), df11_fifo, not_regular);
       }},
      {"a directory's manifest (decompress)",
       [&] {
         expect_io(df11::decompress(tmp.path + "/model.df11", tmp.path + "/back", o, nullptr), tmp.path + "/model.df11",
                   not_regular);
       }},
      {"a directory's manifest (info)",
       [&] {
         df11::Report rep;
         expect_io(df11::info(tmp.path + "/model.df11", o, &rep), "df11-manifest.json", not_regular);
       }},
      {"the command, without -o",
       [&] {
         // The command reads a named pipe as it reads stdin, into its spool,
         // but only with -o or -c (tests/cli_pipes_test.cpp): without, it
         // says so at once, before opening the FIFO.
         const df11test::CliRun r = df11test::run_df11("compress -q fifo.safetensors", tmp.path);
         CHECK(r.code == 2);
         CHECK(r.err == "df11: fifo.safetensors: is a named pipe, which gives no output name; name the output "
                        "with -o OUT, or -c for standard output (Usage)\n");
       }},
  };
  for (const auto& [what, call] : calls) {
    INFO(what);
    const auto t0 = std::chrono::steady_clock::now();
    call();
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(3));
  }
  watchdog.stop();
  CHECK_FALSE(watchdog.fired());
  CHECK(df11test::temporaries_in(tmp.path).empty());
}

TEST_CASE("input files: a path that cannot be examined is named with its real cause") {
  df11test::TempDir tmp;
  df11::Options o;
  o.device = "cpu";
  SECTION("a symbolic link loop (ELOOP)") {
    const std::string loop = tmp.path + "/loop.df11";
    fs::create_symlink("loop.df11", loop);
    const std::string why = std::strerror(ELOOP);
    expect_io(df11::compress(loop, tmp.path + "/o.df11", o, nullptr), loop, why);
    expect_io(df11::decompress(loop, tmp.path + "/o.safetensors", o, nullptr), loop, why);
    df11::VerifyReport vr;
    expect_io(df11::verify(loop, "", o, &vr), loop, why);
    make_container(tmp.path, tmp.path + "/valid.df11");
    expect_io(df11::verify(tmp.path + "/valid.df11", loop, o, &vr), loop, why);
    df11::Report rep;
    expect_io(df11::info(loop, o, &rep), loop, why);
    df11::ExportReport er;
    expect_io(df11::export_dfloat11(loop, tmp.path + "/exp", df11::ExportOptions(), &er), loop, why);
    const df11test::CliRun r = df11test::run_df11("info loop.df11", tmp.path);
    CHECK(r.code == 3);
    CHECK(r.err == "df11: loop.df11: cannot stat: " + why + " (Io)\n");
  }
  SECTION("a name too long (ENAMETOOLONG)") {
    const std::string path = tmp.path + "/" + std::string(300, 'x') + ".df11";
    expect_io(df11::decompress(path, tmp.path + "/o.safetensors", o, nullptr), path, std::strerror(ENAMETOOLONG));
  }
  SECTION("a path that does not exist is still 'no such file or directory'") {
    const std::string path = tmp.path + "/absent.df11";
    df11::Report rep;
    expect_io(df11::info(path, o, &rep), path, "no such file or directory");
  }
}

TEST_CASE("input files: a .df11 cut short after Reader::open is an Io error when decoded, not SIGBUS") {
  df11test::TempDir tmp;
  const std::string path = tmp.path + "/m.df11";
  make_container(tmp.path, path);
  std::unique_ptr<df11::Reader> r;
  REQUIRE(df11::Reader::open(path, &r).ok());
  REQUIRE(r->tensors().size() == 3);
  CHECK(r->tensors()[0].encoding == 0);
  REQUIRE(r->tensors()[1].encoding == 2);
  CHECK(r->tensors()[1].payload - r->tensors()[0].payload >= 8192);
  for (size_t i = 0; i < 3; ++i) CHECK(r->check_mapped(i).ok());
  // Everything after the fixed header goes: the BF16 tensor's block-output
  // and gap arrays, which the decoder read through the mapping, included.
  REQUIRE(::truncate(path.c_str(), 128) == 0);
  std::vector<uint8_t> out(512 * 4096 * 2);
  for (size_t i = 0; i < 3; ++i) {
    const df11::ReaderTensor& t = r->tensors()[i];
    INFO("tensor " << t.name);
    for (unsigned threads : {1u, 3u}) {
      expect_io(r->decode_tensor(i, out.data(), threads), path, "file shrank while being read");
      expect_io(r->decode_tensor_stream(
                    i, threads, [](uint64_t, const uint8_t*, uint64_t) { return Status::Ok(); },
                    [](const uint8_t*, uint64_t) { return Status::Ok(); }),
                path, "file shrank while being read");
    }
    // Before reading sections through the mapping (GPU images, statistics).
    expect_io(r->check_mapped(i), path, "tensor '" + t.name + "': file shrank while being read");
  }
}
