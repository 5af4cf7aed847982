#!/bin/sh
# Build the CPU suite under a sanitizer and run ctest there (CI runs both).
#   scripts/sanitize.sh [-R regex ...]                     AddressSanitizer + UBSan, in build-asan
#   DF11_SANITIZER=thread scripts/sanitize.sh [-R ...]     ThreadSanitizer, in build-tsan
# Extra arguments go to ctest. DF11_ASAN_BUILD / DF11_TSAN_BUILD override the
# build dir, DF11_JOBS the parallelism (default 2).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
jobs=${DF11_JOBS:-2}
case "${DF11_SANITIZER:-address}" in
  address)
    build=${DF11_ASAN_BUILD:-$root/build-asan}
    cmake -S "$root" -B "$build" -DDF11_SANITIZE=ON -DDF11_TSAN=OFF -DDF11_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    # halt_on_error: any finding fails the test that hit it. Leak checking
    # stays on. Tests that run the CLI inherit these settings.
    export ASAN_OPTIONS="${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1}"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
    ;;
  thread)
    build=${DF11_TSAN_BUILD:-$root/build-tsan}
    cmake -S "$root" -B "$build" -DDF11_TSAN=ON -DDF11_SANITIZE=OFF -DDF11_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    # halt_on_error: a race or lock-order report fails the test (or the CLI
    # run inside it) that hit it, instead of only printing at exit.
    export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}"
    ;;
  *)
    echo "sanitize.sh: DF11_SANITIZER must be address or thread" >&2
    exit 2
    ;;
esac
cmake --build "$build" -j"$jobs"
cd "$build"
exec ctest -j"$jobs" --output-on-failure "$@"
