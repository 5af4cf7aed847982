// Sizes for people: decimal units, as zstd prints them ("1.92 GB").
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>

namespace df11cli {

inline std::string human_bytes(uint64_t b) {
  char buf[32];
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1000 && u < 4) { v /= 1000; ++u; }
  std::snprintf(buf, sizeof buf, u ? "%.2f %s" : "%.0f %s", v, units[u]);
  return buf;
}

}  // namespace df11cli
