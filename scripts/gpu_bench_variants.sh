#!/usr/bin/env bash
# The GPU decoder's numbers (README "GPU decode"), run ON the GPU machine after
# scripts/build_cuda.sh here:
#   run(command="bash scripts/gpu_bench_variants.sh", carry=[".gpu-build/bin"])
# Steps (STEPS, default "tests bench sizes"; also "memcheck", "racecheck", "ncu", "ncushape", "sass"): the [gpu]
# tests without [slow]; the kernel on the Llama-3-8B layer batch (--batch-only)
# and on --sizes; ncu of one launch. Prints a compact table last: ms and GB/s of
# BF16 output for the batch, 4096x14336 and 4096x4096. (Until issue 12 it also
# compared kernel variants compiled into df11_gpu_bench; git history keeps them.)
# BIN=another/bin compares an older build in the same call.
set -uo pipefail
OUT=${OUT:-/tmp/df11-gpu-out}
mkdir -p "$OUT"
BIN=${BIN:-.gpu-build/bin}  # another build tree to compare (e.g. a copy of an older bin)
STEPS=${STEPS:-"tests bench sizes"}
has() { [[ " $STEPS " == *" $1 "* ]]; }
export PATH=$PATH:/usr/local/cuda/bin
# gpu_verify_test.cpp runs the helper from the build tree's tests/ folder.
if [ -x "$BIN/make_bench_file" ]; then mkdir -p .gpu-build/tests && cp "$BIN/make_bench_file" .gpu-build/tests/; fi
if [ -x "$BIN/df11" ]; then cp "$BIN/df11" .gpu-build/df11; fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,temperature.gpu,power.draw --format=csv \
  | tee "$OUT/smi.txt"
if has tests; then
  timeout "${TESTS_LIMIT:-300}" "$BIN/df11_gpu_tests" "~[slow]" >"$OUT/tests.log" 2>&1
  echo "tests rc=$?"
  tail -n 4 "$OUT/tests.log"
fi
has bench && { timeout 300 "$BIN/df11_gpu_bench" --synthetic llama-8b-block --batch-only >>"$OUT/bench.log" 2>&1; echo "bench rc=$?"; }
has sizes && { timeout 300 "$BIN/df11_gpu_bench" --sizes >>"$OUT/sizes.log" 2>&1; echo "sizes rc=$?"; }
if has memcheck; then
  timeout "${MEMCHECK_LIMIT:-300}" compute-sanitizer --tool memcheck --report-api-errors no --error-exitcode 9 \
    "$BIN/df11_gpu_tests" "${MEMCHECK_SPEC:-~[slow]}" >"$OUT/memcheck.log" 2>&1
  echo "memcheck rc=$?"
  tail -n 3 "$OUT/memcheck.log"
fi
if has racecheck; then
  timeout "${RACECHECK_LIMIT:-300}" compute-sanitizer --tool racecheck --error-exitcode 9 "$BIN/df11_gpu_tests" "[race]" \
    >"$OUT/racecheck.log" 2>&1
  echo "racecheck rc=$?"
  tail -n 3 "$OUT/racecheck.log"
fi
if has ncu; then
  timeout 240 ncu --kernel-name regex:decode --launch-skip 3 --launch-count 1 \
    --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
    --section SchedulerStats --section MemoryWorkloadAnalysis --section InstructionStats \
    --metrics regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio,smsp__thread_inst_executed_per_inst_executed.ratio,l1tex__data_bank_conflicts_pipe_lsu_mem_shared.sum,l1tex__data_pipe_lsu_wavefronts_mem_shared.sum,smsp__inst_executed.sum \
    "$BIN/df11_gpu_bench" --synthetic llama-8b-block --batch-only --reps 3 >"$OUT/ncu.log" 2>&1
  echo "ncu rc=$?"
fi
# "ncushape": one launch of the kernel on --shape NCU_SHAPE
# (default 4096x14336): instruction, shared-memory and stall totals, and the
# per-SASS-instruction source counters (executed instructions, stall samples) as CSV.
if has ncushape; then
  timeout 300 ncu --kernel-name regex:decode --launch-skip 3 --launch-count 1 \
    --section SpeedOfLight --section LaunchStats --section WarpStateStats --section SchedulerStats \
    --section InstructionStats --section SourceCounters \
    --metrics smsp__inst_executed.sum,l1tex__data_pipe_lsu_wavefronts_mem_shared.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared.sum,smsp__issue_active.avg.pct_of_peak_sustained_active,sm__cycles_elapsed.avg,dram__bytes.sum \
    -o "$OUT/shape" "$BIN/df11_gpu_bench" --shape "${NCU_SHAPE:-4096x14336}" --reps 3 \
    >"$OUT/ncushape.log" 2>&1
  echo "ncushape rc=$?"
  ncu --import "$OUT/shape.ncu-rep" --page details >>"$OUT/ncushape.log" 2>&1
  ncu --import "$OUT/shape.ncu-rep" --page source --print-source sass --csv >"$OUT/source.csv" 2>&1
  echo "source.csv $(wc -l <"$OUT/source.csv") lines"
  rm -f "$OUT/shape.ncu-rep"
fi
has sass && cuobjdump -sass "$BIN/df11_gpu_bench" >"$OUT/sass.txt" 2>&1
grep -m1 -h "^copy" "$OUT/bench.log" "$OUT/sizes.log" 2>/dev/null
# kernel name, then its rows: batch (from bench.log), 4096x14336 and 4096x4096 (from sizes.log)
for f in bench sizes; do
  [ -f "$OUT/$f.log" ] || continue
  awk -v f=$f '/kernel:/ {k=$NF} /^batch/ && f=="bench" {printf "%-24s batch      %s ms %s GB/s %s  b2b %s ms %s GB/s\n", k, $8, $9, $10, $17, $18}
       /^4096x/ {printf "%-24s %-10s %s ms %s GB/s %s  b2b %s ms %s GB/s\n", k, $1, $4, $5, $6, $13, $14}' "$OUT/$f.log"
done | sort -s -k1,1
grep -h "failed" "$OUT"/bench.log "$OUT"/sizes.log 2>/dev/null | head || true
