#!/usr/bin/env bash
# Builds the whole tree (CPU + CUDA, tests ON) into the git-ignored .gpu-build/
# on a machine with nvcc (no GPU needed), then collects what scripts/gpu_run.sh
# needs into .gpu-build/bin (stripped), the only folder the GPU call carries:
#   run(command="bash scripts/gpu_run.sh", carry=[".gpu-build/bin"])
# If parts of the tree outside cuda/ do not build, the GPU targets are built alone.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
cmake -S . -B .gpu-build -DCMAKE_BUILD_TYPE=Release -DDF11_CUDA=ON -DDF11_TESTS=ON
if ! cmake --build .gpu-build -j "$JOBS"; then
  echo "build_cuda.sh: full build failed; building df11_cuda df11_gpu_bench df11_gpu_tests only" >&2
  cmake --build .gpu-build -j "$JOBS" --target df11_cuda df11_gpu_bench df11_gpu_tests
  cmake --build .gpu-build -j "$JOBS" --target df11 c_api_test || true  # the C API, when it builds
fi
rm -rf .gpu-build/bin
mkdir -p .gpu-build/bin
cp .gpu-build/tests/df11_gpu_tests .gpu-build/cuda/df11_gpu_bench .gpu-build/bin/
if [ -x .gpu-build/tests/make_bench_file ]; then cp .gpu-build/tests/make_bench_file .gpu-build/bin/; fi
if [ -x .gpu-build/tests/write_path_bench ]; then cp .gpu-build/tests/write_path_bench .gpu-build/bin/; fi
for cli in .gpu-build/df11 .gpu-build/cli/df11; do if [ -x "$cli" ]; then cp "$cli" .gpu-build/bin/; break; fi; done  # the CLI, when it built
# The C API: its test and libdf11.so under its SONAME (c_api_test loads
# libdf11.so.1; ctypes users may load libdf11.so). Plain copies, no symlinks.
if [ -x .gpu-build/tests/c_api_test ]; then cp .gpu-build/tests/c_api_test .gpu-build/bin/; fi
if [ -f .gpu-build/formats/libdf11.so.1 ]; then
  cp -L .gpu-build/formats/libdf11.so.1 .gpu-build/bin/libdf11.so.1
  cp -L .gpu-build/formats/libdf11.so.1 .gpu-build/bin/libdf11.so
fi
strip .gpu-build/bin/*
du -sh .gpu-build/bin
