#!/usr/bin/env bash
# Install df11's build dependencies from Debian's packages (Debian 12 / Ubuntu).
# CUDA is optional: with /usr/local/cuda/bin/nvcc present the GPU decoder is built too.
set -euo pipefail
pkgs="cmake g++ make catch2 libcli11-dev nlohmann-json3-dev libxxhash-dev libzstd-dev libssl-dev zstd python3"
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
missing=""
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  # shellcheck disable=SC2086
  $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
# The Python package's test dependencies (ctest 'python'); torch is optional
# and not installed here (its tests skip and say so).
if ! python3 -c "import numpy, pytest, ml_dtypes" >/dev/null 2>&1; then
  python3 -m pip install -q numpy pytest ml_dtypes 2>/dev/null ||
    python3 -m pip install -q --break-system-packages numpy pytest ml_dtypes
fi
