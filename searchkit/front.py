"""The Pareto front a multi-objective run found, and the true front it is measured against
(formerly ``searchkit.hardware.front``; on the strategies' level: it reads their answers' costs).

A run's found front (:func:`found_front`) is the non-dominated set, by (the run's value, the
hardware cost), of the architectures it queried: among the scored ones, and once any was
validated, the validated ones' front with the scored front's cells that no validated cell
dominates (issue 26: a hybrid's front no longer drops the scored trade-offs its validations do
not reach). It is written as ``front.csv`` and drawn in ``front.png``: accuracy vs
cost, the found front over the true front when the space has a table of accuracies and an
enumerable cost (NB201 + HW-NAS-Bench).
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from searchkit.hardware.cost_models import CostModel, EnumerableCost
from searchkit.pareto import pareto_front
from searchkit.rundir import HistoryRow
from searchkit.spaces.base import Benchmark, SearchSpace
from searchkit.strategies.base import COST

FRONT_FIELDS = ("step", "arch", "index", "kind", "value", "cost", "test_accuracy")


def found_front(history: Sequence[HistoryRow]) -> list[HistoryRow]:
    """The run's front from its first answers (repeats and non-finite values left out), ordered by
    cost ascending: the non-dominated rows by (value max, cost min) of the score and one-shot rows;
    once any is validated, the validated rows' front plus the scored front's cells that no
    validated cell dominates. A score and a validation accuracy are not comparable, so a validated
    cell can dominate a scored one only by its own score (when the run scored it) and cost; every
    such cell is among the scored rows, so none dominates a scored-front cell: the front is the
    union of the validated front and the scored front's cells not validated (a validated cell
    appears once, by its validation)."""
    rows = [r for r in history if not r.cached and COST in r.extras and math.isfinite(r.score)]
    validated = [r for r in rows if r.kind == "validate"]
    scored = [r for r in rows if r.kind != "validate"]
    front = [scored[i] for i in pareto_front([(r.score, r.extras[COST]) for r in scored])] if scored else []
    if validated:
        judged = {r.arch for r in validated}
        front = [r for r in front if r.arch not in judged]
        front += [validated[i] for i in pareto_front([(r.score, r.extras[COST]) for r in validated])]
    return sorted(front, key=lambda r: (r.extras[COST], -r.score))


def true_points(space: SearchSpace, cost: CostModel, table: Benchmark, dataset: str) -> np.ndarray | None:
    """(test accuracy, cost) of every architecture the space searches (its members when it is a
    pool or a table-restricted space, else every cell with a cost), shape (n, 2); None when the
    cost is not enumerable. Cells without a cost are left out."""
    if not isinstance(cost, EnumerableCost):
        return None
    texts, values = cost.all_costs()
    members = getattr(space, "members", None)
    if members is not None:
        lookup = dict(zip(texts, values))
        texts = [space.encode(a) for a in members]
        values = np.array([lookup.get(t, np.nan) for t in texts])
    accuracy = table.column(dataset, "test", 200)
    points = np.c_[accuracy[[table.index_of(t) for t in texts]], values]
    return points[np.isfinite(points).all(1)]


def write_front(out: Path, history: Sequence[HistoryRow], space: SearchSpace, cost: CostModel,
                table: Benchmark | None, data_name: str) -> list[HistoryRow]:
    """``out/front.csv`` (the found front; ``test_accuracy`` from the table when there is one) and
    ``out/front.png``; returns the front's rows."""
    front = found_front(history)
    dataset = None if table is None else table.dataset_for(data_name)
    accuracy = None if dataset is None else table.column(dataset, "test", 200)
    with (out / "front.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FRONT_FIELDS)
        for row in front:
            test = "" if accuracy is None or row.index is None else f"{accuracy[row.index]:.4f}"
            writer.writerow((row.step, row.arch, "" if row.index is None else row.index, row.kind, repr(row.score),
                             repr(row.extras[COST]), test))
    truth = None if dataset is None else true_points(space, cost, table, dataset)
    plot_front(out / "front.png", front, cost, accuracy, truth, queried_rows(history))
    return front


def queried_rows(history: Sequence[HistoryRow]) -> list[HistoryRow]:
    """The first answer of every architecture a run queried (with a cost and a finite value)."""
    seen: set[str] = set()
    rows = []
    for row in history:
        if not row.cached and COST in row.extras and math.isfinite(row.score) and row.arch not in seen:
            seen.add(row.arch)
            rows.append(row)
    return rows


def plot_front(path: Path, front: Sequence[HistoryRow], cost: CostModel, accuracy: np.ndarray | None,
               truth: np.ndarray | None, queried: Sequence[HistoryRow] = ()) -> list[str]:
    """Accuracy vs cost: with a table, every cell the space searches (``truth``) and its true front, the
    cells the run ``queried`` and the found front at their test accuracy; without, the found front's own
    values. Returns the legend's labels (each with the number of points it marks)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=110)
    xs = [r.extras[COST] for r in front]
    label = f"{cost.device} {cost.quantity} ({cost.unit})"
    if accuracy is not None and all(r.index is not None for r in front):
        if truth is not None:
            ax.scatter(truth[:, 1], truth[:, 0], s=2, color="0.8", label=f"every cell of the space ({len(truth):,})",
                       rasterized=True)
            line = truth[pareto_front(truth)]
            ax.step(line[:, 1], line[:, 0], where="post", color="k", linewidth=1,
                    label=f"true front ({len(line)} cells)")
        shown = [r for r in queried if r.index is not None]
        if shown:
            ax.scatter([r.extras[COST] for r in shown], [float(accuracy[r.index]) for r in shown], s=9,
                       color="tab:blue", alpha=0.5, linewidths=0, label=f"cells the run queried ({len(shown)})")
        ys: list[float] = [float(accuracy[r.index]) for r in front]
        ax.set_ylabel("test accuracy (%)")
        ax.set_ylim(max(ax.get_ylim()[0], min([*ys, 80.0]) - 2), None)
    else:
        ys = [r.score for r in front]
        ax.set_ylabel("the run's value (score or validation accuracy)")
    ax.plot(xs, ys, "o", color="tab:red", markersize=4, label=f"found front ({len(front)})")
    ax.set_xlabel(label)
    legend = ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return [text.get_text() for text in legend.get_texts()]


def front_points(rows: Sequence[dict[str, Any]]) -> np.ndarray:
    """(test accuracy, cost) of front.csv rows, shape (n, 2) (rows without a test accuracy left out)."""
    pts = [(float(r["test_accuracy"]), float(r["cost"])) for r in rows if r.get("test_accuracy")]
    return np.array(pts, dtype=np.float64).reshape(-1, 2)
