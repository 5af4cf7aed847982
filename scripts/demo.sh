#!/usr/bin/env bash
# The main job on a bundled sample: build df11, generate a small Llama-style
# model directory (2 shards + index, configs, tokenizer, F32 norms, a vision/
# subfolder), compress it, verify it, restore it, and print the sizes.
# Usage: bash scripts/demo.sh [WORK_DIR]   (default /tmp/df11-demo)
# DF11_BUILD_DIR: the build directory to use (default: build). An existing
# one is reused as configured (the ctest that runs this script passes its own).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/df11-demo}
build=${DF11_BUILD_DIR:-$root/build}
bash "$root/scripts/setup.sh"
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build" -j"$(nproc)" --target df11_cli make_sample_model >/dev/null
df11="$build/df11"
rm -rf "$work" && mkdir -p "$work"
"$build/tests/make_sample_model" "$work/model"
set -x
"$df11" compress "$work/model" -o "$work/model.df11" --verify
"$df11" verify "$work/model.df11" --against "$work/model"
"$df11" decompress "$work/model.df11" -o "$work/restored"
set +x
diff -r "$work/model" "$work/restored" && echo "restored directory is byte-identical"
echo "sizes: original $(du -sb "$work/model" | cut -f1) bytes, df11 $(du -sb "$work/model.df11" | cut -f1) bytes"
# The first rows of the report. df11 ends quietly with exit 0 when its reader
# stops early, so this pipe is safe under pipefail.
"$df11" info "$work/model.df11" | head -20
