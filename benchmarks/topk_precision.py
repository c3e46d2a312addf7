"""Screens judged by what they select (issue 23, ask 3): the top-k precision of every scored metric
and rank ensemble over random draws of NAS-Bench-201 cells.

    python benchmarks/topk_precision.py results/nb201-all [more correlate directories] --out results/topk-precision

For each of ``--draws`` random draws of N distinct cells (N in ``--n``; seeds 0 .. draws-1, one
generator), a screen ranks the N cells and keeps its top k (k in ``--k``). Two figures per
(screen, N, k, dataset, threshold), averaged over draws:

* **precision**: the share of the top k whose 200-epoch test accuracy reaches the threshold;
* **hit**: the share of draws in which at least one of the top k reaches it (what a warm-up that
  validates the top k and keeps the best-validated one needs).

Screens: every metric of the directories' ``scores.csv`` (joined on the cells they all hold; higher is
better; non-finite values rank lowest), and
every rank ensemble of 2 or 3 of them plus all of them: the mean of the metrics' ranks within
the draw (the warm-up's ``ensemble`` rule, :func:`searchkit.strategies.base.mean_ranks`). Ties
keep the cells' draw order, as the warm-up's stable sort does.

Thresholds: CIFAR-10 >= 94.15 (Zero-Cost-PT + ZiCo's figure) and >= 94.3 (the best few cells).
CIFAR-100 and ImageNet16-120 get the thresholds that the same share of all 15,625 cells reaches
on their own test column (so each is "the top x % of the space" on every dataset); the values are
written in the report. The screens are CIFAR-10-image scores on every dataset.

Outputs in ``--out``: ``precision.csv`` (every figure), ``README.md`` (the command, thresholds and
the best screens per dataset, N and k).
"""
from __future__ import annotations

import argparse
import csv
import itertools
import sys
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

#: (dataset, title) of the table's test columns read.
DATASETS = (("cifar10", "C10"), ("cifar100", "C100"), ("ImageNet16-120", "IN16"))
#: CIFAR-10 test-accuracy thresholds; the other datasets' are matched by share of the space.
C10_THRESHOLDS = (94.15, 94.3)


