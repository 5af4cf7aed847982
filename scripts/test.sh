#!/usr/bin/env bash
# Build df11 (with CUDA when nvcc is present) and run the whole test suite.
# Usage: bash scripts/test.sh [BUILD_DIR]      (default: build)
# GPU tests skip, and say so, on machines without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j"$(nproc)"
cd "$build"
ctest --output-on-failure -j"$(nproc)"
