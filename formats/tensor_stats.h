#pragma once
#include "huffman.h"

namespace df11 {
inline uint32_t max_code_length(const CodeLengths& l) {
  uint32_t m = 0;
  for (uint8_t x : l) m = x > m ? x : m;
  return m;
}
}  // namespace df11
