// Model directories with several files in flight (-T above 1): outputs,
// manifest and report identical to -T1; progress from the calling thread
// only; the error of a corrupt shard names it, deterministically, and leaves
// nothing behind.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "df11.h"
#include "dir_tasks.h"
#include "gpu_verify.h"
#include "sample_model.h"
#include "test_options.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace df11;

namespace {

Options opts(unsigned threads) { return df11test::cpu_options(threads); }

// Every regular file under root, by relative path.
std::map<std::string, std::vector<uint8_t>> tree(const std::string& root) {
  std::map<std::string, std::vector<uint8_t>> t;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file()) t[fs::relative(e.path(), root).generic_string()] = df11test::read_file(e.path().string());
  return t;
}

// Sample model plus three more shards (copies under other names): six
// safetensors files of different sizes and the side files.
void make_model(const std::string& in) {
  df11test::SampleOptions so;
  so.hidden = 256;
  so.layers = 4;
  so.intermediate = 512;
  so.vocab = 2048;
  df11test::make_sample_model(in, so);
  fs::copy_file(in + "/model-00001-of-00002.safetensors", in + "/extra-a.safetensors");
  fs::copy_file(in + "/model-00002-of-00002.safetensors", in + "/extra-b.safetensors");
  fs::create_directories(in + "/sub");
  fs::copy_file(in + "/model-00001-of-00002.safetensors", in + "/sub/extra-c.safetensors");
}

// Flips bytes in the middle of a stored file (inside its payloads).
void corrupt(const std::string& path) {
  auto b = df11test::read_file(path);
  REQUIRE(b.size() > 4096);
  for (size_t i = b.size() / 2; i < b.size() / 2 + 64; ++i) b[i] ^= 0x5a;
  df11test::write_file(path, b);
}

bool has_temporaries(const std::string& dir) {
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".df11tmp") != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("directory: -T1 and -T4 give identical outputs, manifest and report", "[dir][parallel]") {
  df11test::TempDir tmp;
  const std::string in = tmp.path + "/model";
  make_model(in);
  Report r1, r4;
  REQUIRE(compress(in, tmp.path + "/t1", opts(1), &r1).message == "");
  Options o4 = opts(4);
  const std::thread::id caller = std::this_thread::get_id();
  bool other_thread = false, backwards = false;
  uint64_t last = 0, final_done = 0, final_total = 0;
  o4.progress = [&](uint64_t done, uint64_t total) {
    if (std::this_thread::get_id() != caller) other_thread = true;
    if (done < last) backwards = true;
    last = final_done = done;
    final_total = total;
  };
  REQUIRE(compress(in, tmp.path + "/t4", o4, &r4).message == "");
  CHECK_FALSE(other_thread);
  CHECK_FALSE(backwards);
  CHECK(final_done == final_total);
  const auto a = tree(tmp.path + "/t1"), b = tree(tmp.path + "/t4");
  CHECK(a.size() >= 14);
  REQUIRE(a.size() == b.size());
  for (const auto& [rel, bytes] : a) {
    INFO(rel);
    REQUIRE(b.count(rel));
    CHECK(b.at(rel) == bytes);  // df11-manifest.json included
  }
  REQUIRE(r1.files.size() == r4.files.size());
  for (size_t i = 0; i < r1.files.size(); ++i) {
    CHECK(r1.files[i].path == r4.files[i].path);
    CHECK(r1.files[i].stored_bytes == r4.files[i].stored_bytes);
  }
  CHECK(r1.stored_bytes == r4.stored_bytes);

  // Decompress at -T4 (two files at once) and -T16 (six at once, more files
  // in flight than cores here) restores every file.
  for (unsigned t : {4u, 16u}) {
    INFO("-T" << t);
    const std::string back = tmp.path + "/back" + std::to_string(t);
    Report rd;
    REQUIRE(decompress(tmp.path + "/t4", back, opts(t), &rd).message == "");
    CHECK(tree(back) == tree(in));
    REQUIRE(rd.files.size() == r1.files.size());
    for (size_t i = 0; i < rd.files.size(); ++i) CHECK(rd.files[i].path == r1.files[i].path);
  }
  VerifyReport v1, v4;
  REQUIRE(verify(tmp.path + "/t4", in, opts(1), &v1).message == "");
  REQUIRE(verify(tmp.path + "/t4", in, opts(4), &v4).message == "");
  CHECK(v1.files_checked == v4.files_checked);
  CHECK(v1.tensors_checked == v4.tensors_checked);
}

