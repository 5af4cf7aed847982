#!/usr/bin/env bash
# Many-core scaling of the CPU codec (issue 11, item 3). Builds nothing: give
# it a df11 and a make_bench_file built elsewhere (both are static in zstd and
# libcrypto and need no CLI11/nlohmann at run time).
#   - generates a model directory of SHARDS (default 4) Llama-3-8B-shaped
#     shards in WORK (default /dev/shm/df11-cores): shard 0 embed_tokens +
#     layers 0-1, middle shards two layers each, the last two layers + lm_head
#     (4 shards: 5.6 GB), plus a config.json;
#   - times df11 compress and decompress of the directory, and of its first
#     shard alone (no SHA-256), at each -T of THREADS (default "1 4 16"),
#     median of REPS (default 3) wall-clock runs;
#   - measures in the same run the memory-copy bandwidth (make_bench_file
#     --copy-bandwidth: memcpy of 1 GiB per thread, best of 5) at 1 and at the
#     largest -T, and the two serial bounds of a directory: the SHA-256 of its
#     largest file (compress records it) and the copy of that file into one
#     new file (write(2) fills one file's page cache on one thread at a
#     time; decompress from 4 workers per file also writes through a
#     mapping);
#   - prints two markdown tables: wall time (median) and its ratio to -T1;
#     CPU time (user + system) and peak RSS of the median run.
# Usage: DF11=build/df11 MAKE_BENCH=build/tests/make_bench_file bash scripts/bench_cpu_cores.sh [WORK]
# Needs about 3x the model size free in WORK (input, .df11, restored copy).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
df11=${DF11:-$root/build/df11}
mk=${MAKE_BENCH:-$root/build/tests/make_bench_file}
work=${1:-/dev/shm/df11-cores}
shards=${SHARDS:-4}
reps=${REPS:-3}
threads=${THREADS:-1 4 16}
for b in "$df11" "$mk"; do [ -x "$b" ] || { echo "not executable: $b (set DF11 / MAKE_BENCH)" >&2; exit 2; }; done
[ -x /usr/bin/time ] || { echo "needs GNU time at /usr/bin/time (Debian: apt-get install time)" >&2; exit 2; }
# shellcheck source=lib/bench_model.sh
. "$(dirname "$0")/lib/bench_model.sh"
make_bench_model "$mk" "$work/model" "$shards"
bytes=$(du -sb "$work/model" | cut -f1)
first="$work/model/model-00001-of-$(printf %05d "$shards").safetensors"
fbytes=$(stat -c %s "$first")
cat "$work/model"/* > /dev/null

# timeit CMD...: "wall user+sys peakKB" of the median (by wall) of $reps runs,
# from /usr/bin/time; the output path is the argument after -o, deleted
# before each run.
timeit() {
  local out="" prev="" rows=()
  for a in "$@"; do [ "$prev" = "-o" ] && out=$a; prev=$a; done
  # Only outputs inside $work are ever deleted.
  case $out in "$work"/*) ;; *) out="" ;; esac
  for _ in $(seq "$reps"); do
    [ -z "$out" ] || rm -rf "$out"
    # A failed run stops the script (set -e reaches through $(...) here:
    # the exit is explicit) instead of turning into a row of zeros.
    /usr/bin/time -f "%e %U %S %M" -o "$work/.time" "$@" >/dev/null || { echo "failed: $*" >&2; exit 1; }
    # GNU time's %e counts hundredths of a second.
    rows+=("$(awk '{printf "%.2f %.2f %d", $1, $2 + $3, $4}' "$work/.time")")
  done
  [ -z "$out" ] || rm -rf "$out"
  printf '%s\n' "${rows[@]}" | sort -n | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}'
}
wall() { timeit "$@" | cut -d' ' -f1; }

max_t=0
for t in $threads; do [ "$t" -gt "$max_t" ] && max_t=$t; done
"$df11" compress -q -f -T"$max_t" "$work/model" -o "$work/model.df11"
"$df11" compress -q -f -T"$max_t" "$first" -o "$work/first.df11"
cat "$work/model.df11"/* "$work/first.df11" > /dev/null
bw1=$("$mk" --copy-bandwidth -T 1)
bwn=$("$mk" --copy-bandwidth -T "$max_t")

echo "## df11 CPU scaling — $(date -u '+%Y-%m-%d %H:%M UTC') — $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "Command: DF11=$df11 MAKE_BENCH=$mk REPS=$reps THREADS=\"$threads\" bash scripts/bench_cpu_cores.sh $work"
echo "Model directory: $shards shards + config.json, $(awk "BEGIN {printf \"%.2f\", $bytes / 1e9}") GB in $work; first shard alone $(awk "BEGIN {printf \"%.2f\", $fbytes / 1e9}") GB."
echo "Memory-copy bandwidth (memcpy, bytes copied per second, same run): $bw1 GB/s on 1 thread, $bwn GB/s on $max_t threads."
# Compress records the SHA-256 of every file of the directory: one serial
# stream per file, so at high -T the largest file's hash bounds it. Timed
# alone here with the same libcrypto SHA-256. (Decompress hashes nothing: the
# manifest ties each container to its entry by original_xxh64.)
largest=$(ls -S "$work/model"/*.safetensors | head -1)
lgb=$(awk "BEGIN {printf \"%.2f\", $(stat -c %s "$largest") / 1e9}")
sha_s=$(wall openssl dgst -sha256 "$largest")
echo "SHA-256 of the largest file alone ($(basename "$largest"), $lgb GB, \`openssl dgst -sha256\`): $sha_s s; one such stream per file bounds a directory compress at any -T (df11's own hashes 4 MiB pieces that another thread reads, and runs a little faster than openssl dgst)."
# write(2)s into one file are serialised by the file system (the inode
# lock): the time to fill one new file with the largest file's bytes bounds a
# directory decompress that writes with pwrite alone. From 4 workers per file
# decompress also stores through a shared mapping of it
# (AtomicOutputFile::map_for_writers), which can beat this line.
cp_s=$(wall sh -c 'cp --reflink=never "$0" "$2"' "$largest" -o "$work/copy.bin")
echo "Copy of the largest file into one new file in $work (\`cp\`, $lgb GB): $cp_s s; the bound of filling one file with write(2) (decompress maps its output from 4 workers per file, and can beat it)."
echo
echo "| -T | dir compress | GB/s | x -T1 | dir decompress | GB/s | x -T1 | shard compress | GB/s | x -T1 | shard decompress | GB/s | x -T1 |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
declare -A base base_cpu
cpu_rows=()
for t in $threads; do
  row="| $t"
  cpu="| $t"
  for job in dc dd fc fd; do
    case $job in
      dc) r=$(timeit "$df11" compress -q -T"$t" "$work/model" -o "$work/out.df11"); b=$bytes ;;
      dd) r=$(timeit "$df11" decompress -q -T"$t" "$work/model.df11" -o "$work/out.restored"); b=$bytes ;;
      fc) r=$(timeit "$df11" compress -q -T"$t" "$first" -o "$work/out1.df11"); b=$fbytes ;;
      fd) r=$(timeit "$df11" decompress -q -T"$t" "$work/first.df11" -o "$work/out1.safetensors"); b=$fbytes ;;
    esac
    read -r s c kb <<<"$r"
    [ -n "${base[$job]:-}" ] || { base[$job]=$s; base_cpu[$job]=$c; }
    row="$row | $(printf '%.2f' "$s") s | $(awk "BEGIN {printf \"%.2f\", $b / $s / 1e9}") | $(awk "BEGIN {printf \"%.2f\", ${base[$job]} / $s}")"
    cpu="$cpu | $c s | $((kb / 1024)) MiB"
  done
  echo "$row |"
  cpu_rows+=("$cpu |")
done
echo
echo "CPU time (user + system) and peak RSS (MiB) of the median run:"
echo
echo "| -T | dir compress CPU | RSS | dir decompress CPU | RSS | shard compress CPU | RSS | shard decompress CPU | RSS |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${cpu_rows[@]}"
echo
echo "Directory compress includes the SHA-256 of every file (manifest); decompress and the shard runs hash nothing. Target: -T16 at least 6x -T1, or within 80% of the copy bandwidth."
echo "The most the serial bounds allow at any -T: dir compress $(awk "BEGIN {printf \"%.2f\", ${base[dc]} / $sha_s}")x -T1 (-T1 time / SHA-256 of the largest file), dir decompress written with pwrite alone $(awk "BEGIN {printf \"%.2f\", ${base[dd]} / $cp_s}")x -T1 (-T1 time / copy of the largest file)."
# -T1 is one coder, yet its helper threads (read-ahead, the SHA-256 of each
# file, write-behind) keep more than one core busy. Spreading the same CPU
# time perfectly over the cores of the largest -T gives the most any -T can
# reach against it, whatever the code does above -T1.
cores=$(( max_t < $(nproc) ? max_t : $(nproc) ))
cap() { awk "BEGIN {printf \"%.2f cores busy, at most %.2fx\", ${base_cpu[$1]} / ${base[$1]}, $cores * ${base[$1]} / ${base_cpu[$1]}}"; }
echo "The most perfect scaling allows on $cores cores ($cores x -T1 time / -T1 CPU time; the first -T of THREADS counts as -T1): dir compress $(cap dc), dir decompress $(cap dd), shard compress $(cap fc), shard decompress $(cap fd)."
rm -f "$work/.time"
