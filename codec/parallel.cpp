#include "parallel.h"

namespace df11 {

namespace {
// Starts left before the test hook refuses them; negative: the hook is off.
std::atomic<int> g_starts_allowed{-1};
}  // namespace

namespace testing {
int refuse_thread_starts_after(int starts) noexcept { return g_starts_allowed.exchange(starts < 0 ? -1 : starts); }
}  // namespace testing

namespace detail {
bool thread_start_refused() noexcept {
  int left = g_starts_allowed.load(std::memory_order_relaxed);
  while (left > 0 && !g_starts_allowed.compare_exchange_weak(left, left - 1, std::memory_order_relaxed)) {
  }
  return left == 0;
}
}  // namespace detail

}  // namespace df11
