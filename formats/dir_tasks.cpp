#include "dir_tasks.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <numeric>
#include <thread>

#include "parallel.h"
#include "ops.h"

namespace df11 {

void FilePool::start(ThreadGrant& g, unsigned threads) {
  std::lock_guard<std::mutex> lock(mu_);
  g.threads_ = threads ? threads : std::max(1u, all_ > in_use_ ? all_ - in_use_ : 0u);
  g.pending_ = 0;
  in_use_ += g.threads_;
  running_.push_back(&g);
}

void FilePool::release(ThreadGrant& g) {
  std::lock_guard<std::mutex> lock(mu_);
  running_.erase(std::find(running_.begin(), running_.end(), &g));
  in_use_ -= g.threads_ + g.pending_;
  if (!waiting_) hand_out();
}

void FilePool::close() {
  std::lock_guard<std::mutex> lock(mu_);
  waiting_ = false;
  hand_out();
}

unsigned FilePool::in_use() {
  std::lock_guard<std::mutex> lock(mu_);
  return in_use_;
}

void FilePool::hand_out() {
  if (!shares_ || running_.empty() || in_use_ >= all_) return;
  const unsigned idle = all_ - in_use_;
  const size_t r = running_.size();
  for (size_t k = 0; k < r; ++k)
    running_[k]->pending_ += static_cast<unsigned>(idle / r + (k < idle % r ? 1 : 0));
  in_use_ = all_;
}

unsigned ThreadGrant::threads() {
  if (!pool_) return threads_;
  std::lock_guard<std::mutex> lock(pool_->mu_);
  threads_ += pending_;
  pending_ = 0;
  return threads_;
}

namespace {

Status run_in_order(const std::vector<uint64_t>& sizes, const Options& opt, const FileTask& task,
                    std::vector<bool>* ran) {
  const uint64_t total = std::accumulate(sizes.begin(), sizes.end(), uint64_t{0});
  uint64_t done = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    Options o = opt;
    const uint64_t base = done;
    if (opt.progress) o.progress = [&opt, base, total](uint64_t d, uint64_t) { opt.progress(base + d, total); };
    if (ran) (*ran)[i] = true;
    ThreadGrant grant(resolve_threads(opt.threads));
    Status s = task(i, o, grant);
    if (!s.ok()) return s;
    done += sizes[i];
    if (opt.progress) opt.progress(done, total);
  }
  return Status::Ok();
}

// Largest first (ties in index order), so that one big file does not start last.
std::vector<size_t> largest_first(const std::vector<uint64_t>& sizes) {
  std::vector<size_t> order(sizes.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return sizes[a] > sizes[b]; });
  return order;
}

// Runs the files on `in_flight` workers in `order`; file i gets threads[i]
// threads, or, where that is 0, what is free when it starts (at least one):
// a file that takes the slot of one that finished takes the threads left
// idle, whatever share that file had. Worker w runs its files with
// o.device = (*devices)[w] when devices is given.
Status run_pool(const std::vector<uint64_t>& sizes, const Options& opt, const FileTask& task, std::vector<bool>* ran,
                size_t in_flight, const std::vector<size_t>& order, const std::vector<unsigned>& threads,
                const std::vector<std::string>* devices) {
  const size_t n = sizes.size();

  const uint64_t total = std::accumulate(sizes.begin(), sizes.end(), uint64_t{0});
  std::unique_ptr<std::atomic<uint64_t>[]> progress(new std::atomic<uint64_t>[n]);
  for (size_t i = 0; i < n; ++i) progress[i] = 0;
  std::vector<Status> results(n);
  // An exception of a file's task is rethrown on the calling thread, as it
  // would have left the loop one file after another.
  std::vector<std::exception_ptr> thrown(n);
  std::vector<char> started(n, 0);
  std::atomic<size_t> next{0};
  std::atomic<size_t> first_failure{n};
  // One file per device (run_file_tasks_on): a device's files keep their count.
  FilePool files(resolve_threads(opt.threads), !devices);
  std::mutex mu;
  std::condition_variable cv;
  size_t workers_left = in_flight;

  auto worker = [&](size_t w) {
    // Counted out however the loop ends, or the wait below would never end:
    // an exception outside a task (an allocation) goes to the ThreadGroup,
    // which rethrows it on the calling thread after that wait.
    struct CountOut {
      std::mutex& mu;
      std::condition_variable& cv;
      size_t& left;
      ~CountOut() {
        std::lock_guard<std::mutex> lock(mu);
        --left;
        cv.notify_all();
      }
    } count_out{mu, cv, workers_left};
    for (;;) {
      const size_t k = next.fetch_add(1);
      if (k >= n) break;
      const size_t i = order[k];
      // Files after a failure need not run; earlier ones must (they decide
      // which error is reported).
      if (i > first_failure.load()) {
        if (k + 1 == n) files.close();
        continue;
      }
      ThreadGrant grant(files);
      files.start(grant, threads[i]);
      Options o = opt;
      o.threads = grant.threads();  // the count it starts with
      if (k + 1 == n) files.close();  // the last file holds its threads
      if (devices) o.device = (*devices)[w];
      o.progress = nullptr;
      if (opt.progress) o.progress = [&progress, i](uint64_t d, uint64_t) { progress[i].store(d); };
      started[i] = 1;
      Status s;
      try {
        s = task(i, o, grant);
      } catch (...) {
        thrown[i] = std::current_exception();
        s = {Error::Io, "exception"};  // only marks the failure: thrown[i] is what the caller gets
      }
      if (s.ok()) {
        progress[i].store(sizes[i]);
      } else {
        size_t f = first_failure.load();
        while (i < f && !first_failure.compare_exchange_weak(f, i)) {
        }
      }
      files.release(grant);
      results[i] = std::move(s);
      cv.notify_all();
    }
  };
  // A worker the system refuses (ThreadStartError) ends the run: the workers
  // already started take no further file (next past the end), finish the
  // one they hold, and are joined as the exception leaves.
  ThreadGroup pool([&] { next.store(n); });
  pool.reserve(in_flight);
  for (size_t w = 0; w < in_flight; ++w) pool.start([&worker, w] { worker(w); });
  {
    // The caller's progress callback runs here, on the calling thread only.
    uint64_t reported = ~uint64_t{0};
    auto report = [&] {
      uint64_t sum = 0;
      for (size_t i = 0; i < n; ++i) sum += progress[i].load();
      if (sum != reported) opt.progress(reported = sum, total);
    };
    std::unique_lock<std::mutex> lock(mu);
    while (workers_left > 0) {
      cv.wait_for(lock, std::chrono::milliseconds(100));
      if (!opt.progress) continue;
      lock.unlock();
      report();
      lock.lock();
    }
    lock.unlock();
    if (opt.progress) report();  // the last files' ends
  }
  pool.join();
  if (ran)
    for (size_t i = 0; i < n; ++i) (*ran)[i] = started[i] != 0;
  for (size_t i = 0; i < n; ++i) {
    if (thrown[i]) std::rethrow_exception(thrown[i]);
    if (started[i] && !results[i].ok()) return results[i];
  }
  return Status::Ok();
}

}  // namespace

