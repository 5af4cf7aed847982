// Options of the library tests (kept apart from test_util.h, whose users
// need not see namespace df11).
#pragma once
#include "df11.h"

namespace df11test {

// `threads` threads, the CPU only (no GPU verification).
inline df11::Options cpu_options(unsigned threads = 2) {
  df11::Options o;
  o.threads = threads;
  o.device = "cpu";
  return o;
}

}  // namespace df11test
