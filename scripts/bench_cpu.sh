#!/usr/bin/env bash
# CPU benchmark for docs/PERFORMANCE.md: size on the real GPT-2 file, and
# single-/multi-thread speed on a 1 GiB synthetic BF16 file read from the page
# cache, next to zstd in the same run.
# Usage: bash scripts/bench_cpu.sh [WORK_DIR]   (default /tmp/df11-bench; needs ~4 GB)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/df11-bench}
build=${BUILD_DIR:-$root/build}
reps=${REPS:-3}
mkdir -p "$work"
if [ ! -x "$build/df11" ] || [ ! -x "$build/tests/make_bench_file" ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" -j"$(nproc)" --target df11_cli make_bench_file >/dev/null
fi
df11="$build/df11"

echo "## df11 CPU benchmark — $(date -u +%Y-%m-%d) — $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
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

src="$work/bench1g.safetensors"
[ -f "$src" ] || "$build/tests/make_bench_file" "$src" --mib 1024
cat "$src" > /dev/null
bytes=$(stat -c %s "$src")

# median wall seconds of $reps runs; also records max RSS (KB) of the last run
timeit() {
  local ts=() t rss
  for _ in $(seq "$reps"); do
    sync  # flush earlier runs' writes so that no run pays for another's write-back
    /usr/bin/time -f "%e %M" -o "$work/.time" "$@" >/dev/null 2>&1
    read -r t rss < "$work/.time"
    ts+=("$t")
  done
  printf '%s\n' "${ts[@]}" | sort -n | sed -n "$(( (reps + 1) / 2 ))p" | tr '\n' ' '
  echo "$rss"
}
row() {  # name, bytes-for-throughput, command...
  local name=$1 b=$2; shift 2
  read -r t rss < <(timeit "$@")
  printf '| %-28s | %7.2f s | %6.2f GB/s | %8d MB |\n' "$name" "$t" "$(python3 -c "print($b/$t/1e9)")" "$((rss / 1024))"
}
"$df11" compress -q -f -T1 "$src" -o "$work/b.df11"
cat "$work/b.df11" > /dev/null
zstd -q -f -1 -T1 "$src" -o "$work/b.zst"
echo "Speed on a $(python3 -c "print('%.2f' % ($bytes/2**30))") GiB synthetic BF16 file from page cache (median of $reps; GB/s of uncompressed bytes):"
echo
echo "| command | time | throughput | max RSS |"
echo "|---|---|---|---|"
row "df11 compress -T1" "$bytes" "$df11" compress -q -f -T1 "$src" -o "$work/c.df11"
row "df11 decompress -T1" "$bytes" "$df11" decompress -q -f -T1 "$work/b.df11" -o "$work/d.safetensors"
row "df11 compress -T$(nproc)" "$bytes" "$df11" compress -q -f -T"$(nproc)" "$src" -o "$work/c.df11"
row "df11 decompress -T$(nproc)" "$bytes" "$df11" decompress -q -f -T"$(nproc)" "$work/b.df11" -o "$work/d.safetensors"
# verify decodes and checksums without writing: the codec's own scaling with -T
row "df11 verify -T1 (no output)" "$bytes" "$df11" verify -q -T1 --device cpu "$work/b.df11"
row "df11 verify -T$(nproc) (no output)" "$bytes" "$df11" verify -q -T"$(nproc)" --device cpu "$work/b.df11"
row "zstd -1 -T1" "$bytes" zstd -q -f -1 -T1 "$src" -o "$work/c.zst"
row "zstd -d" "$bytes" zstd -q -f -d "$work/b.zst" -o "$work/d.raw"
cmp -s "$work/d.safetensors" "$src" && echo && echo "round trip byte-identical: yes"
# Peak memory must not grow with the model: same 32 MiB tensors, a 4x smaller file.
small="$work/bench256m.safetensors"
[ -f "$small" ] || "$build/tests/make_bench_file" "$small" --mib 256
/usr/bin/time -f "%M" -o "$work/.rss" "$df11" compress -q -f -T1 "$small" -o "$work/s.df11"
echo "max RSS of compress -T1: $(( $(cat "$work/.rss") / 1024 )) MB for 256 MiB, vs the 1 GiB row above (largest tensor 32 MiB in both)"
rm -f "$work/s.df11" "$work/.rss"
echo "df11 ratio $(python3 -c "print('%.2f%%' % (100*$(stat -c %s "$work/b.df11")/$bytes))"), zstd -1 ratio $(python3 -c "print('%.2f%%' % (100*$(stat -c %s "$work/b.zst")/$bytes))")"
rm -f "$work/c.df11" "$work/d.safetensors" "$work/c.zst" "$work/d.raw" "$work/.time"
