#!/usr/bin/env bash
# Runs ON the GPU machine, from the repository root, after scripts/build_cuda.sh
# built .gpu-build/bin here:  run(command="bash scripts/gpu_run.sh", carry=[".gpu-build/bin"])
# Steps (logs tee'd into $OUT): nvidia-smi; the [gpu] tests without [slow];
# the benchmark; compute-sanitizer memcheck
# on the [gpu] tests without [slow] and racecheck on the [race] ones; ncu of
# one batch launch; the [slow] test (> 2^31 weights); the C API test
# (tests/c_api_test.c: libdf11.so's GPU images and plans) plainly and under
# compute-sanitizer memcheck.
# STEPS="tests bench sizes memcheck racecheck ncu cli sass slow capi capimem" selects steps.
set -uo pipefail
OUT=${OUT:-/tmp/df11-gpu-out}
mkdir -p "$OUT"
BIN=.gpu-build/bin
STEPS=${STEPS:-"tests capi capimem bench memcheck racecheck ncu slow"}
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
has() { [[ " $STEPS " == *" $1 "* ]]; }
step() {  # step NAME LIMIT_S CMD...
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS
  echo "=== $name: $*" | tee -a "$OUT/$name.log"
  timeout "$limit" "$@" >>"$OUT/$name.log" 2>&1
  local rc=$?
  echo "$name rc=$rc $((SECONDS - t0))s" | tee -a "$SUMMARY"
  tail -n 15 "$OUT/$name.log"
}

nvidia-smi 2>&1 | tee "$OUT/nvidia-smi.txt" | head -n 15
export PATH=$PATH:/usr/local/cuda/bin
# gpu_verify_test.cpp runs the helper from the build tree's tests/ folder.
if [ -x "$BIN/make_bench_file" ]; then mkdir -p .gpu-build/tests && cp "$BIN/make_bench_file" .gpu-build/tests/; fi
if [ -x "$BIN/df11" ]; then cp "$BIN/df11" .gpu-build/df11; fi
if [ -x "$BIN/c_api_test" ] && [ -x "$BIN/df11" ]; then
  # c_api_test makes its inputs with the CLI and loads libdf11.so.1 from $BIN.
  export LD_LIBRARY_PATH="$PWD/$BIN${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  has capi && step capi "${CAPI_LIMIT:-120}" "$BIN/c_api_test" "$BIN/df11"
  has capimem && step capimem "${CAPIMEM_LIMIT:-300}" compute-sanitizer --tool memcheck --report-api-errors no --error-exitcode 9 \
    "$BIN/c_api_test" "$BIN/df11"
fi
has tests && step tests "${TESTS_LIMIT:-300}" "$BIN/df11_gpu_tests" "~[slow]"
if has bench; then
  step bench "${BENCH_LIMIT:-420}" "$BIN/df11_gpu_bench" --synthetic llama-8b-block
  grep -E "^(device|copy|mlp|self|batch|tensor)" "$OUT/bench.log" >"$OUT/bench_table.txt"
fi
has sizes && step sizes 300 "$BIN/df11_gpu_bench" --sizes
has memcheck && step memcheck "${MEMCHECK_LIMIT:-420}" compute-sanitizer --tool memcheck --report-api-errors no --error-exitcode 9 "$BIN/df11_gpu_tests" "${MEMCHECK_SPEC:-~[slow]}"
has racecheck && step racecheck "${RACECHECK_LIMIT:-420}" compute-sanitizer --tool racecheck --error-exitcode 9 "$BIN/df11_gpu_tests" "[race]"
if has ncu; then
  step ncu 300 ncu --kernel-name regex:decode --launch-skip 3 --launch-count 1 \
    --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
    --section SchedulerStats --section MemoryWorkloadAnalysis \
    --metrics regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio \
    "$BIN/df11_gpu_bench" --synthetic llama-8b-block --batch-only --reps 3
fi
if has cli && [ -x "$BIN/df11" ]; then
  step cli "${CLI_LIMIT:-200}" "$BIN/df11" bench --synthetic llama-8b-block --json
fi
has sass && cuobjdump -sass "$BIN/df11_gpu_bench" >"$OUT/sass.txt" 2>&1
has slow && step slow 420 "$BIN/df11_gpu_tests" "[slow]"
echo "--- summary"
cat "$SUMMARY"
grep -hE "^(device|copy|kernel|self|mlp|batch)" "$OUT/bench.log" 2>/dev/null | tail -n 60
