// Minimal fork-join helper: run fn(i) for i in [0, count) on up to `threads`
// threads. Work is handed out dynamically; results must not depend on order.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace df11 {

// -T 0 means every hardware thread (1 when the count is unknown).
inline unsigned resolve_threads(unsigned requested) {
  if (requested) return requested;
  const unsigned hw = std::thread::hardware_concurrency();
  return hw ? hw : 1;
}

template <typename Fn>
void parallel_for(uint64_t count, unsigned threads, Fn&& fn) {
  const unsigned workers = static_cast<unsigned>(std::min<uint64_t>(std::max(1u, threads), count));
  if (workers <= 1) {
    for (uint64_t i = 0; i < count; ++i) fn(i);
    return;
  }
  std::atomic<uint64_t> next{0};
  auto body = [&] {
    for (uint64_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < count;) fn(i);
  };
  std::vector<std::thread> pool;
  pool.reserve(workers - 1);
  for (unsigned t = 1; t < workers; ++t) pool.emplace_back(body);
  body();
  for (auto& th : pool) th.join();
}

}  // namespace df11

#include <condition_variable>
#include <mutex>

namespace df11 {

// Runs fn(worker) on `workers` threads (the calling thread is worker 0), for
// pipelines whose workers keep per-worker buffers.
template <typename Fn>
void run_workers(unsigned workers, Fn&& fn) {
  if (workers <= 1) {
    fn(0u);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(workers - 1);
  for (unsigned w = 1; w < workers; ++w) pool.emplace_back([&fn, w] { fn(w); });
  fn(0u);
  for (auto& th : pool) th.join();
}

// Lets pieces computed in any order pass one stage in order 0, 1, 2, ...
// (e.g. a running checksum). A worker holding piece k calls wait(k), runs the
// stage, then done(). abort() releases every waiter (wait then returns false),
// so that a failing worker cannot leave the others blocked.
class OrderedTurn {
 public:
  bool wait(uint64_t k) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return turn_ == k || aborted_; });
    return !aborted_;
  }
  void done() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++turn_;
    }
    cv_.notify_all();
  }
  void abort() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      aborted_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t turn_ = 0;
  bool aborted_ = false;
};

}  // namespace df11
