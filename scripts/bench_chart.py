#!/usr/bin/env python3
"""Chart one criterion benchmark group as an SVG bar chart and a Markdown table.

What it reads
    Criterion's saved results, under the criterion directory (by default
    `$CARGO_TARGET_DIR/criterion` if that variable is set, else
    `target/criterion`). Every benchmark that ran leaves
    `<group>/<function>[/<parameter>]/new/estimates.json` (times in ns per
    iteration) and `new/benchmark.json` (its `group_id`, `function_id`,
    `value_str` and `throughput`). The script walks the whole directory for
    `new/estimates.json`, keeps the benchmarks whose `benchmark.json` names
    the requested group, and so handles ids nested at any depth.

What it writes
    - `--out`: a self-contained SVG (no scripts, fonts or links) with one
      horizontal bar per benchmark: the label is the function id, plus the
      parameter if it has one; the length is the median time divided by the
      benchmark's `Elements` throughput, i.e. ns per task; the value is
      printed at the end of the bar. A benchmark without an `Elements`
      throughput is charted in ns per iteration, and the axis label (and its
      bar label, if the group mixes both) says so.
    - stdout: a Markdown table, `benchmark | ns/task | tasks/s`, in the same
      order, ready to paste into BENCHMARKS.md.

Bars come in a natural order of their labels (`w2` before `w10`), which is
stable from run to run; `--sort time` puts the fastest first instead.

Criterion never deletes results: a benchmark renamed or removed from the
code keeps its old `new/` folder and still shows up here. Delete the
group's folder before the run that the chart is meant to show.

Usage
    python3 scripts/bench_chart.py --group throughput --out docs/throughput.svg
    python3 scripts/bench_chart.py --group hot_path --out /tmp/hot_path.svg \\
        --criterion-dir /tmp/target-b/criterion

Python 3.8+ standard library only.
"""

import argparse
import json
import math
import os
import re
import sys
from xml.sax.saxutils import escape

# Layout of the chart, in SVG user units (pixels).
WIDTH = 960
BAR_HEIGHT = 22
BAR_GAP = 10
TOP = 64  # room for the title and the subtitle
BOTTOM = 56  # room for the tick labels and the axis label
MARGIN = 16
FONT = "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\""
# Average glyph width at 13px, used to size the label column: a font
# metric is not available without a renderer, and a slight overestimate
# only widens the gap between labels and bars.
CHAR_WIDTH = 7.4
# Room right of the longest bar for its printed value.
VALUE_ROOM = 110
BAR_COLOR = "#4878a8"
PER_ITER_COLOR = "#a8a8a8"


def default_criterion_dir():
    target = os.environ.get("CARGO_TARGET_DIR")
    return os.path.join(target, "criterion") if target else os.path.join("target", "criterion")


def natural_key(text):
    """Splits digits out so that `w2` sorts before `w10`."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part.lower())
            for part in re.split(r"(\d+)", text) if part]


def elements_of(throughput):
    """Elements per iteration, or None when the benchmark has no element count.

    Criterion writes `{"Elements": n}`; newer versions also know
    `{"ElementsAndBytes": {"elements": n, "bytes": m}}`. Byte throughputs
    say nothing about tasks, so they count as no throughput here.
    """
    if not isinstance(throughput, dict):
        return None
    if "Elements" in throughput:
        return throughput["Elements"] or None
    both = throughput.get("ElementsAndBytes")
    if isinstance(both, dict):
        return both.get("elements") or None
    return None


def load_group(criterion_dir, group):
    """Returns the group's benchmarks as dicts: label, ns, per_element."""
    benches = []
    for root, dirs, files in os.walk(criterion_dir):
        # Criterion's `report` folders hold HTML, never results.
        dirs[:] = [d for d in dirs if d != "report"]
        if os.path.basename(root) != "new" or "estimates.json" not in files:
            continue
        meta_path = os.path.join(root, "benchmark.json")
        try:
            with open(meta_path, encoding="utf-8") as f:
                meta = json.load(f)
            with open(os.path.join(root, "estimates.json"), encoding="utf-8") as f:
                estimates = json.load(f)
        except (OSError, ValueError) as error:
            print(f"warning: skipping {root}: {error}", file=sys.stderr)
            continue
        if meta.get("group_id") != group:
            continue
        median = estimates.get("median", {}).get("point_estimate")
        if median is None:
            print(f"warning: skipping {root}: no median estimate", file=sys.stderr)
            continue
        label = meta.get("function_id") or ""
        if meta.get("value_str"):
            label = f"{label}/{meta['value_str']}" if label else meta["value_str"]
        if not label:
            # A benchmark made with `bench_with_input` and no function id.
            label = meta.get("full_id", root)
        elements = elements_of(meta.get("throughput"))
        benches.append({
            "label": label,
            "ns": median / elements if elements else median,
            "per_element": elements is not None,
        })
    return benches


