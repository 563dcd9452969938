#!/usr/bin/env python3
"""Print the latest bench results and the crate's target ratios.

Reads what `cargo bench` left behind:

- criterion's estimates, `<criterion>/**/new/estimates.json` (with `benchmark.json` beside it
  for the bench's id), and
- the back-to-back ratios the `sources` and `threads` benches write to
  `<criterion>/back-to-back/<key>.json`.

`<criterion>` is `$CRITERION_HOME`, else `$CARGO_TARGET_DIR/criterion`, else `target/criterion`
next to this script's repository; `--dir` overrides all three.

Usage (from the repository root, after the benches have run):

    python3 scripts/bench_report.py            # every median, then the targets
    python3 scripts/bench_report.py --strict   # exit 1 if a measured target is missed

A target's verdict uses its back-to-back ratio when there is one (both sides timed in the same
rounds, so a drift of the machine's speed cancels out), else the ratio of criterion's medians.
Only the standard library is used.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

FLOOR = "baseline/floor"

# (key of the back-to-back ratio, what it compares, numerator id, denominator id, limit).
# Ids are criterion's `group/function`; the limits are the crate's targets (BENCHMARKS.md).
TARGETS = [
    ("memory-vs-floor", "in-memory current vs floor", "memory/current", FLOOR, 1.25),
    (
        "memory-vs-floor-since-epoch",
        "in-memory current vs floor with the epoch conversion",
        "memory/current",
        "baseline/floor-since-epoch",
        1.25,
    ),
    ("memory-vs-naive", "in-memory current vs naive", "memory/current", "baseline/naive", 1.0),
    ("memory-1mib-vs-current", "in-memory 1 MiB claim vs current", "memory/1MiB", "memory/current", 2.0),
    ("memory-1mib-vs-unknown", "in-memory 1 MiB claim vs unknown", "memory/1MiB", "memory/unknown", 2.0),
    ("derived-vs-floor", "derived current vs floor", "derived/current", FLOOR, 1.25),
    ("derived-vs-naive", "derived current vs naive", "derived/current", "baseline/naive", 1.0),
    ("derived-1mib-vs-current", "derived 1 MiB claim vs current", "derived/1MiB", "derived/current", 2.0),
    ("redis-vs-memory", "redis steady-state current vs in-memory", "redis/current", "memory/current", 1.15),
    (
        "threads-floor",
        "control: floor, 2 threads vs 1 (time per op)",
        "threads/floor/2-thread",
        "threads/floor/1-thread",
        1.0 / 1.7,
    ),
    (
        "threads-memory",
        "in-memory, 2 threads vs 1 (time per op; 1/1.7)",
        "threads/memory/2-thread",
        "threads/memory/1-thread",
        1.0 / 1.7,
    ),
    (
        "threads-derived",
        "derived, 2 threads vs 1 (time per op; 1/1.7)",
        "threads/derived/2-thread",
        "threads/derived/1-thread",
        1.0 / 1.7,
    ),
]

# Targets whose ratio describes the machine rather than the crate: reported, never judged.
CONTROLS = {"threads-floor"}


def criterion_dir(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    if os.environ.get("CRITERION_HOME"):
        return Path(os.environ["CRITERION_HOME"])
    if os.environ.get("CARGO_TARGET_DIR"):
        return Path(os.environ["CARGO_TARGET_DIR"]) / "criterion"
    return Path(__file__).resolve().parent.parent / "target" / "criterion"


def read_json(path: Path):
    try:
        with path.open() as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def medians(root: Path) -> dict[str, float]:
    """Criterion's latest median per bench id, in nanoseconds."""
    found = {}
    for estimates in root.glob("**/new/estimates.json"):
        meta = read_json(estimates.with_name("benchmark.json")) or {}
        data = read_json(estimates) or {}
        bench_id = meta.get("full_id") or str(estimates.parent.parent.relative_to(root))
        median = (data.get("median") or {}).get("point_estimate")
        if isinstance(median, (int, float)):
            found[bench_id] = float(median)
    return found


def back_to_back(root: Path) -> dict[str, dict]:
    found = {}
    for path in (root / "back-to-back").glob("*.json"):
        data = read_json(path)
        if isinstance(data, dict) and isinstance(data.get("median"), (int, float)):
            found[path.stem] = data
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="criterion's output directory")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a measured target is missed")
    args = parser.parse_args()

    root = criterion_dir(args.dir)
    times = medians(root)
    paired = back_to_back(root)
    if not times and not paired:
        print(f"no bench results under {root}: run `cargo bench --all-features` first", file=sys.stderr)
        return 1

    floor = times.get(FLOOR)
    print(f"criterion medians ({root})")
    print(f"{'bench':<40} {'median':>14} {'/ floor':>9}")
    for bench_id in sorted(times):
        value = times[bench_id]
        ratio = f"{value / floor:.2f}x" if floor else "-"
        shown = f"{value / 1000:.2f} us" if value >= 10_000 else f"{value:.1f} ns"
        print(f"{bench_id:<40} {shown:>14} {ratio:>9}")

    print()
    print("targets: ratio of medians, and back to back (median [q1, q3] of per-round ratios)")
    print(f"{'target':<52} {'medians':>8} {'back to back':>24} {'limit':>6}  verdict")
    missed = False
    for key, what, numerator, denominator, limit in TARGETS:
        n, d = times.get(numerator), times.get(denominator)
        from_medians = n / d if n and d else None
        pair = paired.get(key)
        ratio = pair["median"] if pair else from_medians
        if ratio is None:
            verdict = "not measured"
        elif key in CONTROLS:
            verdict = "control"
        elif ratio <= limit:
            verdict = "met"
        else:
            verdict = "MISSED"
            missed = True
        medians_text = f"{from_medians:.3f}" if from_medians is not None else "-"
        pair_text = f"{pair['median']:.3f} [{pair['q1']:.3f}, {pair['q3']:.3f}]" if pair else "-"
        print(f"{what:<52} {medians_text:>8} {pair_text:>24} {limit:>6.3f}  {verdict}")

    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
