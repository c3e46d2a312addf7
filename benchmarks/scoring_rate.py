"""End-to-end scoring rate of ``searchkit correlate`` and the projected time for all 15,625 NB201 cells.

    python benchmarks/scoring_rate.py --n 1000 --workers 2 --metrics kcc --out results/kcc-speed/correlate-1000.md

Runs ``searchkit correlate --metrics M --n N --seed 0 --workers W --out TMP`` once in a fresh
interpreter (:func:`memory_bound.run_measured`: wall seconds and peak RSS), start-up, data loading,
worker start and the correlation report included, on a fresh output directory and store, and
writes the wall time, architectures per second, the projection for all 15,625 cells (the same
rate) and the median of the per-architecture seconds ``scores.csv`` records.
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import tempfile
from pathlib import Path

import torch

from memory_bound import correlate_argv, peak_rss  # benchmarks/ is sys.path[0] when run as a script
from searchkit.spaces.nb201 import NUM_ARCHS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--metrics", default="kcc")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        argv = correlate_argv(args.n, args.metrics, Path(tmp) / "run", ["--workers", str(args.workers)])
        peak, seconds, _ = peak_rss(argv, dict(os.environ))
        with open(Path(tmp) / "run" / "scores.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    per_arch = statistics.median(sum(float(row[f"{m}_s"]) for m in args.metrics.split(",")) for row in rows)
    rate = len(rows) / seconds
    command = (f"python benchmarks/scoring_rate.py --n {args.n} --workers {args.workers} --metrics {args.metrics} "
               f"--out {args.out}")
    lines = [
        "# End-to-end scoring rate (`searchkit correlate`)", "",
        f"Command: `{command}`, which runs `searchkit correlate --metrics {args.metrics} --n {args.n} --seed 0 "
        f"--workers {args.workers} --out TMP --quiet` in a fresh interpreter ({os.cpu_count()} CPUs; parent torch "
        f"threads {torch.get_num_threads()}).", "",
        "| architectures | wall s (everything) | architectures/s | median s per architecture in its worker | "
        "peak RSS of the parent (MiB) |", "|---|---|---|---|---|",
        f"| {len(rows)} | {seconds:.1f} | {rate:.2f} | {per_arch:.3f} | {peak:.0f} |", "",
        f"Projected for all {NUM_ARCHS:,} NB201 cells at this rate: {NUM_ARCHS / rate / 3600:.2f} hours "
        f"({NUM_ARCHS / rate / 60:.0f} minutes).",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
