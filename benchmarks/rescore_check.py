"""Do committed NTK-metric scores reproduce with the fast NTK? Rescore the first rows of committed
``scores.csv`` files with the reference NTK path and with the default (fast) one.

    python benchmarks/rescore_check.py results/correlation/ntk results/benchmark-nb201/pool-scores \\
        --n 30 --out results/kcc-speed/rescore.md

Each directory's ``settings.yaml`` gives the scoring setting (dataset, batch, seeds, build); the
batch fingerprint must match. Every NTK metric column (KCC, HSIC, KTA, NTK trace / condition number
/ smallest eigenvalue) is recomputed from Theta by ``empirical_ntk(method="reference")`` (the path
that wrote them) and by the default fast path; other metrics do not use the NTK and are skipped.
Reported per column: the largest relative change |new - committed| / |committed| of each path,
and how many of the rows changed by more than 1e-9 relative; and, to tell rounding from error, the
relative error of the committed and of the fast float32 values against the same network and batch
computed in float64 (where both paths agree to ~1e-15).
"""
from __future__ import annotations

import argparse
import copy
import csv
import statistics
from pathlib import Path

import torch
import yaml

from searchkit.data import get_dataset, scoring_batch
from searchkit.data.base import Batch
from searchkit.metrics.base import parse_metric
from searchkit.metrics.ntk import NTKMetric, empirical_ntk
from searchkit.runtime import build_network
from searchkit.spaces import get_space


def rescore(directory: Path, n: int) -> dict[str, dict[str, list[float]]]:
    """column -> {"reference": [relative changes], "fast": [...], "committed vs float64": [relative errors],
    "fast vs float64": [...]} over the first ``n`` rows."""
    settings = yaml.safe_load((directory / "settings.yaml").read_text())
    splits = get_dataset(settings["dataset"], settings.get("data_root"))
    batch = scoring_batch(splits, settings["batch_size"], settings["data_seed"])
    if batch.fingerprint() != settings["batch_fingerprint"]:
        raise SystemExit(f"{directory}: the scoring batch differs from the committed one")
    metrics = {spec: metric for spec, metric in ((spec, parse_metric(spec)) for spec in settings["metrics"])
               if isinstance(metric, NTKMetric)}
    space = get_space("nb201")
    with open(directory / "scores.csv", newline="") as f:
        rows = list(csv.DictReader(f))[:n]
    changes: dict[str, dict[str, list[float]]] = {label: {} for label in metrics}
    for row in rows:
        net = build_network(space, space.decode(row["arch_str"]), splits, settings["init_seed"], settings["build"])
        values = {method: _values(net, batch, metrics, method) for method in ("reference", "fast")}
        values["float64"] = _values(copy.deepcopy(net).double(), Batch(batch.x.double(), batch.y, batch.num_classes), metrics, "fast")
        for label in metrics:
            old, exact = float(row[label]), values["float64"][label]
            for name, new, base in (("reference", values["reference"][label], old), ("fast", values["fast"][label], old),
                                    ("committed vs float64", old, exact), ("fast vs float64", values["fast"][label], exact)):
                changes[label].setdefault(name, []).append(abs(new - base) / max(abs(base), 1e-300))
    return changes


def _values(net: torch.nn.Module, batch, metrics: dict[str, NTKMetric], method: str) -> dict[str, float]:
    """label -> score, one Theta per NTK setting, by ``empirical_ntk(method=...)`` ("fast": the default)."""
    thetas: dict[tuple, torch.Tensor] = {}
    values = {}
    for label, metric in metrics.items():
        if metric.ntk_key not in thetas:
            thetas[metric.ntk_key] = empirical_ntk(net, batch.x, metric.bn, metric.output, y=batch.y,
                                                   method="reference" if method == "reference" else "auto")
        values[label] = metric.guard(metric.score_with(thetas[metric.ntk_key], net, batch))
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", type=Path, nargs="+", help="result directories with scores.csv and settings.yaml")
    parser.add_argument("--n", type=int, default=30, help="rows rescored per directory (the first n)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    lines = ["# Committed NTK-metric scores, rescored", "",
             f"Command: `python benchmarks/rescore_check.py {' '.join(map(str, args.dirs))} --n {args.n} --out {args.out}`",
             "", f"Threads: {torch.get_num_threads()}. The first {args.n} rows of each scores.csv, each NTK metric "
             "recomputed by the reference path (vmap(jacrev), which wrote them) and by the default fast path; "
             "relative change |new - committed| / |committed|.", "",
             "| directory | column | reference: max change | reference: rows > 1e-9 | fast: max change | "
             "fast: median change | fast: rows > 1e-9 | committed vs float64: max, median | fast vs float64: max, median |",
             "|---|---|---|---|---|---|---|---|---|"]
    for directory in args.dirs:
        for label, by in rescore(directory, args.n).items():
            ref, fast, old64, fast64 = (by[k] for k in ("reference", "fast", "committed vs float64", "fast vs float64"))
            lines.append(f"| {directory} | {label} | {max(ref):.1e} | {sum(c > 1e-9 for c in ref)}/{len(ref)} | "
                         f"{max(fast):.1e} | {statistics.median(fast):.1e} | {sum(c > 1e-9 for c in fast)}/{len(fast)} | "
                         f"{max(old64):.1e}, {statistics.median(old64):.1e} | "
                         f"{max(fast64):.1e}, {statistics.median(fast64):.1e} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