TEST_CASE("directory: a corrupt shard at -T4 is named, first in manifest order, nothing left", "[dir][parallel]") {
  df11test::TempDir tmp;
  const std::string in = tmp.path + "/model", packed = tmp.path + "/packed";
  make_model(in);
  REQUIRE(compress(in, packed, opts(4), nullptr).message == "");
  corrupt(packed + "/model-00002-of-00002.df11");
  const Status s1 = decompress(packed, tmp.path + "/out", opts(1), nullptr);
  REQUIRE_FALSE(s1.ok());
  CHECK(s1.message.find("model-00002-of-00002.df11") != std::string::npos);
  for (int rep = 0; rep < 3; ++rep) {
    const Status s4 = decompress(packed, tmp.path + "/out", opts(4), nullptr);
    CHECK(s4.code == s1.code);
    CHECK(s4.message == s1.message);
    CHECK_FALSE(fs::exists(tmp.path + "/out"));
    CHECK_FALSE(has_temporaries(tmp.path));
  }
  // Verify names it too, with the same failures at -T1 and -T4.
  VerifyReport v1, v4;
  CHECK(verify(packed, "", opts(1), &v1).code == Error::VerifyMismatch);
  CHECK(verify(packed, "", opts(4), &v4).code == Error::VerifyMismatch);
  REQUIRE_FALSE(v1.failures.empty());
  CHECK(v1.failures == v4.failures);
  CHECK(v4.failures.front().find("model-00002-of-00002.safetensors") != std::string::npos);

  // Two corrupt shards: the one first in manifest order is reported, however
  // the files are scheduled (the largest start first).
  corrupt(packed + "/sub/extra-c.df11");
  corrupt(packed + "/extra-b.df11");
  const Status t1 = decompress(packed, tmp.path + "/out", opts(1), nullptr);
  CHECK(t1.message.find("extra-b.df11") != std::string::npos);
  for (int rep = 0; rep < 3; ++rep) {
    const Status t4 = decompress(packed, tmp.path + "/out", opts(4), nullptr);
    CHECK(t4.message == t1.message);
    CHECK_FALSE(fs::exists(tmp.path + "/out"));
    CHECK_FALSE(has_temporaries(tmp.path));
  }
  // A side file that differs from its manifest hash is named likewise.
  df11test::write_file(packed + "/config.json", {'{', '}'});
  const Status c4 = decompress(packed, tmp.path + "/out", opts(4), nullptr);
  CHECK(c4.message.find("config.json") != std::string::npos);
  CHECK(c4.code == Error::VerifyMismatch);
  CHECK_FALSE(fs::exists(tmp.path + "/out"));
}

