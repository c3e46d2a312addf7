"""The NAS-Bench-201 correlation study: merge ``searchkit correlate`` outputs, tune on EVEN indices,
report on ODD indices.

    python benchmarks/correlation_study.py results/correlation/ntk results/correlation/zero_cost \
        --out results/correlation/README.md

Tuning (choosing KCC's options, choosing the ensemble) uses only architectures with an even
NB201 index and their CIFAR-10 *validation* accuracy (cifar10-valid protocol); every reported
figure of a tuned choice is on the odd-index architectures, which the choices never saw.
"""
from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import yaml

from searchkit.correlate import ScoreFile
from searchkit.report import TARGETS, correlations, rank_combination
from searchkit.tabular import NB201Table

#: Published Spearman rho on NB201 CIFAR-10 (Abdelfattah et al. 2021 over all 15,625; NASWOT
#: from Mellor et al. 2021; the NTK-based figure as tabulated by ZiCo, Li et al. 2023).
PUBLISHED = {"grad_norm": 0.59, "snip": 0.60, "grasp": 0.51, "fisher": 0.36, "synflow": 0.74,
             "jacob_cov": 0.73, "naswot": 0.77, "ntk_cond": 0.44}
BASELINES = ("naswot", "synflow", "params")


def load(dirs: list[Path]) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, float]]:
    """Metric columns over the indices every directory scored, their indices, mean seconds per metric."""
    frames = []
    for d in dirs:
        labels = yaml.safe_load((d / "settings.yaml").read_text())["metrics"]
        frames.append((labels, ScoreFile(d / "scores.csv", labels).read()))
    common = sorted(set.intersection(*(set(rows) for _, rows in frames)))
    columns, seconds = {}, {}
    for labels, rows in frames:
        for label in labels:
            columns[label] = np.array([rows[i][label] for i in common])
            seconds[label] = float(np.mean([rows[i][f"{label}_s"] for i in common]))
    return columns, np.array(common), seconds


def rho(values: np.ndarray, accuracy: np.ndarray) -> float:
    return correlations(values, accuracy)[0]


def table_lines(columns: dict[str, np.ndarray], accuracy: dict[str, np.ndarray], seconds: dict[str, float]) -> list[str]:
    head = " | ".join(f"{d} {s}" for d, s in TARGETS)
    lines = [f"| metric | {head} | s/arch | published (C10 test) |", "|---|" + "---|" * (len(TARGETS) + 2)]
    for label, values in columns.items():
        cells = " | ".join("{:.3f} / {:.3f}".format(*correlations(values, accuracy[t])) for t in TARGETS)
        lines.append(f"| {label} | {cells} | {seconds.get(label, float('nan')):.3f} | {PUBLISHED.get(label, '')} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", type=Path, nargs="+", help="searchkit correlate output directories")
    parser.add_argument("--out", type=Path, required=True, help="markdown report to write")
    parser.add_argument("--ensemble-size", type=int, default=3, help="metrics per rank ensemble (default 3)")
    args = parser.parse_args()

    table = NB201Table.load()
    columns, indices, seconds = load(args.dirs)
    accuracy = {t: table.column(t[0], t[1], 200)[indices] for t in TARGETS}
    even, odd = indices % 2 == 0, indices % 2 == 1
    tune_target = accuracy[("cifar10", "valid")]
    kcc_variants = [k for k in columns if k == "kcc" or k.startswith("kcc:") or k in ("hsic", "kta")]
    tuned = {k: rho(columns[k][even], tune_target[even]) for k in kcc_variants}
    chosen = max(tuned, key=tuned.get)

    singles = [k for k in columns if k not in kcc_variants or k == chosen]
    ensembles = {}
    for combo in itertools.combinations(singles, args.ensemble_size):
        ensembles[combo] = rho(rank_combination([columns[k][even] for k in combo]), tune_target[even])
    best_combo = max(ensembles, key=ensembles.get)

    lines = [
        "# Training-free metrics on NAS-Bench-201 (CIFAR-10 scoring batch)", "",
        f"Architectures: n = {len(indices)} (uniform sample, seed 0), {even.sum()} with an even NB201 index "
        f"(tuning half) and {odd.sum()} odd (held out). Cells: Spearman rho / Kendall tau against the "
        "200-epoch accuracy from the NAS-Bench-201 table; s/arch: mean seconds per architecture on this "
        "machine's 2 CPU cores (NTK metrics include the shared NTK's time).", "",
        "## All metrics, all architectures", "", *table_lines(columns, accuracy, seconds), "",
        "## KCC: choices tuned on the even half (Spearman vs CIFAR-10 validation accuracy)", "",
        "| variant | rho (even, C10 valid) |", "|---|---|",
        *(f"| {k} | {v:.3f} |" for k, v in sorted(tuned.items(), key=lambda kv: -kv[1])), "",
        f"Chosen: `{chosen}`. On the held-out odd half:", "",
        "| metric | C10 test | C10 valid | C100 test | IN16 test |", "|---|---|---|---|---|",
    ]
    for label in [chosen, *(b for b in BASELINES if b in columns)]:
        r = [rho(columns[label][odd], accuracy[t][odd]) for t in
             [("cifar10", "test"), ("cifar10", "valid"), ("cifar100", "test"), ("ImageNet16-120", "test")]]
        lines.append(f"| {label} | " + " | ".join(f"{x:.3f}" for x in r) + " |")
    ens_odd = rank_combination([columns[k][odd] for k in best_combo])
    lines += [
        "", f"## Rank ensemble of {args.ensemble_size} (chosen on the even half, reported on the odd half)", "",
        f"Best combination on the even half: {' + '.join(best_combo)} (rho {ensembles[best_combo]:.3f} vs "
        "C10 valid). Sum of ranks, equal weights.", "",
        "| target | rho on odd |", "|---|---|",
        *(f"| {d} {s} | {rho(ens_odd, accuracy[(d, s)][odd]):.3f} |" for d, s in TARGETS),
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
