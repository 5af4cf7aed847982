#!/usr/bin/env bash
# CPU benchmark for docs/PERFORMANCE.md: size on the real GPT-2 file, then
# speed and peak memory on real shapes, next to zstd in the same run:
#   - a Llama-3-8B-shaped first shard (embed_tokens [128256, 4096] + two full
#     layers, 1.92 GB; tests/make_bench_file --kind llama3-8b),
#   - one 1 GiB BF16 tensor,
#   - with BIG=1, one tensor of 2^31 + 2^20 weights (4.3 GB; memory only),
#   - with SHAPES=1, other checkpoint shapes: a Qwen3-MoE-shaped block of two
#     layers (768 expert matrices of 3 MiB, 2.4 GB) and 256 MiB of 8,192
#     vectors of 16,384 weights (per-tensor costs),
#   - a model directory holding the shard against the shard alone.
# Files are read from the page cache (read once before timing). df11 and zstd
# runs alternate (paired) and every figure is the median of REPS runs; the
# "vs zstd" column is the median of the paired ratios (zstd time / df11 time).
# Outputs are deleted before each run, so no run pays for freeing another's.
# Then, just before each timed run, WARM_MB (default 3000) MiB of zeros are
# written to a file in /dev/shm and deleted. Where a VM's balloon reports
# free memory to its host (virtio free page reporting, as on the 2-core dev
# VM), memory freed a few seconds earlier is handed back and the next writer
# into it pays the host's faults: on that VM, 2000 MiB written into tmpfs took
# 0.65 s right after the last free and 5.8-9.7 s five seconds later. The
# write-heavy runs took those faults at random (a directory decompress read
# 2.1-2.3x its file alone in four runs, 1.01x in paired runs outside the
# script); touching the memory first gives every run, df11's and zstd's,
# memory the host backs. WARM_MB=0 turns it off.
# Usage: bash scripts/bench_cpu.sh [WORK_DIR]   (default /tmp/df11-bench; needs ~10 GB, BIG=1 ~20 GB)
# Env: REPS (default 5), BUILD_DIR (default build), BIG=1, SHAPES=1, THREADS (the -T of the multi-thread rows, default nproc), WARM_MB.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/df11-bench}
build=${BUILD_DIR:-$root/build}
reps=${REPS:-5}
nt=${THREADS:-$(nproc)}
warm_mb=${WARM_MB:-3000}
case $warm_mb in ''|*[!0-9]*) echo "WARM_MB must be a number of MiB (0: off), not '$warm_mb'" >&2; exit 2 ;; esac
warm_file=/dev/shm/.df11-bench-warm-$$
if [ "$warm_mb" -gt 0 ]; then
  # At most half of what /dev/shm has free, so that the warming never evicts
  # the inputs from the page cache for long or fills a small /dev/shm.
  avail_mb=$(df -m --output=avail /dev/shm 2>/dev/null | tail -1 | tr -d ' ' || echo 0)
  [ -n "$avail_mb" ] || avail_mb=0
  [ "$warm_mb" -le $((avail_mb / 2)) ] || warm_mb=$((avail_mb / 2))
  [ "$warm_mb" -gt 0 ] || echo "bench_cpu.sh: no room in /dev/shm to warm memory before runs (WARM_MB)" >&2