TEST_CASE("run_file_tasks_on: one file per device at a time, every file once", "[dir][parallel]") {
  const std::vector<std::string> devices = {"cuda:0", "cuda:1", "cuda:2"};
  const std::vector<uint64_t> sizes = {5, 900, 40, 7, 300, 300, 1, 64};
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, int> busy, most;
  std::vector<int> runs(sizes.size(), 0);
  std::vector<unsigned> threads(sizes.size(), 0);
  Options o;
  o.threads = 7;
  o.device = "cuda:all";
  const Status s = run_file_tasks_on(devices, sizes, o, [&](size_t i, const Options& fo, ThreadGrant&) -> Status {
    std::unique_lock<std::mutex> lock(mu);
    ++runs[i];
    threads[i] = fo.threads;
    most[fo.device] = std::max(most[fo.device], ++busy[fo.device]);
    cv.notify_all();
    // The first file (900, the largest) runs until a second device has taken one, so that on a
    // loaded machine one worker cannot take every file before the others start.
    if (i == 1) cv.wait_for(lock, std::chrono::seconds(10), [&] { return most.size() >= 2; });
    lock.unlock();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    lock.lock();
    --busy[fo.device];
    return Status::Ok();
  });
  REQUIRE(s.ok());
  for (size_t i = 0; i < sizes.size(); ++i) {
    CHECK(runs[i] == 1);
    CHECK(threads[i] == 2u);  // 7 threads over 3 files in flight
  }
  for (const auto& [device, n] : most) {
    CHECK(std::find(devices.begin(), devices.end(), device) != devices.end());
    CHECK(n == 1);
  }
  CHECK(most.size() >= 2);  // 8 files of 5 ms: more than one device took part

  // The reported failure is the failing file of smallest index, as in run_file_tasks.
  std::vector<bool> ran;
  const Status f = run_file_tasks_on(devices, sizes, o, [&](size_t i, const Options&, ThreadGrant&) -> Status {
    if (i == 3 || i == 5) return Status{Error::Io, "file" + std::to_string(i) + ": failed"};
    return Status::Ok();
  }, &ran);
  CHECK(f.code == Error::Io);
  CHECK(f.message.find("file3") != std::string::npos);
  for (size_t i = 0; i <= 3; ++i) CHECK(ran[i]);

  // One device: the files run in order on the calling thread with all threads.
  std::vector<size_t> order;
  REQUIRE(run_file_tasks_on({"cuda:0"}, sizes, o, [&](size_t i, const Options& fo, ThreadGrant&) -> Status {
    order.push_back(i);
    CHECK(fo.device == "cuda:0");
    CHECK(fo.threads == 7u);
    return Status::Ok();
  }).ok());
  CHECK(order == std::vector<size_t>{0, 1, 2, 3, 4, 5, 6, 7});
}

TEST_CASE("verify of a directory --device cuda or cuda:N without that GPU: CudaUnavailable once", "[dir]") {
  df11test::TempDir t;
  const std::string in = t.path + "/m", out = t.path + "/m.df11";
  make_model(in);
  REQUIRE(compress(in, out, opts(2), nullptr).ok());
  const int gpus = GpuVerifier::device_count();
  // cuda:N past the last GPU is absent on every machine; plain cuda only
  // where there is no GPU at all.
  std::vector<std::string> absent = {"cuda:" + std::to_string(gpus)};
  if (gpus == 0) absent.push_back("cuda");
  for (const std::string& d : absent) {
    INFO("--device " << d);
    for (unsigned threads : {1u, 4u}) {
      Options o = opts(threads);
      o.device = d;
      VerifyReport r;
      const Status s = verify(out, in, o, &r);
      CHECK(s.code == Error::CudaUnavailable);
      CHECK(s.message.find("--device " + d) != std::string::npos);
      CHECK(r.failures.empty());
      CHECK(r.files_checked == 0);
    }
  }
}

TEST_CASE("verify --device cuda:all: every GPU, or CudaUnavailable without one", "[dir][parallel]") {
  df11test::TempDir t;
  const std::string in = t.path + "/m", out = t.path + "/m.df11";
  make_model(in);
  REQUIRE(compress(in, out, opts(2), nullptr).ok());
  Options o = opts(4);
  o.device = "cuda:all";
  VerifyReport r;
  const Status s = verify(out, in, o, &r);
  if (GpuVerifier::device_count() == 0) {
    CHECK(s.code == Error::CudaUnavailable);
    CHECK(s.message.find("cuda:all") != std::string::npos);
    CHECK(r.files_checked == 0);
  } else {
    REQUIRE(s.message == "");
    CHECK(r.failures.empty());
    CHECK(r.device.rfind("cuda:0 (", 0) == 0);
    VerifyReport cpu;
    REQUIRE(verify(out, in, opts(4), &cpu).ok());
    CHECK(r.files_checked == cpu.files_checked);
    CHECK(r.tensors_checked == cpu.tensors_checked);
    // A corrupt shard is named whichever GPU decoded it.
    corrupt(out + "/extra-b.df11");
    VerifyReport bad;
    CHECK(verify(out, "", o, &bad).code == Error::VerifyMismatch);
    REQUIRE_FALSE(bad.failures.empty());
    CHECK(bad.failures[0].find("extra-b") != std::string::npos);
  }
}

