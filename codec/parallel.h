// Threads of the library. Every thread df11 starts goes through
// start_thread(), and every group of them through ThreadGroup, so that a
// thread the system refuses (std::system_error from std::thread) becomes one
// exception, ThreadStartError (codec/df11_errors.h), thrown only once the
// threads already started have been told to stop and joined: a
// std::thread still joinable when destroyed would be std::terminate.
//
// parallel_for: run fn(i) for i in [0, count) on up to `threads` threads.
// Work is handed out dynamically; results must not depend on order.
#pragma once
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "df11_errors.h"

namespace df11 {

// -T 0 means every hardware thread (1 when the count is unknown).
inline unsigned resolve_threads(unsigned requested) {
  if (requested) return requested;
  const unsigned hw = std::thread::hardware_concurrency();
  return hw ? hw : 1;
}

namespace testing {
// Test hook: the next `starts` thread starts succeed and every later one is
// refused as the system would refuse it (ThreadStartError, EAGAIN), until
// called again; a negative value turns the refusal off. Process-wide.
// Returns the allowance that was left (negative: it was off), so that a test
// can tell whether a run reached the refusal.
int refuse_thread_starts_after(int starts) noexcept;
}  // namespace testing

namespace detail {
bool thread_start_refused() noexcept;  // consumes one start of the test hook's allowance
}  // namespace detail

// std::thread(f), with the system's refusal thrown as ThreadStartError.
template <typename F>
std::thread start_thread(F&& f) {
  try {
    if (detail::thread_start_refused())
      throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again));
    return std::thread(std::forward<F>(f));
  } catch (const std::system_error& e) {
    throw ThreadStartError(e.code());
  }
}

// Threads that are always joined. `stop` (thread-safe, cannot fail) makes the
// group's threads return early: a flag they poll, a condition they wait on.
// It is called when one of them throws (join() then rethrows that exception
// on the owner's thread, instead of std::terminate), and when the group is
// destroyed with threads still running, which only happens while its owner
// unwinds (a start that failed, the owner's own work that threw): the group
// then stops and joins them. What the threads use must therefore be declared
// before the group (destroyed after it).
class ThreadGroup {
 public:
  ThreadGroup() = default;
  explicit ThreadGroup(std::function<void()> stop) : stop_(std::move(stop)) {}
  ~ThreadGroup() {
    bool running = false;
    for (const auto& t : threads_) running |= t.joinable();
    if (running && stop_) stop_();
    join_all();
  }
  ThreadGroup(const ThreadGroup&) = delete;
  ThreadGroup& operator=(const ThreadGroup&) = delete;

  void reserve(size_t n) { threads_.reserve(n); }
  // Starts f() on a thread of the group; ThreadStartError if the system
  // refuses it (the threads already started are left to the destructor).
  template <typename F>
  void start(F&& f) {
    // Room first: once the thread runs, nothing may fail before it is held.
    if (threads_.size() == threads_.capacity()) threads_.reserve(2 * threads_.size() + 1);
    threads_.push_back(start_thread([this, f = std::forward<F>(f)]() mutable {
      try {
        f();
      } catch (...) {
        failed(std::current_exception());
      }
    }));
  }
  // Joins every thread, then rethrows the first exception one of them threw.
  void join() {
    join_all();
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
  }

 private:
  void failed(std::exception_ptr e) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!error_) error_ = std::move(e);
    }
    if (stop_) stop_();
  }
  void join_all() noexcept {
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }

  std::function<void()> stop_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::exception_ptr error_;  // written under mu_, read after join_all()
};

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
  // Stopping hands out no more work: each thread ends after its current fn.
  ThreadGroup pool([&] { next.store(count, std::memory_order_relaxed); });
  pool.reserve(workers - 1);
  for (unsigned t = 1; t < workers; ++t) pool.start(body);
  body();
  pool.join();
}

// Runs fn(worker) on `workers` threads (the calling thread is worker 0), for
// pipelines whose workers keep per-worker buffers. `stop` makes the workers
// return early (see ThreadGroup); it is called only on the way to an
// exception out of run_workers (a worker that cannot be started: fn(0) then
// never runs; or fn threw), so the caller's state after it is never used as
// a result.
template <typename Fn, typename Stop>
void run_workers(unsigned workers, Fn&& fn, Stop&& stop) {
  if (workers <= 1) {
    fn(0u);
    return;
  }
  ThreadGroup pool(std::forward<Stop>(stop));
  pool.reserve(workers - 1);
  for (unsigned w = 1; w < workers; ++w) pool.start([&fn, w] { fn(w); });
  fn(0u);
  pool.join();
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
