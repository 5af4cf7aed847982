// Threads the system refuses (codec/parallel.h): std::thread throws
// std::system_error when it cannot start one (EAGAIN: no memory for its
// stack, a thread limit). Before, a refusal in the middle of a group left the
// threads already started joinable and the process died in std::terminate
// (audit: df11_decode_host at 3 threads under `ulimit -v 1300000; ulimit -s
// 512000`). Now the threads already started are stopped and joined and the
// refusal is ThreadStartError (a std::bad_alloc), which Reader::decode_tensor
// returns as OutOfMemory. The refusal is simulated with the test hook
// df11::testing::refuse_thread_starts_after at every start a run makes.
#include <catch2/catch.hpp>
#include <dirent.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "df11.h"
#include "parallel.h"
#include "safetensors_writer.h"
#include "sample_model.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace {

// Threads of this process now (/proc/self/task): a thread left running after
// a call shows up here. Threads end asynchronously after join() only in the
// kernel's bookkeeping, so allow them a moment to go.
size_t thread_count() {
  size_t n = 0;
  if (DIR* d = opendir("/proc/self/task")) {
    while (const dirent* e = readdir(d))
      if (e->d_name[0] != '.') ++n;
    closedir(d);
  }
  return n;
}

// thread_count() before the call under test. ThreadSanitizer's runtime
// starts a background thread of its own with the process's first thread,
// which would count as a leaked one: one thread started and joined first
// brings it up before the count.
size_t baseline_thread_count() {
#ifdef DF11_TEST_TSAN
  std::thread([] {}).join();
#endif
  return thread_count();
}

bool threads_back_to(size_t baseline) {
  // Up to 10 s: a loaded CI machine may be slow to reap; the loop ends as soon as they are gone.
  for (int i = 0; i < 2000 && thread_count() != baseline; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  return thread_count() == baseline;
}

// Turns the hook off whatever way a test section ends.
struct RefuseAfter {
  explicit RefuseAfter(int starts) { df11::testing::refuse_thread_starts_after(starts); }
  ~RefuseAfter() { df11::testing::refuse_thread_starts_after(-1); }
  // Whether the run reached the refusal (the allowance was used up).
  static bool reached() { return df11::testing::refuse_thread_starts_after(-1) == 0; }
};

std::vector<uint8_t> as_bytes(const std::vector<uint16_t>& w) {
  std::vector<uint8_t> b(2 * w.size());
  std::memcpy(b.data(), w.data(), b.size());
  return b;
}

}  // namespace

TEST_CASE("threads: a refused start is ThreadStartError, a std::bad_alloc naming the cause") {
  RefuseAfter refuse(0);
  try {
    df11::start_thread([] {}).join();
    FAIL("the start was not refused");
  } catch (const df11::ThreadStartError& e) {
    const std::bad_alloc& as_alloc = e;  // travels where allocation failures do
    CHECK(std::string(as_alloc.what()).find("cannot start a thread: ") == 0);
    CHECK(e.code() == std::errc::resource_unavailable_try_again);
  }
}

TEST_CASE("threads: parallel_for joins the threads it started and throws when a start is refused") {
  const size_t baseline = baseline_thread_count();
  for (int allowed = 0; allowed < 3; ++allowed) {
    INFO("starts allowed: " << allowed);
    std::atomic<uint64_t> done{0};
    {
      RefuseAfter refuse(allowed);
      // The started threads are busy in fn when the refusal comes: they must
      // be stopped (no more work handed out) and joined, not abandoned.
      CHECK_THROWS_AS(df11::parallel_for(100000, 4,
                                         [&](uint64_t) {
                                           std::this_thread::sleep_for(std::chrono::microseconds(20));
                                           ++done;
                                         }),
                      df11::ThreadStartError);
    }
    CHECK(done.load() < 100000);  // stopped early, not run to the end
    CHECK(threads_back_to(baseline));
  }
  std::atomic<uint64_t> done{0};
  df11::parallel_for(1000, 4, [&](uint64_t) { ++done; });
  CHECK(done.load() == 1000);
}

TEST_CASE("threads: run_workers stops the workers it started and never runs worker 0 when a start is refused") {
  const size_t baseline = baseline_thread_count();
  // Workers 1.. wait for `stop` (as the container reader's workers wait on
  // their condition variables): without it the join would never return.
  std::mutex mu;
  std::condition_variable cv;
  bool stopped = false;
  std::atomic<bool> ran0{false};
  std::atomic<int> ran{0};
  {
    RefuseAfter refuse(2);
    CHECK_THROWS_AS(df11::run_workers(
                        4,
                        [&](unsigned w) {
                          if (w == 0) ran0 = true;
                          ++ran;
                          std::unique_lock<std::mutex> lock(mu);
                          cv.wait(lock, [&] { return stopped; });
                        },
                        [&] {
                          std::lock_guard<std::mutex> lock(mu);
                          stopped = true;
                          cv.notify_all();
                        }),
                    df11::ThreadStartError);
  }
  CHECK(stopped);
  CHECK_FALSE(ran0.load());
  CHECK(ran.load() <= 2);
  CHECK(threads_back_to(baseline));
}