TEST_CASE("run_file_tasks: the large files in flight share the threads by size", "[dir][parallel]") {
  constexpr uint64_t MB = uint64_t{1} << 20;
  // The first `together` files to start wait for each other before they end:
  // a file that ended at once would hand its threads to one that has started
  // but not yet read its count (seen under ASan on 2 cores: {5, 16, 3, 5, 3}).
  auto shares = [](const std::vector<uint64_t>& sizes, unsigned t, size_t together) {
    std::vector<unsigned> got(sizes.size(), 0);
    std::mutex mu;
    std::condition_variable cv;
    size_t started = 0;
    Options o;
    o.threads = t;
    REQUIRE(run_file_tasks(sizes, o, [&](size_t i, const Options& fo, ThreadGrant&) -> Status {
      std::unique_lock<std::mutex> lock(mu);
      got[i] = fo.threads;
      if (++started <= together) {
        cv.notify_all();
        cv.wait(lock, [&] { return started >= together; });
      }
      return Status::Ok();
    }).ok());
    return got;
  };
  // bench_cpu_cores.sh's directory: 1.92 GB shards first and last, 0.87 GB
  // between, and a config. Each thread goes to the file with the most bytes
  // per thread: 5, 3, 3, 5 (largest bytes per thread 0.384 GB; 4 each would
  // leave 0.48 GB per thread on the large shards); the config takes the
  // smallest share (its windows are few: it uses one).
  CHECK(shares({1920 * MB, 870 * MB, 870 * MB, 1920 * MB, 1}, 16, 5) == std::vector<unsigned>{5, 3, 3, 5, 3});
  CHECK(shares({1920 * MB, 1220 * MB, 1220 * MB, 1220 * MB}, 16, 4) == std::vector<unsigned>{5, 4, 4, 3});
  // Equal files: an even split, as before.
  CHECK(shares({64 * MB, 64 * MB, 64 * MB, 64 * MB}, 8, 4) == std::vector<unsigned>{2, 2, 2, 2});
  // -T4: two files in flight. A small large file still gets a thread and the
  // two in flight use T; a file that waits gets what is idle when it starts
  // (timing: between 1 and T here, where the tasks take no time).
  for (const auto& sizes : {std::vector<uint64_t>{4000 * MB, 64 * MB, 64 * MB},
                            std::vector<uint64_t>{900 * MB, 100 * MB, 100 * MB, 100 * MB, 100 * MB}}) {
    const auto got = shares(sizes, 4, 2);  // the two in flight
    CHECK(got[0] == 3u);
    CHECK(got[1] == 1u);
    for (size_t i = 2; i < got.size(); ++i) CHECK((got[i] >= 1u && got[i] <= 4u));
  }
}

TEST_CASE("run_file_tasks: a file that starts later takes the threads left idle", "[dir][parallel]") {
  // -T4, 2000 + 3 x 1000 MB: the first two run with 3 and 1 threads. The
  // first ends once the second has started, and the second once the third
  // has started, so the third starts while the second runs, with the 3
  // threads the first left (an even share would have run the first at 2 and
  // left the later ones 2; the smallest share would have given them 1).
  // Ordered by the test, not by sleeps, so a loaded machine cannot change the
  // answer.
  constexpr uint64_t MB = uint64_t{1} << 20;
  const std::vector<uint64_t> sizes = {2000 * MB, 1000 * MB, 1000 * MB, 1000 * MB};
  std::vector<unsigned> got(sizes.size(), 0);
  std::mutex mu;
  std::condition_variable cv;
  Options o;
  o.threads = 4;
  REQUIRE(run_file_tasks(sizes, o, [&](size_t i, const Options& fo, ThreadGrant&) -> Status {
    std::unique_lock<std::mutex> lock(mu);
    got[i] = fo.threads;
    cv.notify_all();
    // The first ends once the second has read its count (a first that ended
    // at once handed the second all 4: seen on a loaded 2-core machine); the
    // second once the third has started.
    if (i == 0) cv.wait_for(lock, std::chrono::seconds(10), [&] { return got[1] != 0; });
    if (i == 1) cv.wait_for(lock, std::chrono::seconds(10), [&] { return got[2] != 0; });
    return Status::Ok();
  }).ok());
  CHECK(got[0] == 3u);
  CHECK(got[1] == 1u);
  CHECK(got[2] == 3u);
  CHECK((got[3] >= 1u && got[3] <= 4u));  // what is idle when it starts: timing
}

