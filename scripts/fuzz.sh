#!/bin/sh
# Build (clang, libFuzzer, ASan + UBSan) and run one df11 fuzz target.
#   scripts/fuzz.sh TARGET SECONDS [extra libFuzzer flags...]
# TARGET: safetensors_header | container | huffman | roundtrip
# Build dir: build-fuzz. Seeds: tests/fuzz/corpus/TARGET (read only); new
# inputs go to build-fuzz/corpus/TARGET; crashes to build-fuzz/artifacts/.
# Copy a crashing input into tests/fuzz/corpus/TARGET/ once it is fixed: the
# ctest suite replays that directory (tests/fuzz_corpus_replay_test.cpp).
set -eu
if [ $# -lt 2 ]; then
  echo "usage: $0 TARGET SECONDS [libFuzzer flags...]" >&2
  exit 2
fi
target=$1
seconds=$2
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
build=${DF11_FUZZ_BUILD:-$root/build-fuzz}
jobs=${DF11_FUZZ_JOBS:-2}
if [ ! -f "$build/CMakeCache.txt" ]; then
  CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DDF11_FUZZ=ON -DDF11_SANITIZE=ON -DDF11_CUDA=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
nice cmake --build "$build" -j"$jobs" --target "fuzz_$target"
mkdir -p "$build/corpus/$target" "$build/artifacts"
dict=""
[ -f "$root/tests/fuzz/$target.dict" ] && dict="-dict=$root/tests/fuzz/$target.dict"
# Leak checking is off: a mapped Reader is freed at exit anyway, and leaks are
# not what these targets look for. UBSan findings abort (-fno-sanitize-recover).
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
exec nice "$build/tests/fuzz_$target" "$build/corpus/$target" "$root/tests/fuzz/corpus/$target" \
  -max_total_time="$seconds" -rss_limit_mb=2560 -malloc_limit_mb=2048 -timeout=30 -print_final_stats=1 \
  -artifact_prefix="$build/artifacts/$target-" $dict "$@"
