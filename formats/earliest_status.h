// The error of a group of workers that report: the one of the earliest
// piece (window, file) whichever worker saw it first, so that a run reports
// the same error at every thread count.
#pragma once
#include <atomic>
#include <cstdint>
#include <mutex>

#include "df11.h"

namespace df11 {

struct EarliestStatus {
  std::mutex mu;
  uint64_t where = UINT64_MAX;
  Status s;
  std::atomic<bool> failed{false};  // workers poll it to stop early
  void set(uint64_t at, Status e) {
    std::lock_guard<std::mutex> lock(mu);
    if (at < where) {
      where = at;
      s = std::move(e);
    }
    failed = true;
  }
  // Stops the workers without a piece's error: run_workers' `stop`, only
  // ever on the way to an exception, which is what the caller then sees.
  void stop() { failed = true; }
};

}  // namespace df11
