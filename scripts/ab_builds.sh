#!/usr/bin/env bash
# Two df11 builds on the same machine, in the same run, alternating run by
# run (A B A B ...), so that drift and noise hit both alike: the way to tell
# whether a change made a path slower (PERFORMANCE.md compares only ratios
# measured like this). Shapes are bench_cpu_cores.sh's: a Llama-3-8B-shaped
# first shard (1.92 GB) and a SHARDS-shard directory of them, in WORK; or,
# with SMALL=N, one file of N-weight tensors instead (make_bench_file --kind
# many, SMALL_MIB MiB, default 64: SMALL=2048 is a file of 4 KiB tensors).
# Prints the median wall time of each build for each command and -T. With
# SMALL, zstd on the same file runs in the same alternation (`zstd -1 -T1`
# beside compress, `zstd -d` beside decompress and verify) for the ratio.
#
# Usage: A=old/df11 B=new/df11 MAKE_BENCH=build/tests/make_bench_file \
#        [SHARDS=4 | SMALL=2048 [SMALL_MIB=64]] [THREADS="1 16"] [REPS=5] \
#        [COMMANDS="compress decompress"] bash scripts/ab_builds.sh [WORK]
set -euo pipefail
a=${A:?set A=path/to/df11 (baseline)}
b=${B:?set B=path/to/df11 (candidate)}
mk=${MAKE_BENCH:?set MAKE_BENCH=path/to/make_bench_file}
work=${1:-/dev/shm/df11-ab}
shards=${SHARDS:-4}
threads=${THREADS:-1 16}
reps=${REPS:-5}
small=${SMALL:-}
commands=${COMMANDS:-compress decompress${small:+ verify}}  # a change to one direction need not time the other
[ -x /usr/bin/time ] || { echo "needs GNU time at /usr/bin/time" >&2; exit 2; }
mkdir -p "$work"
if [ -n "$small" ]; then
  command -v zstd >/dev/null || { echo "SMALL needs zstd on PATH" >&2; exit 2; }
  first="$work/small-$small-${SMALL_MIB:-64}m.safetensors"
  [ -f "$first" ] || "$mk" "$first" --kind many --mib "${SMALL_MIB:-64}" --elements "$small" >/dev/null
  "$a" compress -q -f "$first" -o "$work/first.df11"
  zstd -q -1 -f "$first" -o "$work/first.zst"
  cat "$first" "$work/first.df11" "$work/first.zst" > /dev/null
  jobs=("compress $first" "decompress $work/first.df11" "verify $work/first.df11")
else
  # shellcheck source=lib/bench_model.sh
  . "$(dirname "$0")/lib/bench_model.sh"
  make_bench_model "$mk" "$work/model" "$shards"
  first="$work/model/model-00001-of-$(printf %05d "$shards").safetensors"
  # Inputs for decompress, made by the baseline (the format is the same).
  "$a" compress -q -f "$work/model" -o "$work/model.df11"
  "$a" compress -q -f "$first" -o "$work/first.df11"
  cat "$work/model"/* "$work/model.df11"/* "$work/first.df11" > /dev/null
  jobs=("compress $first" "decompress $work/first.df11" "compress $work/model" "decompress $work/model.df11")
fi

# one BIN ARGS...: wall seconds of one run (the output, $work/out, removed
# first). A run that fails stops the script: its time is no sample (this runs
# in $(...), where set -e does not reach, so the whole script is ended).
one() {
  rm -rf "$work/out"
  if ! /usr/bin/time -f "%e" -o "$work/.time" "$@" >/dev/null; then
    echo "failed: $*" >&2
    kill -TERM $$
    exit 1
  fi
  tail -n 1 "$work/.time"
}
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

echo "## A/B — $(date -u '+%Y-%m-%d %H:%M UTC') — $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
if [ -n "$small" ]; then
  echo "A=$a  B=$b  SMALL=$small (tensors of $small weights, $(stat -c %s "$first") bytes) REPS=$reps; median wall seconds, runs alternating A, B, zstd"
  echo
  echo "| command | -T | A | B | B / A | zstd | B against zstd |"
  echo "|---|---|---|---|---|---|---|"
else
  echo "A=$a  B=$b  SHARDS=$shards REPS=$reps; median wall seconds, runs alternating A, B"
  echo
  echo "| command | -T | A | B | B / A |"
  echo "|---|---|---|---|---|"
fi
for t in $threads; do
  for job in "${jobs[@]}"; do
    set -- $job
    case " $commands " in *" $1 "*) ;; *) continue ;; esac
    out=(-o "$work/out")
    [ "$1" = verify ] && out=()
    ra=() rb=() rz=()
    for _ in $(seq "$reps"); do
      ra+=("$(one "$a" "$1" -q -T"$t" "$2" "${out[@]}")")
      rb+=("$(one "$b" "$1" -q -T"$t" "$2" "${out[@]}")")
      if [ -n "$small" ]; then
        if [ "$1" = compress ]; then
          rz+=("$(one zstd -q -1 -T1 "$2" -o "$work/out")")
        else
          rz+=("$(one zstd -q -d "$work/first.zst" -o "$work/out")")
        fi
      fi
    done
    ma=$(printf '%s\n' "${ra[@]}" | median)
    mb=$(printf '%s\n' "${rb[@]}" | median)
    row="| $1 $(basename "$2") | $t | $ma s | $mb s | $(awk "BEGIN {printf \"%.2f\", $mb / $ma}")"
    if [ -n "$small" ]; then
      mz=$(printf '%s\n' "${rz[@]}" | median)
      row="$row | $mz s | $(awk "BEGIN {printf \"%.2fx\", $mz / $mb}")"
    fi
    echo "$row |"
  done
done
rm -rf "$work/out"
