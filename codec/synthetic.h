// Deterministic synthetic BF16 weights with the statistics of trained
// transformer matrices (for the sample model, tests and `df11 bench`).
#pragma once
#include <cstdint>

namespace df11 {

// rows x cols BF16 values (row-major): each row is N(0, s_r^2) with a per-row
// scale s_r = stddev * exp(N(0, 0.3^2)), plus 0.1% outliers at 8x the row
// scale, rounded to nearest even. Exponent entropy lands near 2.6-2.7 bits,
// as in real checkpoints. Identical output for any thread count.
void synthetic_weights(uint16_t* out, uint64_t rows, uint64_t cols, uint64_t seed,
                       double stddev = 0.02, unsigned threads = 1);

// Rows [first_row, first_row + rows) of a rows x cols tensor of
// offset + stddev * t values, t Student-t with 5 degrees of freedom at unit
// variance (heavier tails, as trained weights have). Row r has its own stream
// seeded from key and r, so any slice of a tensor is the same whichever way
// it is cut, for any thread count.
void student_t_weights(uint16_t* out, uint64_t first_row, uint64_t rows, uint64_t cols, uint64_t key,
                       double stddev, double offset = 0.0, unsigned threads = 1);

}  // namespace df11
