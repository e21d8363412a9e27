#!/usr/bin/env python3
"""Markdown tables of issue 11's benchmark figures, from criterion's results.

For each criterion directory given (default: `$CARGO_TARGET_DIR/criterion`,
else `target/criterion`), one per run:

- the `throughput_multi_noop` group: `<group>/<bench>/new/estimates.json`
  median over the `Elements` throughput in `new/benchmark.json`, i.e.
  ns/task; its ratio to the base (`--base`, default `taskplan_w4`: peer
  ns / base ns, so above 1 means taskplan is faster); and the cache-line
  round trip (`cache_line_rtt.txt`, appended by benches/throughput.rs when
  the group finishes) of the `before`/`after` pair written with the group's
  results, with `near` / `far` (the vCPUs' state around the run; `busy`:
  no valid round trip, another process held a vCPU);
- then, as written by the benches, `memory_per_task.txt` (benches/memory.rs),
  `cancel_latency.txt` and `abort_queued.txt` (benches/cancel.rs).

Usage
    python3 scripts/bench_table.py [--base taskplan_w1] [CRITERION_DIR ...]

Python 3 standard library only.
"""

import argparse
import glob
import json
import os

GROUP = "throughput_multi_noop"
TEXT_FILES = ["memory_per_task.txt", "cancel_latency.txt", "abort_queued.txt"]


def group_results(criterion):
    """{bench: (ns per task, mtime of its estimates)} for GROUP."""
    results = {}
    pattern = os.path.join(criterion, GROUP, "*", "new", "estimates.json")
    for path in sorted(glob.glob(pattern)):
        new = os.path.dirname(path)
        with open(path) as f:
            median = json.load(f)["median"]["point_estimate"]
        with open(os.path.join(new, "benchmark.json")) as f:
            bench = json.load(f)
        elements = (bench.get("throughput") or {}).get("Elements") or 1
        results[bench["function_id"]] = (median / elements, os.path.getmtime(path))
    return results


def rtt_around(criterion, last):
    """'before / after ns (state)' of the pair appended when the group
    finished: the one whose `after` is nearest `last` (the group's newest
    estimates mtime), or '?' if none is within a minute."""
    path = os.path.join(criterion, "cache_line_rtt.txt")
    if not os.path.exists(path):
        return "?"
    pairs, before = [], None
    with open(path) as f:
        for line in f:
            parts = line.split()  # when, ns, unix secs, UTC, near|far|busy
            if len(parts) < 5:
                continue
            if parts[0] == "before":
                before = parts
            elif parts[0] == "after" and before:
                pairs.append((before, parts))
                before = None
    if not pairs:
        return "?"
    before, after = min(pairs, key=lambda pair: abs(int(pair[1][2]) - last))
    if abs(int(after[2]) - last) > 60:
        return "?"
    state = before[4] if before[4] == after[4] else f"{before[4]} -> {after[4]}"
    # A busy probe's figure measures the scheduler, not a round trip.
    values = ["-" if p[4] == "busy" else p[1] for p in (before, after)]
    return f"{values[0]} / {values[1]} ({state})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="*", help="criterion directories, one per run")
    parser.add_argument("--base", default="taskplan_w4", help="the ratios' reference")
    args = parser.parse_args()
    default = os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "criterion")
    dirs = args.dirs or [default]

    print(f"### `{GROUP}` (ns/task; ratio = peer / `{args.base}`)\n")
    print(f"| run | implementation | ns/task | ratio to {args.base} | cache-line RTT before / after (ns) |")
    print("|---|---|---:|---:|---|")
    for run, criterion in enumerate(dirs, 1):
        results = group_results(criterion)
        if not results:
            print(f"| {run} | no results in {criterion} | | | |")
            continue
        rtt = rtt_around(criterion, max(mtime for _, mtime in results.values()))
        base = results.get(args.base, (None,))[0]
        for name, (ns, _) in sorted(results.items(), key=lambda item: item[1][0]):
            ratio = f"{ns / base:.2f}" if base else "?"
            print(f"| {run} | {name} | {ns:,.0f} | {ratio} | {rtt} |")

    for criterion in dirs:
        for name in TEXT_FILES:
            path = os.path.join(criterion, name)
            if os.path.exists(path):
                with open(path) as f:
                    text = f.read().rstrip()
                print(f"\n### {name} ({criterion})\n")
                # The memory table is Markdown already; the others are
                # fixed-width text.
                print(text if name == "memory_per_task.txt" else f"```text\n{text}\n```")


if __name__ == "__main__":
    main()