TEST_CASE("threads: an exception on a worker thread reaches the caller instead of std::terminate") {
  const size_t baseline = baseline_thread_count();
  std::atomic<uint64_t> done{0};
  CHECK_THROWS_AS(df11::parallel_for(100000, 4,
                                     [&](uint64_t i) {
                                       if (i == 7) throw std::runtime_error("worker failed");
                                       ++done;
                                     }),
                  std::runtime_error);
  CHECK(done.load() < 100000);
  std::atomic<bool> stop_called{false};
  CHECK_THROWS_AS(df11::run_workers(
                      3, [&](unsigned w) { if (w == 2) throw std::runtime_error("worker 2"); },
                      [&] { stop_called = true; }),
                  std::runtime_error);
  CHECK(stop_called.load());
  CHECK(threads_back_to(baseline));
}

TEST_CASE("threads: Reader::decode_tensor returns OutOfMemory for a refused thread, at every start") {
  df11test::TempDir tmp;
  const std::string st = tmp.path + "/m.safetensors", out = tmp.path + "/m.df11";
  // 6 groups of 32 blocks: 3 workers and the in-order stage all have work.
  const std::vector<uint16_t> w = df11test::gaussian_bf16(4u << 20, 0.02, 11);
  df11test::write_safetensors(st, {{"big.weight", "BF16", {1024, 4096}, as_bytes(w)}});
  df11::Options o;
  o.threads = 2;
  REQUIRE(df11::compress(st, out, o, nullptr).ok());
  std::unique_ptr<df11::Reader> r;
  REQUIRE(df11::Reader::open(out, &r).ok());
  REQUIRE(r->tensors()[0].encoding == 2);
  const size_t baseline = baseline_thread_count();
  std::vector<uint8_t> got(2 * w.size());
  for (unsigned threads : {1u, 3u}) {
    for (int stream = 0; stream < 2; ++stream) {
      int refused = 0;
      bool ok = false;
      for (int allowed = 0; allowed < 16 && !ok; ++allowed) {
        INFO("threads " << threads << (stream ? ", streaming" : "") << ", starts allowed " << allowed);
        std::fill(got.begin(), got.end(), 0);
        df11::Status s;
        bool reached = false;
        {
          RefuseAfter refuse(allowed);
          if (stream)
            s = r->decode_tensor_stream(
                0, threads,
                [&](uint64_t off, const uint8_t* p, uint64_t n) {
                  std::memcpy(got.data() + off, p, n);
                  return df11::Status::Ok();
                },
                [](const uint8_t*, uint64_t) { return df11::Status::Ok(); });
          else
            s = r->decode_tensor(0, got.data(), threads);
          reached = RefuseAfter::reached();
        }
        CHECK(threads_back_to(baseline));
        if (!s.ok()) {
          ++refused;
          CHECK(reached);
          CHECK(s.code == df11::Error::OutOfMemory);
          CHECK(s.message == out + ": tensor 'big.weight': cannot start a thread: Resource temporarily "
                                   "unavailable (OutOfMemory)");
        } else if (!reached) {
          ok = true;
          REQUIRE((got == as_bytes(w)));
        }
      }
      CHECK(ok);
      // 1 thread: the in-order stage and the read-ahead; 3: the stage and 2 workers.
      CHECK(refused == (threads == 1 ? 2 : 3));
    }
  }
}

