// DF11_AVX2_CLONES: marks a vectorisable loop to be compiled twice, for AVX2
// and for the baseline, with the choice made once at load time (gcc's
// target_clones, an ifunc). Off where it cannot work: other compilers and
// architectures, and ThreadSanitizer builds, whose runtime is not yet up
// when the ifunc resolvers run at load time (they crash there).
#pragma once

#if defined(__SANITIZE_THREAD__)
#define DF11_AVX2_CLONES
#elif defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DF11_AVX2_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define DF11_AVX2_CLONES
#endif