def read_scores(directory: Path) -> tuple[list[str], np.ndarray, list[str]]:
    """(arch strings, scores (n, m), metric names) of a correlate export's ``scores.csv``."""
    with (directory / "scores.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        names = [c for c in reader.fieldnames if c not in ("index", "arch_str") and not c.endswith("_s")]
        rows = list(reader)
    values = np.array([[float(r[name]) if r[name] not in ("", None) else np.nan for name in names] for r in rows])
    return [r["arch_str"] for r in rows], values, names


def join_scores(directories: list[Path]) -> tuple[list[str], np.ndarray, list[str]]:
    """:func:`read_scores` of several correlate exports side by side, on the cells every one of them holds
    (in the first one's order); a metric in two of them is refused."""
    parts = [read_scores(directory) for directory in directories]
    names = [name for _, _, part_names in parts for name in part_names]
    if len(set(names)) < len(names):
        raise SystemExit(f"topk_precision: a metric is in two of {', '.join(map(str, directories))}; give each once")
    common = set.intersection(*(set(texts) for texts, _, _ in parts))
    texts = [t for t in parts[0][0] if t in common]
    columns = []
    for part_texts, values, _ in parts:
        position = {t: i for i, t in enumerate(part_texts)}
        columns.append(values[[position[t] for t in texts]])
    return texts, np.concatenate(columns, axis=1), names


def thresholds(accuracy: dict[str, np.ndarray]) -> dict[str, tuple[float, ...]]:
    """Per dataset, the thresholds reached by the same share of cells as CIFAR-10's."""
    shares = [float(np.mean(accuracy["cifar10"] >= t)) for t in C10_THRESHOLDS]
    out = {"cifar10": C10_THRESHOLDS}
    for dataset, _ in DATASETS[1:]:
        column = np.sort(accuracy[dataset])[::-1]
        out[dataset] = tuple(float(np.floor(column[max(int(round(share * len(column))) - 1, 0)] * 100) / 100)
                             for share in shares)  # rounded down: at least that share reaches it
    return out


def draw_ranks(global_ranks: np.ndarray, n: int, draws: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(cells (draws, n), within-draw ranks (m, draws, n)) of ``draws`` random draws of n distinct cells."""
    total = global_ranks.shape[0]
    cells = np.argsort(rng.random((draws, total)), axis=1)[:, :n]
    ranks = np.stack([rankdata(global_ranks[cells, j], axis=1) for j in range(global_ranks.shape[1])])
    return cells, ranks


def screens(names: list[str]) -> list[tuple[int, ...]]:
    """Every metric alone, every ensemble of 2 or 3 of them, and all of them (as index tuples)."""
    m = len(names)
    return ([(j,) for j in range(m)] + list(itertools.combinations(range(m), 2))
            + list(itertools.combinations(range(m), 3)) + [tuple(range(m))])


def top_k(ranks: np.ndarray, members: tuple[int, ...], k: int) -> np.ndarray:
    """Positions within each draw of the top k by the mean rank of ``members``: (draws, k), stable."""
    return np.argsort(-ranks[list(members)].mean(axis=0), axis=1, kind="stable")[:, :k]


def study(directories: list[Path], table_path: str | None, ns: list[int], ks: list[int], draws: int, seed: int) -> tuple[list[dict], dict]:
    from searchkit.spaces import get_space

    texts, values, names = join_scores(directories)
    table = get_space("nb201").benchmark(table_path)
    index = np.array([table.index_of(t) for t in texts])
    accuracy = {dataset: np.asarray(table.column(dataset, "test", 200))[index] for dataset, _ in DATASETS}
    limits = thresholds({d: np.asarray(table.column(d, "test", 200)) for d, _ in DATASETS})
    filled = np.where(np.isfinite(values), values, -np.inf)
    global_ranks = rankdata(filled, axis=0)
    rng = np.random.default_rng(seed)
    rows = []
    for n in ns:
        cells, ranks = draw_ranks(global_ranks, min(n, len(texts)), draws, rng)
        for members in screens(names):
            order = top_k(ranks, members, max(ks))
            chosen = np.take_along_axis(cells, order, axis=1)  # (draws, max k) cell positions
            for dataset, title in DATASETS:
                for threshold in limits[dataset]:
                    good = accuracy[dataset][chosen] >= threshold
                    for k in ks:
                        rows.append({"screen": "+".join(names[j] for j in members), "size": len(members), "n": n,
                                     "k": k, "dataset": title, "threshold": threshold,
                                     "precision": float(good[:, :k].mean()), "hit": float(good[:, :k].any(1).mean()),
                                     "base_rate": float(np.mean(accuracy[dataset] >= threshold)),
                                     "cells": len(texts)})
    return rows, limits


def report(rows: list[dict], limits: dict, out: Path, command: str, draws: int, best: int = 8) -> None:
    lines = ["# Screens judged by what they select: top-k precision over NAS-Bench-201 (issue 23, ask 3)", "",
             f"Command: `{command}`", "",
             f"{draws} random draws of N distinct cells per N (one generator, seed in the command); a screen keeps "
             "the top k of each draw. **precision** = share of the top k at or above the threshold (200-epoch test "
             "accuracy); **hit** = share of draws where at least one of the top k is. Screens are CIFAR-10-image "
             f"training-free scores on every dataset, on the {rows[0]['cells']:,} cells that every scores.csv of "
             "the command holds; ensembles are mean ranks within the draw. Every figure is in `precision.csv`.", "",
             "Thresholds (CIFAR-100 and ImageNet16-120: reached by the same share of the 15,625 cells as the "
             "CIFAR-10 one):", "", "| dataset | thresholds | share of cells |", "|---|---|---|"]
    base = {(r["dataset"], r["threshold"]): r["base_rate"] for r in rows}
    for dataset, title in DATASETS:
        lines.append(f"| {title} | " + " / ".join(f">= {t}" for t in limits[dataset]) + " | "
                     + " / ".join(f"{base[(title, t)]:.4f}" for t in limits[dataset]) + " |")
    for (n, dataset, threshold), group in itertools.groupby(
            sorted(rows, key=lambda r: (r["n"], [t for _, t in DATASETS].index(r["dataset"]), r["threshold"])),
            key=lambda r: (r["n"], r["dataset"], r["threshold"])):
        group = list(group)
        ks = sorted({r["k"] for r in group})
        by_screen: dict[str, dict[int, dict]] = {}
        for r in group:
            by_screen.setdefault(r["screen"], {})[r["k"]] = r
        ranked = sorted(by_screen.items(), key=lambda item: -np.mean([item[1][k]["hit"] for k in ks]))
        singles = [item for item in ranked if "+" not in item[0]]
        lines += ["", f"## N = {n}, {dataset} >= {threshold}: hit (precision) at k = {', '.join(map(str, ks))}", "",
                  f"The {best} best screens by mean hit over k, then every single metric:", "",
                  "| screen | " + " | ".join(f"k = {k}" for k in ks) + " |", "|---|" + "---|" * len(ks)]
        for name, by_k in ranked[:best] + [item for item in singles if item not in ranked[:best]]:
            lines.append(f"| {name} | " + " | ".join(f"{by_k[k]['hit']:.2f} ({by_k[k]['precision']:.2f})" for k in ks)
                         + " |")
    (out / "README.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scores", type=Path, nargs="+", help="searchkit correlate output directories (their scores.csv)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--table", default=None, help="the NB201 table (default: ../shared/data/nb201/nb201_table.csv)")
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 3000])
    parser.add_argument("--k", type=int, nargs="+", default=[1, 3, 5, 10])
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows, limits = study(args.scores, args.table, args.n, args.k, args.draws, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "precision.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    command = "python benchmarks/topk_precision.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report(rows, limits, args.out, command, args.draws)
    return 0


if __name__ == "__main__":
    sys.exit(main())
