#!/bin/sh
# Build the CPU suite with AddressSanitizer + UndefinedBehaviorSanitizer into
# build-asan and run ctest there (CI). Extra arguments go to ctest.
#   scripts/sanitize.sh [-R regex ...]
# DF11_ASAN_BUILD overrides the build dir, DF11_JOBS the parallelism (default 2).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${DF11_ASAN_BUILD:-$root/build-asan}
jobs=${DF11_JOBS:-2}
cmake -S "$root" -B "$build" -DDF11_SANITIZE=ON -DDF11_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$jobs"
# halt_on_error: any finding fails the test that hit it. Leak checking stays
# on. Tests that run the CLI inherit these settings.
export ASAN_OPTIONS="${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
cd "$build"
exec ctest -j"$jobs" --output-on-failure "$@"