def list_groups(criterion_dir):
    groups = set()
    for root, _dirs, files in os.walk(criterion_dir):
        if os.path.basename(root) == "new" and "benchmark.json" in files:
            try:
                with open(os.path.join(root, "benchmark.json"), encoding="utf-8") as f:
                    groups.add(json.load(f).get("group_id"))
            except (OSError, ValueError):
                pass
    return sorted(g for g in groups if g)


def format_ns(ns):
    """Three significant figures, in ns, with thousands separators."""
    if ns >= 100:
        return f"{ns:,.0f}"
    if ns >= 10:
        return f"{ns:.1f}"
    return f"{ns:.2f}"


def format_rate(per_second):
    for scale, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if per_second >= scale:
            return f"{per_second / scale:.3g}{suffix}"
    return f"{per_second:.3g}"


def format_tick(value, step):
    """A tick label with just the decimals its step needs."""
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 0
    return f"{value:,.{decimals}f}"


def nice_ticks(maximum, count=5):
    """Round tick values (1, 2 or 5 times a power of ten) from 0 past maximum."""
    if maximum <= 0:
        return [0, 1]
    raw = maximum / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    ticks = [0]
    while ticks[-1] < maximum:
        ticks.append(ticks[-1] + step)
    return ticks


def units(benches):
    """The axis unit, and whether bars must say which unit they use."""
    per_element = [b["per_element"] for b in benches]
    if all(per_element):
        return "ns per task", False
    if not any(per_element):
        return "ns per iteration (no throughput recorded)", False
    return "ns per task (grey bars: ns per iteration, no throughput recorded)", True


