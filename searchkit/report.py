"""Markdown tables and matplotlib figures for metric studies."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import stats

from searchkit.tabular import NB201Table

#: (table dataset, split) columns of the correlation table, in order.
TARGETS = [(d, s) for d in ("cifar10", "cifar100", "ImageNet16-120") for s in ("test", "valid")]


def rank_combination(columns: list[np.ndarray]) -> np.ndarray:
    """Sum of the ranks of each column (ties averaged): TE-NAS's way of combining metrics, and the
    ensemble rule used in our study. Higher is better, like every column."""
    return np.sum([stats.rankdata(c) for c in columns], axis=0)


def correlations(values: np.ndarray, accuracy: np.ndarray) -> tuple[float, float]:
    """(Spearman rho, Kendall tau) of ``values`` against ``accuracy``; NaN where undefined."""
    if np.ptp(values) == 0:
        return float("nan"), float("nan")
    return float(stats.spearmanr(values, accuracy)[0]), float(stats.kendalltau(values, accuracy)[0])


def correlation_rows(
    columns: dict[str, np.ndarray], indices: np.ndarray, table: NB201Table
) -> list[tuple[str, list[tuple[float, float]]]]:
    """For each column label: [(rho, tau)] over :data:`TARGETS` (200-epoch accuracies of ``indices``)."""
    targets = [table.column(d, s, 200)[indices] for d, s in TARGETS]
    return [(label, [correlations(values, acc) for acc in targets]) for label, values in columns.items()]


def derived_columns(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Population-level combinations worth reporting beside the metrics: TE-NAS's rank sum of
    ``ntk_cond`` and ``linear_regions`` (``tenas_rank``) when both were scored."""
    derived = {}
    if "ntk_cond" in columns and "linear_regions" in columns:
        derived["tenas_rank"] = rank_combination([columns["ntk_cond"], columns["linear_regions"]])
    return derived


def write_correlation_report(out: Path, rows: dict[int, dict[str, float]], labels: list[str], table: NB201Table) -> Path:
    """``out/correlation.md`` (Spearman / Kendall against 200-epoch accuracies, n, mean seconds)
    and ``out/scatter_<metric>.png`` for each metric."""
    indices = np.array(list(rows), dtype=int)
    columns = {label: np.array([rows[i][label] for i in indices]) for label in labels}
    seconds = {label: float(np.mean([rows[i][f"{label}_s"] for i in indices])) for label in labels}
    columns.update(derived_columns(columns))
    head = " | ".join(f"{d} {s}" for d, s in TARGETS)
    lines = [
        f"# Rank correlation with NAS-Bench-201 200-epoch accuracy (n = {len(indices)})", "",
        "Each cell: Spearman rho / Kendall tau between the metric and the accuracy. Table: "
        f"`{table.source}`.", "",
        f"| metric | n | {head} | mean s/arch |",
        "|---|---|" + "---|" * len(TARGETS) + "---|",
    ]
    for label, cells in correlation_rows(columns, indices, table):
        text = " | ".join(f"{rho:.3f} / {tau:.3f}" for rho, tau in cells)
        cost = f"{seconds[label]:.3f}" if label in seconds else "(sum of its parts)"
        lines.append(f"| {label} | {len(indices)} | {text} | {cost} |")
    path = out / "correlation.md"
    path.write_text("\n".join(lines) + "\n")
    accuracy = table.column("cifar10", "test", 200)[indices]
    for label in labels:
        scatter(columns[label], accuracy, label, out / f"scatter_{label.replace(':', '_').replace('=', '-')}.png")
    return path


def scatter(values: np.ndarray, accuracy: np.ndarray, label: str, path: Path) -> None:
    """Metric (x) against CIFAR-10 test accuracy (y), with rho in the title; symlog x for wide ranges."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.5), dpi=110)
    ax.scatter(values, accuracy, s=6, alpha=0.5)
    finite = values[np.isfinite(values)]
    if finite.size and np.ptp(finite) > 0 and np.abs(finite).max() / max(np.median(np.abs(finite)), 1e-300) > 1e3:
        ax.set_xscale("symlog")
    rho = correlations(values, accuracy)[0]
    ax.set(xlabel=label, ylabel="CIFAR-10 test accuracy (%)", title=f"{label}: Spearman {rho:.3f}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