TEST_CASE("run_file_tasks: once every file has started, finished files' threads go to the running ones", "[dir][parallel]") {
  // -T8, 400 + 3 x 100 MB: all four start at once (the large one with the
  // most threads). The small ones return at once; the large one then asks
  // its ThreadGrant until it holds all 8 (their threads, idle otherwise).
  constexpr uint64_t MB = uint64_t{1} << 20;
  const std::vector<uint64_t> sizes = {400 * MB, 100 * MB, 100 * MB, 100 * MB};
  Options o;
  o.threads = 8;
  unsigned started_with = 0, grew_to = 0;
  std::atomic<int> small_done{0};
  std::atomic<bool> large_started{false};
  REQUIRE(run_file_tasks(sizes, o, [&](size_t i, const Options& fo, ThreadGrant& grant) -> Status {
    if (i != 0) {
      // Held until the large file has started: on a loaded machine its
      // worker may start last, after the small files are done, and would
      // then start with all 8 threads, which is not what this test is about.
      const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (!large_started && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      ++small_done;
      return Status::Ok();
    }
    started_with = fo.threads;
    large_started = true;
    // While the small files run, their threads are theirs.
    while (small_done < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    unsigned t = grant.threads();
    while (t < 8 && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      const unsigned next = grant.threads();
      REQUIRE(next >= t);  // a grant never shrinks
      t = next;
    }
    grew_to = t;
    return Status::Ok();
  }).ok());
  CHECK(started_with < 8u);
  CHECK(grew_to == 8u);  // no more than T, and nothing left idle
}

TEST_CASE("FilePool: finished files' threads go to the next file, then to the running ones, split evenly", "[dir][parallel]") {
  SECTION("while files wait, a finished file's threads are kept for the next one") {
    FilePool pool(8, true);
    ThreadGrant a(pool), b(pool), c(pool);
    pool.start(a, 4);
    pool.start(b, 4);
    pool.release(b);
    CHECK(a.threads() == 4u);  // a file still waits: nothing is handed to the running one
    CHECK(pool.in_use() == 4u);
    pool.start(c, 0);  // the next file takes what is idle
    CHECK(c.threads() == 4u);
    pool.close();
    pool.release(c);
    CHECK(a.threads() == 8u);
    CHECK(pool.in_use() == 8u);
    pool.release(a);
    CHECK(pool.in_use() == 0u);
  }
  SECTION("once none waits: split evenly, once, whoever asks first or most") {
    FilePool pool(9, true);
    ThreadGrant a(pool), b(pool), c(pool);
    pool.start(a, 3);
    pool.start(b, 3);
    pool.start(c, 3);
    pool.close();
    pool.release(c);
    for (int k = 0; k < 5; ++k) a.threads();
    const unsigned ta = a.threads(), tb = b.threads();
    CHECK(ta + tb == 9u);  // no thread added, none lost
    CHECK(ta >= 4u);
    CHECK(tb >= 4u);
    CHECK(pool.in_use() == 9u);
  }
  SECTION("close() hands out the threads idle then") {
    FilePool pool(8, true);
    ThreadGrant a(pool);
    pool.start(a, 2);
    pool.close();
    CHECK(a.threads() == 8u);
  }
  SECTION("without sharing (one file per device), a file keeps its count") {
    FilePool pool(8, false);
    ThreadGrant a(pool), b(pool);
    pool.start(a, 4);
    pool.start(b, 4);
    pool.close();
    pool.release(b);
    CHECK(a.threads() == 4u);
  }
}
