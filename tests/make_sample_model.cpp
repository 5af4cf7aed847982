// make_sample_model OUT_DIR [--hidden N] [--layers N] [--intermediate N] [--vocab N] [--seed N]
// Writes a small synthetic Hugging Face style model directory (see support/sample_model.h).
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "sample_model.h"

namespace {

int usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s OUT_DIR [--hidden N] [--layers N] [--intermediate N] [--vocab N] [--seed N]\n"
               "  defaults: hidden 512, layers 4, intermediate 1376, vocab 4096, seed 1\n",
               argv0);
  return 2;
}

bool parse_u64(const char* s, uint64_t& out) {
  if (!s || !*s || *s == '-') return false;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(s, &end, 10);
  if (*end != '\0') return false;
  out = v;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  df11test::SampleOptions o;
  std::string out_dir;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    uint64_t* target = nullptr;
    if (a == "--hidden") target = &o.hidden;
    else if (a == "--layers") target = &o.layers;
    else if (a == "--intermediate") target = &o.intermediate;
    else if (a == "--vocab") target = &o.vocab;
    else if (a == "--seed") target = &o.seed;
    else if (a == "-h" || a == "--help") return usage(argv[0]), 0;
    if (target) {
      if (i + 1 >= argc || !parse_u64(argv[i + 1], *target)) {
        std::fprintf(stderr, "%s: %s needs a non-negative integer\n", argv[0], a.c_str());
        return 2;
      }
      ++i;
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "%s: unknown option %s\n", argv[0], a.c_str());
      return usage(argv[0]);
    } else if (out_dir.empty()) {
      out_dir = a;
    } else {
      return usage(argv[0]);
    }
  }
  if (out_dir.empty()) return usage(argv[0]);
  try {
    df11test::make_sample_model(out_dir, o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", argv[0], e.what());
    return 1;
  }
  std::printf("wrote sample model to %s\n", out_dir.c_str());
  return 0;
}
