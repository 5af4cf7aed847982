// A consumer thread fed with copies held in a few reused buffers: a producer
// copies its bytes (cheap: they are in cache) and goes on coding while the
// consumer (a hash, or the kernel's page-cache copy of a write) runs beside
// it, in bounded memory (buffers x kBufferBytes).
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
#include "parallel.h"

namespace df11 {

class BehindQueue {
 public:
  static constexpr uint64_t kBufferBytes = uint64_t{4} << 20;
  // Contiguous pieces up to this size are joined into one item (push).
  static constexpr uint64_t kCoalesceBytes = uint64_t{1} << 20;
  // `at`: the push's tag plus the piece's offset within the push (a file
  // offset for writes; hashes ignore it).
  using Consumer = std::function<Status(const uint8_t* data, uint64_t size, uint64_t at)>;

  explicit BehindQueue(Consumer consumer, int buffers = 4) : consumer_(std::move(consumer)), pool_(buffers) {
    for (int i = buffers - 1; i >= 0; --i) free_.push_back(i);
    thread_ = start_thread([this] { run(); });  // ThreadStartError if refused
  }
  ~BehindQueue() { finish(); }
  BehindQueue(const BehindQueue&) = delete;
  BehindQueue& operator=(const BehindQueue&) = delete;

  // Queues a copy of the bytes (pieces are consumed in push order); waits
  // while every buffer is in flight. Returns the consumer's error, if any.
  // Thread-safe, but pushes of several threads interleave their pieces: an
  // order-sensitive consumer (a hash) needs one producer; positioned writes
  // (the tag is the offset) do not.
  Status push(const void* data, uint64_t size, uint64_t tag = 0) {
    const uint8_t* p = static_cast<const uint8_t*>(data);
    if (size > 0 && size <= kCoalesceBytes) {
      // A small piece that continues the last one still queued joins it:
      // the sections of a small tensor went out as about nine writes, each
      // with a wake-up of the consumer, which made a file of thousands of
      // small tensors slower than zstd -1 (a black-box audit). The consumer
      // takes an item out of the queue before reading its buffer, and leaves
      // the last item alone until it is sealed (below), so that pieces keep
      // joining it even while the consumer is idle.
      std::lock_guard<std::mutex> lock(mu_);
      if (!error_.ok()) return error_;
      if (!queue_.empty()) {
        Item& last = queue_.back();
        if (!last.sealed && last.at + last.size == tag && last.size + size <= kCoalesceBytes) {
          std::vector<uint8_t>& buf = pool_[static_cast<size_t>(last.buffer)];
          if (buf.size() < last.size + size) buf.resize(last.size + size);
          std::memcpy(buf.data() + last.size, p, size);
          last.size += size;
          return Status::Ok();
        }
      }
    }
    while (size > 0) {
      const uint64_t n = std::min(size, kBufferBytes);
      int b;
      {
        std::unique_lock<std::mutex> lock(mu_);
        // The consumer must free one: nothing may stay open meanwhile, not
        // even an item another producer queues while this one waits.
        ++waiting_;
        while (free_.empty() && error_.ok()) {
          seal_back();
          freed_.wait(lock);
        }
        --waiting_;
        if (!error_.ok()) return error_;
        b = free_.back();
        free_.pop_back();
      }
      // Grown to what it holds, not to kBufferBytes: decode windows are about
      // 1 MB, and every buffer of every file in flight is touched.
      std::vector<uint8_t>& buf = pool_[static_cast<size_t>(b)];
      if (buf.size() < n) buf.resize(n);
      std::memcpy(buf.data(), p, n);
      {
        std::lock_guard<std::mutex> lock(mu_);
        // An item that a later one follows is complete: it is sealed, and the
        // consumer woken for it. A small item stays open for more pieces
        // (unsealed: the consumer waits) until then, or until drain() or
        // finish(); a big one is sealed at once, and so is any while a drain
        // or a producer waits on the consumer.
        seal_back();
        queue_.push_back({b, n, tag, false});
        if (n > kCoalesceBytes || waiting_ > 0 || draining_ > 0) seal_back();
      }
      p += n;
      size -= n;
      tag += n;
    }
    return Status::Ok();
  }

  // Waits until everything queued so far is consumed; the first error.
  Status drain() {
    std::unique_lock<std::mutex> lock(mu_);
    ++draining_;  // pushes from other threads meanwhile are sealed at once
    seal_back();
    idle_.wait(lock, [&] { return queue_.empty() && !busy_; });
    --draining_;
    return error_;
  }

  // Bytes still queued are no longer wanted (the output is being discarded):
  // they are dropped instead of consumed.
  void cancel() {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_ = true;
  }

  // Consumes everything queued (unless cancelled), stops the thread; the
  // first error.
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
    uint64_t at;
    bool sealed;  // complete: the consumer may take it
  };
  // Seals the last item, if open, and wakes the consumer for it. With mu_ held.
  void seal_back() {
    if (queue_.empty() || queue_.back().sealed) return;
    queue_.back().sealed = true;
    work_.notify_one();
  }
  void run() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      work_.wait(lock, [&] { return stop_ || (!queue_.empty() && queue_.front().sealed); });
      if (queue_.empty()) return;
      const Item it = queue_.front();
      queue_.pop_front();
      busy_ = true;
      const bool skip = !error_.ok() || cancelled_;
      lock.unlock();
      Status s = skip ? Status::Ok() : consumer_(pool_[static_cast<size_t>(it.buffer)].data(), it.size, it.at);
      lock.lock();
      if (!s.ok() && error_.ok()) error_ = s;
      busy_ = false;
      free_.push_back(it.buffer);
      freed_.notify_all();
      if (queue_.empty()) idle_.notify_all();
    }
  }
  Consumer consumer_;
  std::vector<std::vector<uint8_t>> pool_;
  std::vector<int> free_;
  std::deque<Item> queue_;
  std::mutex mu_;
  std::condition_variable work_, freed_, idle_;
  bool stop_ = false, busy_ = false, cancelled_ = false;
  int waiting_ = 0, draining_ = 0;  // producers waiting for a buffer; drain() calls waiting
  Status error_;
  std::thread thread_;
};

}  // namespace df11
