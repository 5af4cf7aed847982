// Entry points of the df11 fuzz targets. Each is called both by a libFuzzer
// binary (tests/fuzz/libfuzzer_fuzz_main.cpp, built with -DDF11_FUZZ=ON and
// clang) and by tests/fuzz_corpus_replay_test.cpp, which replays every file of
// tests/fuzz/corpus/<target>/ in the ordinary test suite (g++ or clang).
// An entry returns 0; a broken invariant prints a line and aborts.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

extern "C" {
int df11_fuzz_safetensors_header(const uint8_t* data, size_t size);
int df11_fuzz_container(const uint8_t* data, size_t size);
int df11_fuzz_huffman(const uint8_t* data, size_t size);
int df11_fuzz_roundtrip(const uint8_t* data, size_t size);
}

#define DF11_FUZZ_CHECK(cond)                                                             \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      std::fprintf(stderr, "df11 fuzz invariant failed at %s:%d: %s\n", __FILE__, __LINE__, \
                   #cond);                                                                \
      std::abort();                                                                       \
    }                                                                                     \
  } while (0)