def render_svg(group, benches):
    axis_label, mixed = units(benches)
    labels = [b["label"] + ("" if b["per_element"] or not mixed else " (per iter)")
              for b in benches]
    label_width = max(len(label) for label in labels) * CHAR_WIDTH + 12
    plot_left = MARGIN + label_width
    plot_width = max(WIDTH - plot_left - VALUE_ROOM - MARGIN, 200)
    width = plot_left + plot_width + VALUE_ROOM + MARGIN
    plot_height = len(benches) * (BAR_HEIGHT + BAR_GAP) + BAR_GAP
    height = TOP + plot_height + BOTTOM
    ticks = nice_ticks(max(b["ns"] for b in benches))
    step = ticks[1] - ticks[0]
    scale = plot_width / ticks[-1]

    unit = "ns per task" if "per task" in axis_label else "ns per iteration"
    title = f"{group}: {unit}, lower is better"
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height}" '
        f'viewBox="0 0 {width:.0f} {height}" role="img">',
        f"<title>{escape(title)}</title>",
        '<rect width="100%" height="100%" fill="#ffffff"/>',
        f'<text x="{MARGIN}" y="26" {FONT} font-size="17" font-weight="bold" '
        f'fill="#222">{escape(title)}</text>',
        f'<text x="{MARGIN}" y="46" {FONT} font-size="12" fill="#555">'
        f"criterion median of each benchmark, divided by its element count "
        f"where it has one</text>",
    ]
    # Grid lines and tick labels first, so bars draw over them.
    for tick in ticks:
        x = plot_left + tick * scale
        out.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + plot_height}" '
                   f'stroke="#e2e2e2" stroke-width="1"/>')
        out.append(f'<text x="{x:.1f}" y="{TOP + plot_height + 16}" {FONT} font-size="11" '
                   f'fill="#555" text-anchor="middle">{escape(format_tick(tick, step))}</text>')
    out.append(f'<text x="{plot_left + plot_width / 2:.1f}" y="{TOP + plot_height + 40}" '
               f'{FONT} font-size="12" fill="#333" text-anchor="middle">'
               f"{escape(axis_label)}</text>")
    for i, (bench, label) in enumerate(zip(benches, labels)):
        y = TOP + BAR_GAP + i * (BAR_HEIGHT + BAR_GAP)
        length = max(bench["ns"] * scale, 1)
        color = BAR_COLOR if bench["per_element"] or not mixed else PER_ITER_COLOR
        middle = y + BAR_HEIGHT / 2 + 4.5
        out.append(f'<text x="{plot_left - 8:.1f}" y="{middle:.1f}" {FONT} font-size="13" '
                   f'fill="#222" text-anchor="end">{escape(label)}</text>')
        out.append(f'<rect x="{plot_left:.1f}" y="{y}" width="{length:.1f}" '
                   f'height="{BAR_HEIGHT}" fill="{color}">'
                   f"<title>{escape(label)}: {escape(format_ns(bench['ns']))} ns</title></rect>")
        out.append(f'<text x="{plot_left + length + 6:.1f}" y="{middle:.1f}" {FONT} '
                   f'font-size="12" fill="#222">{escape(format_ns(bench["ns"]))} ns</text>')
    out.append(f'<line x1="{plot_left:.1f}" y1="{TOP}" x2="{plot_left:.1f}" '
               f'y2="{TOP + plot_height}" stroke="#888" stroke-width="1"/>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def markdown_table(benches):
    _axis, mixed = units(benches)
    per_task = any(b["per_element"] for b in benches)
    unit, rate = ("task", "tasks/s") if per_task else ("iter", "iter/s")
    rows = [f"| benchmark | ns/{unit} | {rate} |", "|---|---:|---:|"]
    for bench in benches:
        note = " (per iteration)" if mixed and not bench["per_element"] else ""
        per_second = 1e9 / bench["ns"] if bench["ns"] > 0 else float("inf")
        # A `|` in a label would end the Markdown cell.
        label = bench["label"].replace("|", "\\|")
        rows.append(f"| {label}{note} | {format_ns(bench['ns'])} | "
                    f"{format_rate(per_second)} |")
    return "\n".join(rows)


def main():
    parser = argparse.ArgumentParser(
        description="Chart a criterion benchmark group as an SVG and a Markdown table.")
    parser.add_argument("--group", required=True, help="criterion group id, e.g. throughput")
    parser.add_argument("--out", required=True, help="SVG file to write")
    parser.add_argument("--criterion-dir", default=default_criterion_dir(),
                        help="criterion's output directory (default: %(default)s)")
    parser.add_argument("--sort", choices=("name", "time"), default="name",
                        help="bar order: natural order of labels (default), or fastest first")
    args = parser.parse_args()

    if not os.path.isdir(args.criterion_dir):
        sys.exit(f"error: no criterion directory at {args.criterion_dir}")
    benches = load_group(args.criterion_dir, args.group)
    if not benches:
        groups = ", ".join(list_groups(args.criterion_dir)) or "none"
        sys.exit(f"error: no results for group {args.group!r} under {args.criterion_dir} "
                 f"(groups found: {groups})")
    if args.sort == "time":
        benches.sort(key=lambda b: (b["ns"], natural_key(b["label"])))
    else:
        benches.sort(key=lambda b: natural_key(b["label"]))

    directory = os.path.dirname(args.out)
    if directory:
        os.makedirs(directory, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(render_svg(args.group, benches))
    print(markdown_table(benches))
    print(f"wrote {args.out} ({len(benches)} benchmarks)", file=sys.stderr)


if __name__ == "__main__":
    main()
