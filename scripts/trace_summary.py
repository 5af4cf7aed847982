#!/usr/bin/env python3
"""Summarises the per-block timelines that `df11_gpu_bench --variant loop4+trace`
writes (trace-<variant>-<configuration>.csv; see scripts/gpu_bench_variants.sh):

    python3 scripts/trace_summary.py trace-loop4_trace-4096x4096.csv [...]

For each file: the kernel's span, the first wave (blocks that start within 1.5 us
of the first) and its phase ends, the later blocks' phase durations, and how
the blocks and the finishing times spread over the SMs. Times in microseconds;
percentiles are 10/50/90 and the maximum.
"""
import collections
import csv
import sys


def pct(values):
    v = sorted(values)
    if not v:
        return "-"
    return "%.1f/%.1f/%.1f max %.1f" % tuple([v[int(len(v) * q)] / 1e3 for q in (0.1, 0.5, 0.9)] + [v[-1] / 1e3])


def summarise(path):
    with open(path, newline="") as f:
        table = list(csv.reader(f))
    rows = [list(map(int, r)) for r in table[1:]]
    # block, sm, start, [stream_in,] prologue_end, scan_end, pass2_end, end (ns from
    # the first start); stream_in (the block's stream words arrived and the block
    # synchronised; the prologue then waits for the tables) is in newer traces only.
    stream = "stream_in" in table[0]
    if stream:
        for r in rows:
            r.append(r.pop(3))  # stream_in to the end: the columns below keep their places
    first = [r for r in rows if r[2] < 1500]
    later = [r for r in rows if r[2] >= 1500]
    print(path)
    print("  blocks %d, span %.1f us" % (len(rows), max(r[6] for r in rows) / 1e3))
    print("  first wave (%d blocks), ends of: prologue %s | scan %s | pass 2 %s | block %s" %
          (len(first), pct([r[3] for r in first]), pct([r[4] for r in first]), pct([r[5] for r in first]),
           pct([r[6] for r in first])))
    if later:
        print("  later blocks (%d): start %s; durations: prologue %s | pass 1 + scan %s | pass 2 %s | merge %s" %
              (len(later), pct([r[2] for r in later]), pct([r[3] - r[2] for r in later]),
               pct([r[4] - r[3] for r in later]), pct([r[5] - r[4] for r in later]), pct([r[6] - r[5] for r in later])))
    by_sm = collections.defaultdict(list)
    for r in rows:
        by_sm[r[1]].append(r)
    counts = collections.Counter(len(v) for v in by_sm.values())
    ends = [max(x[6] for x in v) for v in by_sm.values()]
    if stream:
        print("  stream in (first wave) %s; prologue end minus stream in: first wave %s | later %s" %
              (pct([r[7] for r in first]), pct([r[3] - r[7] for r in first]), pct([r[3] - r[7] for r in later])))
    print("  SMs %d; blocks per SM: %s; each SM's last block end: %s" %
          (len(by_sm), ", ".join("%d on %d" % (k, counts[k]) for k in sorted(counts)), pct(ends)))


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    for path in sys.argv[1:]:
        summarise(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
