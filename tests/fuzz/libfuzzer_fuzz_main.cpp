// libFuzzer wrapper: compiled once per target with -DDF11_FUZZ_ENTRY=<entry>.
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return DF11_FUZZ_ENTRY(data, size); }