TEST_CASE("threads: compress, decompress and verify end cleanly when any thread is refused") {
  df11test::TempDir tmp;
  const std::string model = tmp.path + "/model";
  df11test::make_sample_model(model, df11test::tiny_sample());
  // A file of its own too (the SHA-256, the read-ahead and writer threads).
  const std::vector<uint16_t> w = df11test::gaussian_bf16(3u << 20, 0.02, 5);
  df11test::write_safetensors(tmp.path + "/one.safetensors", {{"w", "BF16", {3, 1u << 20}, as_bytes(w)}});
  const size_t baseline = baseline_thread_count();

  struct Case {
    std::string name;
    std::function<df11::Status(unsigned threads)> run;
    std::string output;  // must not exist after a failure
  };
  auto opts = [](unsigned t) {
    df11::Options o;
    o.threads = t;
    o.overwrite = true;
    return o;
  };
  // Reference containers for decompress and verify.
  REQUIRE(df11::compress(tmp.path + "/one.safetensors", tmp.path + "/one.df11", opts(2), nullptr).ok());
  REQUIRE(df11::compress(model, tmp.path + "/model.df11", opts(2), nullptr).ok());
  const std::vector<Case> cases = {
      {"compress file", [&](unsigned t) {
         df11::Options o = opts(t);
         o.verify_after = true;
         return df11::compress(tmp.path + "/one.safetensors", tmp.path + "/one-out.df11", o, nullptr);
       }, tmp.path + "/one-out.df11"},
      {"compress directory", [&](unsigned t) {
         return df11::compress(model, tmp.path + "/model-out.df11", opts(t), nullptr);
       }, tmp.path + "/model-out.df11"},
      {"decompress file", [&](unsigned t) {
         return df11::decompress(tmp.path + "/one.df11", tmp.path + "/one-back.safetensors", opts(t), nullptr);
       }, tmp.path + "/one-back.safetensors"},
      {"decompress directory", [&](unsigned t) {
         return df11::decompress(tmp.path + "/model.df11", tmp.path + "/model-back", opts(t), nullptr);
       }, tmp.path + "/model-back"},
      {"verify directory", [&](unsigned t) {
         df11::Options o = opts(t);
         o.device = "cpu";
         df11::VerifyReport rep;
         return df11::verify(tmp.path + "/model.df11", model, o, &rep);
       }, ""},
  };

  for (const Case& c : cases) {
    for (unsigned threads : {1u, 4u}) {
      bool ok = false;
      int refusals = 0;
      for (int allowed = 0; allowed < 200 && !ok; ++allowed) {
        INFO(c.name << " at -T" << threads << ", starts allowed " << allowed);
        df11::Status s;
        bool threw = false, reached = false;
        {
          RefuseAfter refuse(allowed);
          try {
            s = c.run(threads);
          } catch (const df11::ThreadStartError&) {
            threw = true;
          }
          reached = RefuseAfter::reached();
        }
        CHECK(threads_back_to(baseline));
        CHECK(df11test::temporaries_in(tmp.path).empty());
        // The public operations return every refusal as a status
        // (out_of_memory_as_status), whatever thread it reached.
        CHECK_FALSE(threw);
        if (threw || !s.ok()) {
          ++refusals;
          CHECK(reached);
          if (!threw) CHECK(s.code == df11::Error::OutOfMemory);
          if (!c.output.empty()) CHECK_FALSE(fs::exists(c.output));
        } else {
          ok = !reached;
        }
        if (!c.output.empty() && fs::exists(c.output)) fs::remove_all(c.output);
      }
      CHECK(ok);
      CHECK(refusals > 0);
    }
  }
}

// The audit's reproduction, without the hook: thread stacks of 512 MB (glibc
// sizes them from RLIMIT_STACK) in 1.3 GB of address space, so that a decode
// on 3 threads (the in-order stage and two workers) cannot start them all.
// It was `terminate called without an active exception` (exit 134).
TEST_CASE("threads: the command under the audit's limits exits 3 with OutOfMemory instead of aborting") {
#ifdef DF11_TEST_SHADOW_MEMORY
  WARN("skipped under a sanitizer: its shadow memory does not fit ulimit -v");
  return;
#endif
  df11test::TempDir tmp;
  const std::vector<uint16_t> w = df11test::gaussian_bf16(8u << 20, 0.02, 7);
  df11test::write_safetensors(tmp.path + "/m.safetensors", {{"w", "BF16", {2048, 4096}, as_bytes(w)}});
  df11::Options o;
  o.threads = 2;
  REQUIRE(df11::compress(tmp.path + "/m.safetensors", tmp.path + "/m.df11", o, nullptr).ok());
  const std::string bin = std::string(DF11_BINARY_DIR) + "/df11";
  const std::string cmd = "cd '" + tmp.path + "' && (ulimit -v 1300000 && ulimit -s 512000 && exec '" + bin +
                          "' decompress -q -T3 m.df11 -o back.safetensors) >.out 2>.err </dev/null";
  const int st = std::system(cmd.c_str());
  const int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  const std::string err = df11test::read_text(tmp.path + "/.err");
  INFO(err);
  CHECK(code == 3);
  CHECK(err.rfind("df11: ", 0) == 0);
  CHECK(err.find("cannot start a thread: Resource temporarily unavailable (OutOfMemory)\n") != std::string::npos);
  CHECK(std::count(err.begin(), err.end(), '\n') == 1);
  CHECK_FALSE(fs::exists(tmp.path + "/back.safetensors"));
  CHECK(df11test::temporaries_in(tmp.path).empty());
}