fi
trap 'rm -f "$warm_file"' EXIT
mkdir -p "$work"
if [ ! -x "$build/df11" ] || [ ! -x "$build/tests/make_bench_file" ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" -j"$(nproc)" --target df11_cli make_bench_file >/dev/null
fi
df11="$build/df11"
mk="$build/tests/make_bench_file"

echo "## df11 CPU benchmark — $(date -u '+%Y-%m-%d %H:%M UTC') — $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB"
echo "Command: REPS=$reps BIG=${BIG:-0} bash scripts/bench_cpu.sh $work   (df11 $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'), $(zstd --version | head -1))"
echo

gpt2="$root/../shared/testdata/gpt2-small-h0-5.safetensors"
if [ -f "$gpt2" ]; then
  "$df11" compress -q -f "$gpt2" -o "$work/gpt2.df11"
  in=$(stat -c %s "$gpt2"); out=$(stat -c %s "$work/gpt2.df11")
  bound=$("$df11" info --json "$work/gpt2.df11" | python3 -c '
import json,sys
j=json.load(sys.stdin); f=j["files"][0]; b=0
for t in f["tensors"]:
    n=1
    for d in t["shape"]: n*=d
    b += n*(8+t["exponent_entropy"])/8 if t["encoding"]=="bf16-huffman" else t["original_bytes"]
print("%.2f" % (100*b/f["original_bytes"]))')
  echo "Size, gpt2-small-h0-5.safetensors: $in -> $out bytes = $(python3 -c "print('%.2f' % (100*$out/$in))")% (per-tensor order-0 bound, non-BF16 tensors counted raw: $bound%)"
  echo
else
  echo "(../shared/testdata absent: size benchmark skipped)"
fi

shard="$work/llama3-8b-shard.safetensors"
one="$work/one-1g.safetensors"
[ -f "$shard" ] || "$mk" "$shard" --kind llama3-8b
[ -f "$one" ] || "$mk" "$one" --kind one-tensor --elements $((1 << 29))
inputs="shard one"
if [ "${SHAPES:-0}" = 1 ]; then
  moe="$work/moe.safetensors"
  many="$work/many.safetensors"
  [ -f "$moe" ] || "$mk" "$moe" --kind moe --layers 2
  [ -f "$many" ] || "$mk" "$many" --kind many --mib 256 --elements 16384
  inputs="$inputs moe many"
fi
# The model directory holds the shard itself (a hard link: same page cache) and a config.
mkdir -p "$work/model"
[ -f "$work/model/model-00001-of-00001.safetensors" ] || ln "$shard" "$work/model/model-00001-of-00001.safetensors"
echo '{"model_type": "llama"}' > "$work/model/config.json"

times="$work/times.txt"
: > "$times"
# run LABEL OUTPUT CMD...: one timed run (wall, user, system s; peak RSS KB) appended to $times.
run() {
  local label=$1 out=$2; shift 2
  rm -rf "$out"
  sync  # earlier runs' write-back is not charged to this one
  if [ "$warm_mb" -gt 0 ]; then  # see the header: memory the host backs
    dd if=/dev/zero of="$warm_file" bs=1M count="$warm_mb" status=none 2>/dev/null ||
      echo "bench_cpu.sh: could not write $warm_mb MiB to $warm_file; this run is not warmed" >&2
    rm -f "$warm_file"
  fi
  /usr/bin/time -f "%e %U %S %M" -o "$work/.time" "$@" >/dev/null 2>"$work/.err" || { cat "$work/.err" >&2; exit 1; }
  echo "$label $(cat "$work/.time")" >> "$times"
}

for f in $inputs; do
  src=${!f}
  cat "$src" > /dev/null
  "$df11" compress -q -f -T1 "$src" -o "$work/$f.df11"
  zstd -q -f -1 -T1 "$src" -o "$work/$f.zst"
  cat "$work/$f.df11" "$work/$f.zst" > /dev/null
  for _ in $(seq "$reps"); do
    run "$f:df11-compress-T1" "$work/c.df11" "$df11" compress -q -T1 "$src" -o "$work/c.df11"
    run "$f:zstd-1-T1" "$work/c.zst" zstd -q -1 -T1 "$src" -o "$work/c.zst"
    run "$f:df11-decompress-T1" "$work/d.safetensors" "$df11" decompress -q -T1 "$work/$f.df11" -o "$work/d.safetensors"
    run "$f:zstd-d" "$work/d.raw" zstd -q -d "$work/$f.zst" -o "$work/d.raw"
    run "$f:df11-verify-T1" "$work/none" "$df11" verify -q -T1 --device cpu "$work/$f.df11"
    run "$f:df11-compress-T$nt" "$work/c.df11" "$df11" compress -q -T"$nt" "$src" -o "$work/c.df11"
    run "$f:df11-decompress-T$nt" "$work/d.safetensors" "$df11" decompress -q -T"$nt" "$work/$f.df11" -o "$work/d.safetensors"
    run "$f:df11-verify-T$nt" "$work/none" "$df11" verify -q -T"$nt" --device cpu "$work/$f.df11"
  done
  "$df11" decompress -q -f -T1 "$work/$f.df11" -o "$work/d.safetensors"
  cmp -s "$work/d.safetensors" "$src" || { echo "round trip of $f is NOT byte-identical" >&2; exit 1; }
  echo "$f ratio $(stat -c %s "$src") $(stat -c %s "$work/$f.df11") $(stat -c %s "$work/$f.zst")" >> "$work/sizes.txt.$$"
done

# The model directory against the shard alone, and against its files one by
# one with their SHA-256 (which compress records).
"$df11" compress -q -f -T1 "$work/model" -o "$work/model.df11"
for _ in $(seq "$reps"); do
  run "dir:df11-compress-T1-dir" "$work/cm.df11" "$df11" compress -q -T1 "$work/model" -o "$work/cm.df11"
  run "dir:df11-compress-T1-file" "$work/c.df11" "$df11" compress -q -T1 "$shard" -o "$work/c.df11"
  run "dir:df11-decompress-T1-dir" "$work/dm" "$df11" decompress -q -T1 "$work/model.df11" -o "$work/dm"
  run "dir:df11-decompress-T1-file" "$work/d.safetensors" "$df11" decompress -q -T1 "$work/shard.df11" -o "$work/d.safetensors"
  # The same files one by one with their SHA-256 (what compress records), as
  # one command.
  run "dir:df11-compress-T1-files+sha" "$work/c.df11" bash -c \
    "'$df11' compress -q -T1 '$shard' -o '$work/c.df11' && openssl dgst -sha256 '$shard' '$work/model/config.json'"
  run "dir:df11-decompress-T1-files+sha" "$work/d.safetensors" bash -c \
    "'$df11' decompress -q -T1 '$work/model.df11/model-00001-of-00001.df11' -o '$work/d.safetensors' && openssl dgst -sha256 '$work/d.safetensors' '$work/model.df11/config.json'"
done

if [ "${BIG:-0}" = 1 ]; then
  big="$work/big.safetensors"
  [ -f "$big" ] || "$mk" "$big" --kind one-tensor --elements $(( (1 << 31) + (1 << 20) ))
  run "big:df11-compress-T1" "$work/big.df11" "$df11" compress -q -T1 "$big" -o "$work/big.df11"
  run "big:df11-verify-T1" "$work/none" "$df11" verify -q -T1 --device cpu "$work/big.df11"
  run "big:df11-decompress-T1" "$work/d.safetensors" "$df11" decompress -q -T1 "$work/big.df11" -o "$work/d.safetensors"
  run "big:df11-compress-T$nt" "$work/c.df11" "$df11" compress -q -T"$nt" "$big" -o "$work/c.df11"
  run "big:df11-decompress-T$nt" "$work/d.safetensors" "$df11" decompress -q -T"$nt" "$work/big.df11" -o "$work/d.safetensors"
  cmp -s "$work/d.safetensors" "$big" && echo "big tensor round trip byte-identical: yes" || { echo "big round trip differs" >&2; exit 1; }
  rm -f "$work/big.df11" "$work/c.df11"
fi

python3 - "$times" "$work/sizes.txt.$$" "$nt" "$(stat -c %s "$shard")" "$(stat -c %s "$one")" "$(stat -c %s "$work/big.safetensors" 2>/dev/null || echo 0)" \
  "$(stat -c %s "$work/moe.safetensors" 2>/dev/null || echo 0)" "$(stat -c %s "$work/many.safetensors" 2>/dev/null || echo 0)" <<'EOF'
import sys, statistics as st
times, sizes, nt = sys.argv[1], sys.argv[2], sys.argv[3]
nbytes = {"shard": int(sys.argv[4]), "one": int(sys.argv[5]), "big": int(sys.argv[6]), "dir": int(sys.argv[4]),
          "moe": int(sys.argv[7]), "many": int(sys.argv[8])}
runs = {}
for line in open(times):
    label, wall, user, sys_, rss = line.split()
    runs.setdefault(label, []).append((float(wall), float(user), float(sys_), int(rss)))
def med(label, k): return st.median(r[k] for r in runs[label])
def paired(a, b):  # median over reps of time(b) / time(a)
    return st.median(y[0] / x[0] for x, y in zip(runs[a], runs[b]))
names = {"shard": "Llama-3-8B-shaped shard, 1.92 GB", "one": "one 1 GiB BF16 tensor", "big": "one tensor of 2^31 + 2^20 weights, 4.3 GB",
         "moe": "Qwen3-MoE-shaped block, 2 layers, 2.4 GB (SHAPES=1)", "many": "8,192 tensors of 16,384 weights, 256 MiB (SHAPES=1)"}
for f in ["shard", "one", "big", "moe", "many"]:
    labels = [l for l in runs if l.startswith(f + ":")]
    if not labels: continue
    print(f"**{names[f]}** (median of {len(runs[labels[0]])}; GB/s of uncompressed bytes)\n")
    print("| command | wall | user | system | peak RSS | GB/s | vs zstd (paired) | target |")
    print("|---|---|---|---|---|---|---|---|")
    ref = {"compress-T1": (f + ":zstd-1-T1", "≥ 2x zstd -1 -T1"), "decompress-T1": (f + ":zstd-d", "≥ 1.2x zstd -d"),
           "verify-T1": (f + ":zstd-d", "≥ 2x zstd -d")}
    for l in labels:
        cmd = l.split(":", 1)[1]
        vs, target = "", ""
        if cmd.startswith("df11-") and cmd[5:] in ref and ref[cmd[5:]][0] in runs:
            vs = "%.2fx" % paired(l, ref[cmd[5:]][0]); target = ref[cmd[5:]][1]
        rss = max(r[3] for r in runs[l]) / 1024
        shown = {"zstd-1-T1": "zstd -1 -T1", "zstd-d": "zstd -d"}.get(cmd) or \
            "df11 %s -%s" % tuple(cmd[5:].rsplit("-", 1))
        print("| `%s` | %.2f s | %.2f s | %.2f s | %d MB | %.2f | %s | %s |" % (
            shown,
            med(l, 0), med(l, 1), med(l, 2), rss, nbytes[f] / med(l, 0) / 1e9, vs, target))
    print()
if "dir:df11-compress-T1-dir" in runs:
    print(f"**Model directory** (the shard and a config.json), -T1, median of {len(runs['dir:df11-compress-T1-dir'])}, "
          "against its files one by one: the shard alone, and the shard plus `openssl dgst -sha256` of both files (the same libcrypto SHA-256) in one command. "
          "Compress records every file's SHA-256, so its reference is the files with their SHA-256; decompress of a directory whose manifest "
          "ties each container to its entry (`original_xxh64`) hashes nothing, so its reference is the files alone:\n")
    print("| operation | directory | shard alone | files + SHA-256 | directory / reference | directory / shard alone | target |")
    print("|---|---|---|---|---|---|---|")
    for op in ["compress", "decompress"]:
        d, fl, fs = f"dir:df11-{op}-T1-dir", f"dir:df11-{op}-T1-file", f"dir:df11-{op}-T1-files+sha"
        ref = fs if op == "compress" else fl
        rss = lambda k: max(r[3] for r in runs[k]) / 1024
        print("| %s | %.2f s (%d MB) | %.2f s (%d MB) | %.2f s | %.2f (%s) | %.2f | ≤ 1.10 |" % (
            op, med(d, 0), rss(d), med(fl, 0), rss(fl), med(fs, 0),
            st.median(x[0] / y[0] for x, y in zip(runs[d], runs[ref])),
            "files + SHA-256" if op == "compress" else "files alone",
            st.median(x[0] / y[0] for x, y in zip(runs[d], runs[fl]))))
    print("\n(Ratios are medians of paired runs.)\n")
for line in open(sizes):
    f, _, src, d, z = line.split()
    print("%s: df11 %.2f%% of the input, zstd -1 %.2f%%" % (names[f], 100 * int(d) / int(src), 100 * int(z) / int(src)))
EOF
rm -f "$work/sizes.txt.$$" "$work/c.df11" "$work/c.zst" "$work/d.safetensors" "$work/d.raw" "$work/.time" "$work/.err"
rm -rf "$work/dm" "$work/cm.df11"