Status run_file_tasks(const std::vector<uint64_t>& sizes, const Options& opt, const FileTask& task,
                      std::vector<bool>* ran) {
  const size_t n = sizes.size();
  if (ran) ran->assign(n, false);
  const unsigned threads = resolve_threads(opt.threads);
  const size_t in_flight = std::min<size_t>(n, std::max(1u, threads / 2));
  if (threads <= 1 || in_flight <= 1) return run_in_order(sizes, opt, task, ran);
  // Threads are shared among the large files in flight: a config.json or a
  // tokenizer takes a slot for milliseconds and must not leave a shard's
  // share of the threads idle for the rest of the run (4 shards + 1 config at
  // -T16: 4 threads per shard, not 3).
  constexpr uint64_t kSmallFile = uint64_t{64} << 20;
  const size_t large = static_cast<size_t>(
      std::count_if(sizes.begin(), sizes.end(), [](uint64_t b) { return b >= kSmallFile; }));
  const size_t sharing = std::max<size_t>(1, std::min(in_flight, large));
  const std::vector<size_t> order = largest_first(sizes);
  std::vector<unsigned> per_file(n, std::max<unsigned>(1, threads / static_cast<unsigned>(sharing)));
  // The large files that start together share the threads so that they end
  // together: each thread in turn goes to the file with the most bytes per
  // thread (this minimises the largest bytes per thread). bench_cpu_cores'
  // directory at -T16 (1.92, 0.87, 0.87, 1.92 GB) gets 5, 3, 3, 5 threads,
  // not 4 each and then a wait on the two large shards while 8 threads idle.
  if (sharing > 1) {
    for (size_t k = 0; k < sharing; ++k) per_file[order[k]] = 1;
    for (unsigned given = static_cast<unsigned>(sharing); given < threads; ++given) {
      size_t best = 0;
      for (size_t k = 1; k < sharing; ++k)  // a / b > c / d as a * d > c * b (no rounding)
        if (static_cast<unsigned __int128>(sizes[order[k]]) * per_file[order[best]] >
            static_cast<unsigned __int128>(sizes[order[best]]) * per_file[order[k]])
          best = k;
      ++per_file[order[best]];
    }
    // The small files that start with them (a config, a tokenizer) take the
    // smallest share; a file that starts later, when one has finished, takes
    // the threads then idle (0: decided in run_pool).
    unsigned smallest = threads;
    for (size_t k = 0; k < sharing; ++k) smallest = std::min(smallest, per_file[order[k]]);
    for (size_t k = sharing; k < in_flight; ++k) per_file[order[k]] = std::min(per_file[order[k]], smallest);
    for (size_t k = in_flight; k < n; ++k) per_file[order[k]] = 0;
  }
  return run_pool(sizes, opt, task, ran, in_flight, order, per_file, nullptr);
}

Status run_file_tasks_on(const std::vector<std::string>& devices, const std::vector<uint64_t>& sizes,
                         const Options& opt, const FileTask& task, std::vector<bool>* ran) {
  const size_t n = sizes.size();
  if (ran) ran->assign(n, false);
  if (devices.empty() || n == 0) return run_in_order(sizes, opt, task, ran);
  const size_t in_flight = std::min(n, devices.size());
  if (in_flight == 1) {
    Options o = opt;
    o.device = devices[0];
    return run_in_order(sizes, o, task, ran);
  }
  const std::vector<unsigned> per_file(
      n, std::max<unsigned>(1, resolve_threads(opt.threads) / static_cast<unsigned>(in_flight)));
  return run_pool(sizes, opt, task, ran, in_flight, largest_first(sizes), per_file, &devices);
}

}  // namespace df11
