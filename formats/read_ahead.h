// One worker's read-ahead: a thread loads item k + 1 into the other of two
// slots while item k is used, so the kernel's copy (pread) runs beside the
// coder. Items are asked for in order 0, 1, 2, ...; slot k & 1 is refilled
// only once item k has been released. A failed load is never counted as
// loaded: get() returns its error (an interrupt, a read error) instead.
// A thread the system refuses is ThreadStartError from the constructor.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

#include "df11.h"
#include "parallel.h"

namespace df11 {

class ReadAhead {
 public:
  using Load = std::function<Status(uint64_t item, int slot)>;
  ReadAhead(uint64_t items, Load load) : items_(items), load_(std::move(load)) {
    thread_ = start_thread([this] { run(); });
  }
  ~ReadAhead() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  ReadAhead(const ReadAhead&) = delete;
  ReadAhead& operator=(const ReadAhead&) = delete;

  // Waits until item k is in slot k & 1, or returns the load's error.
  Status get(uint64_t k) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return loaded_ > k || !error_.ok(); });
    return loaded_ > k ? Status::Ok() : error_;
  }
  void release(uint64_t k) {  // item k's slot may be refilled
    {
      std::lock_guard<std::mutex> lock(mu_);
      released_ = k + 1;
    }
    cv_.notify_all();
  }

 private:
  void run() {
    for (uint64_t k = 0; k < items_; ++k) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || k < released_ + 2; });
        if (stop_) return;
      }
      const Status s = load_(k, static_cast<int>(k & 1));
      std::lock_guard<std::mutex> lock(mu_);
      if (s.ok()) loaded_ = k + 1;
      else error_ = s;
      cv_.notify_all();
      if (!s.ok()) return;
    }
  }

  const uint64_t items_;
  const Load load_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t loaded_ = 0, released_ = 0;
  bool stop_ = false;
  Status error_;
  std::thread thread_;
};

}  // namespace df11
