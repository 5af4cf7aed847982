// Minimal fork-join helper: run fn(i) for i in [0, count) on up to `threads`
// threads. Work is handed out dynamically; results must not depend on order.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace df11 {

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
