#!/usr/bin/env bash
# Runs ON the GPU machine, from the repository root, after scripts/build_cuda.sh
# built .gpu-build/bin here (libdf11.so, the df11 CLI):
#   run(command="bash scripts/gpu_run_python.sh", carry=[".gpu-build/bin"])
# Steps (logs in $OUT): the Python tests (python/tests: GPU reads, plans,
# load_model resident and offloaded vs transformers' BF16 model), then
# scripts/bench_inference.py (models in MODELS, extra options in BENCH_ARGS).
# STEPS="pytest bench" selects steps (limits PYTEST_LIMIT 120 s, BENCH_LIMIT 450 s:
# one call of 600 s; the three models take about 6-8 minutes, so run
# MODELS=llama-8b in a call of its own). Needs torch, transformers and accelerate
# there (the GPU machine's python3 has them).
set -uo pipefail
OUT=${OUT:-/tmp/df11-py-out}
mkdir -p "$OUT"
BIN=${BIN:-$PWD/.gpu-build/bin}
STEPS=${STEPS:-"pytest bench"}
export DF11_LIBRARY=$BIN/libdf11.so DF11_CLI=$BIN/df11 PYTHONPATH=$PWD/python PYTHONUNBUFFERED=1
has() { [[ " $STEPS " == *" $1 "* ]]; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
if has pytest; then
  timeout "${PYTEST_LIMIT:-120}" python3 -m pytest -q -rs -p no:cacheprovider python/tests >"$OUT/pytest.log" 2>&1
  echo "pytest rc=$?"
  grep -E "passed|failed|FAILED|^E  |SKIPPED" "$OUT/pytest.log" | tail -n 15
fi
if has bench; then
  # shellcheck disable=SC2086
  timeout "${BENCH_LIMIT:-450}" python3 scripts/bench_inference.py --cli "$DF11_CLI" \
    --models "${MODELS:-llama-8b,llama-1b,gpt2}" --out "$OUT" ${BENCH_ARGS:-} 2>&1 |
    grep -v "Writing model shards\|Loading weights" >"$OUT/bench.log"
  echo "bench rc=$?"
  tail -n 60 "$OUT/bench.log"
fi
