// `df11 bench`: GPU decode timing (needs a CUDA build and a GPU).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "df11.h"

namespace df11cli {

struct BenchArgs {
  std::string input;
  std::string synthetic;
  std::string device = "cuda";
  int reps = 50;
  unsigned threads = 0;
};

// Prints the table to stdout unless json; fills `body` for --json.
df11::Status run_bench(const BenchArgs& a, bool json, nlohmann::ordered_json* body);

}  // namespace df11cli
