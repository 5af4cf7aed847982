// A consumer thread fed with copies held in a few reused buffers: a producer
// copies its bytes (cheap: they are in cache) and goes on coding while the
// consumer (a hash) runs beside it, in bounded memory (kBuffers x kBufferBytes).
#pragma once
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "df11.h"

namespace df11 {

class BehindQueue {
 public:
  static constexpr uint64_t kBufferBytes = uint64_t{4} << 20;
  static constexpr int kBuffers = 4;
  using Consumer = std::function<Status(const uint8_t* data, uint64_t size)>;

  explicit BehindQueue(Consumer consumer) : consumer_(std::move(consumer)), pool_(kBuffers) {
    for (int i = 0; i < kBuffers; ++i) free_.push_back(i);
    thread_ = std::thread([this] { run(); });
  }
  ~BehindQueue() { finish(); }
  BehindQueue(const BehindQueue&) = delete;
  BehindQueue& operator=(const BehindQueue&) = delete;

  // Queues a copy of the bytes (pieces are consumed in push order); waits
  // while every buffer is in flight. Returns the consumer's error, if any.
  Status push(const void* data, uint64_t size) {
    const uint8_t* p = static_cast<const uint8_t*>(data);
    while (size > 0) {
      const uint64_t n = std::min(size, kBufferBytes);
      int b;
      {
        std::unique_lock<std::mutex> lock(mu_);
        freed_.wait(lock, [&] { return !free_.empty() || !error_.ok(); });
        if (!error_.ok()) return error_;
        b = free_.back();
        free_.pop_back();
      }
      std::vector<uint8_t>& buf = pool_[static_cast<size_t>(b)];
      if (buf.size() < kBufferBytes) buf.resize(kBufferBytes);
      std::memcpy(buf.data(), p, n);
      {
        std::lock_guard<std::mutex> lock(mu_);
        queue_.push_back({b, n});
      }
      work_.notify_one();
      p += n;
      size -= n;
    }
    return Status::Ok();
  }

  // Consumes everything queued, stops the thread; the first error.
  Status finish() {
    if (thread_.joinable()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        stop_ = true;
      }
      work_.notify_one();
      thread_.join();
    }
    return error_;
  }

 private:
  struct Item {
    int buffer;
    uint64_t size;
  };
  void run() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      work_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      const Item it = queue_.front();
      queue_.pop_front();
      const bool skip = !error_.ok();
      lock.unlock();
      Status s = skip ? Status::Ok() : consumer_(pool_[static_cast<size_t>(it.buffer)].data(), it.size);
      lock.lock();
      if (!s.ok() && error_.ok()) error_ = s;
      free_.push_back(it.buffer);
      freed_.notify_all();
    }
  }
  Consumer consumer_;
  std::vector<std::vector<uint8_t>> pool_;
  std::vector<int> free_;
  std::deque<Item> queue_;
  std::mutex mu_;
  std::condition_variable work_, freed_;
  bool stop_ = false;
  Status error_;
  std::thread thread_;
};

}  // namespace df11
