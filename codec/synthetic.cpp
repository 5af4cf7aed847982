#include "synthetic.h"

#include <cmath>
#include <cstring>

#include "parallel.h"

namespace df11 {

namespace {

struct SplitMix64 {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * 0x1.0p-53; }
  double uniform_pm1() { return static_cast<double>(next() >> 11) * 0x1.0p-52 - 1.0; }
  // Box-Muller; one of the pair is enough here.
  double normal() { return std::sqrt(-2.0 * std::log(uniform())) * std::cos(6.283185307179586 * uniform()); }
};

uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7FFF + ((u >> 16) & 1);
  return static_cast<uint16_t>(u >> 16);
}

// Student-t with nu degrees of freedom by Bailey's polar method (one pow, one
// sqrt per value), scaled to unit variance.
double student_t(SplitMix64& r) {
  constexpr double kNu = 5.0;
  for (;;) {
    const double u = r.uniform_pm1(), v = r.uniform_pm1();
    const double w = u * u + v * v;
    if (w > 1.0 || w == 0.0) continue;
    return u * std::sqrt(kNu * (std::pow(w, -2.0 / kNu) - 1.0) / w) * std::sqrt((kNu - 2.0) / kNu);
  }
}

}  // namespace

void student_t_weights(uint16_t* out, uint64_t first_row, uint64_t rows, uint64_t cols, uint64_t key,
                       double stddev, double offset, unsigned threads) {
  parallel_for(rows, threads, [&](uint64_t r) {
    SplitMix64 rng{key ^ ((first_row + r) * 0x9E3779B97F4A7C15ull)};
    uint16_t* row = out + r * cols;
    for (uint64_t c = 0; c < cols; ++c) row[c] = to_bf16(static_cast<float>(offset + stddev * student_t(rng)));
  });
}

void synthetic_weights(uint16_t* out, uint64_t rows, uint64_t cols, uint64_t seed, double stddev,
                       unsigned threads) {
  parallel_for(rows, threads, [&](uint64_t r) {
    SplitMix64 rng{seed * 0x100000001B3ull + r};
    const double scale = stddev * std::exp(0.3 * rng.normal());
    uint16_t* row = out + r * cols;
    for (uint64_t c = 0; c < cols; ++c) {
      double x = rng.normal() * scale;
      if ((rng.next() & 1023) == 0) x *= 8.0;
      row[c] = to_bf16(static_cast<float>(x));
    }
  });
}

}  // namespace df11
