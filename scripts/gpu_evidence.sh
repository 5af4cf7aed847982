#!/usr/bin/env bash
# The GPU-machine evidence for issues 11, 12 and 13 in priority order, for
# calls of at most 600 s (what ran comes back in $OUT if a call is cut).
# Prepare here (a machine with nvcc and PyPI, no GPU needed):
#   bash scripts/build_cuda.sh                     # .gpu-build/bin: df11, libdf11.so, tests
#   pip download dfloat11==0.5.0 dahuffman==0.4.2 --no-deps -d .interop-wheels
# then on the GPU machine, from the repository root:
#   run(command="bash scripts/gpu_evidence.sh", carry=[".gpu-build/bin", ".interop-wheels"])
#   run(command="STEPS=bench8b bash scripts/gpu_evidence.sh", carry=[...])   # second call
# STEPS (default "capi interop pytest cores bench", run in the order given): capi = C API test plain and
# under compute-sanitizer memcheck, and the [gpu] tests; interop = export to
# DFloat11's format loaded by dfloat11 0.5.0 (scripts/dfloat11_interop.py);
# pytest = python/tests on the GPU; cores = scripts/bench_cpu_cores.sh on the
# machine's CPUs; bench = scripts/bench_inference.py on gpt2 and llama-1b;
# bench8b = the same on the Llama-3-8B-shaped model (a call of its own);
# kbench = the decode kernel against the copy ceiling (df11_gpu_bench) on a
# Llama-3-8B layer and on one 128256x4096 (1 GiB) embedding.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/df11-evidence}
mkdir -p "$OUT"
STEPS=${STEPS:-"capi interop pytest cores bench"}
BIN=$PWD/.gpu-build/bin
T0=$SECONDS
mark() { echo "[$1 done, t=$((SECONDS - T0)) s]"; }
step_capi() {
  STEPS="capi capimem tests" bash scripts/gpu_run.sh 2>&1 | grep -E "rc=|passed|failed|FAILED|ERROR SUMMARY" | tail -8
}
step_interop() {
  mkdir -p /tmp/df11-site
  python3 -m pip install -q --no-deps --no-index --target /tmp/df11-site .interop-wheels/*.whl >/dev/null 2>&1
  PYTHONPATH=/tmp/df11-site PYTHONUNBUFFERED=1 timeout 150 python3 scripts/dfloat11_interop.py --df11 "$BIN/df11" \
    --work /dev/shm/df11-interop --compress-blocks 1 --json-out "$OUT/interop.json" >"$OUT/interop.log" 2>&1
  echo "interop rc=$?"; tail -n 14 "$OUT/interop.log"; rm -rf /dev/shm/df11-interop
}
step_pytest() {
  STEPS=pytest PYTEST_LIMIT=100 OUT=$OUT bash scripts/gpu_run_python.sh 2>&1 | tail -n 6
}
step_cores() {
  DF11=$BIN/df11 MAKE_BENCH=$BIN/make_bench_file timeout 240 bash scripts/bench_cpu_cores.sh /dev/shm/df11-cores >"$OUT/cores.log" 2>&1
  echo "cores rc=$?"; tail -n 14 "$OUT/cores.log"; rm -rf /dev/shm/df11-cores
}
step_kbench() {
  nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader >"$OUT/kbench.log"
  timeout 150 "$BIN/df11_gpu_bench" --synthetic llama-8b-block >>"$OUT/kbench.log" 2>&1
  echo "kbench layer rc=$?"
  timeout 150 "$BIN/df11_gpu_bench" --shape 128256x4096 >>"$OUT/kbench.log" 2>&1
  echo "kbench embed rc=$?"; grep -vE "^\s*$" "$OUT/kbench.log" | tail -n 30
}
step_bench_models() {  # NAME MODELS
  DF11_LIBRARY=$BIN/libdf11.so PYTHONPATH=$PWD/python timeout 480 python3 scripts/bench_inference.py \
    --cli "$BIN/df11" --models "$2" --reps 1 --out "$OUT" >"$OUT/$1.log" 2>&1
  echo "$1 rc=$?"; grep -v "Writing model\|Loading weights" "$OUT/$1.log" | tail -n 30
}
step_bench() { step_bench_models bench gpt2,llama-1b; }
step_bench8b() { step_bench_models bench8b llama-8b; }
# The steps run in the order STEPS names them.
for s in $STEPS; do
  if ! declare -F "step_$s" >/dev/null; then echo "unknown step: $s" >&2; exit 2; fi
  "step_$s"
  mark "$s"
done
