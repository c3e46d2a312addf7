"""What the benchmark reports share (:mod:`searchkit.study.benchmark_report`,
:mod:`searchkit.study.hardware_report`): the incumbent's accuracy at simulated-second
checkpoints, mean ± std cells, and best-so-far curves over seeds drawn as a mean with a band."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from searchkit.spaces.base import Benchmark

#: Simulated-second budgets at which the incumbent of a hybrid or training-based run is reported:
#: ~100 s, Zero-Cost-PT + ZiCo's 432 s, 1,000 s, and the anchors' ~3,051 s (RoBoT; HNAS: 3,006).
CHECKPOINTS = (100, 432, 1000, 3051)


def mean_std(values: list[float]) -> str:
    """A table cell: mean ± std (population std) of the values that are not NaN, 2 decimals; one value
    alone as it is; "-" for none."""
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "-"
    return f"{np.mean(values):.2f} ± {np.std(values):.2f}" if len(values) > 1 else f"{values[0]:.2f}"


def anytime_accuracy(curve: list[tuple[float, str]] | None, accuracy: np.ndarray, table: Benchmark,
                     checkpoints: tuple = CHECKPOINTS) -> list[float]:
    """The incumbent's accuracy (``accuracy[index]``) once at most each checkpoint's simulated
    training seconds were spent (NaN before any answer, and everywhere for a run without a curve).
    curve: the run's incumbent curve over simulated seconds (:class:`~searchkit.study.curves.Curves`)."""
    if curve is None:
        return [math.nan] * len(checkpoints)
    values, position = [], 0
    for checkpoint in checkpoints:
        while position < len(curve) and curve[position][0] <= checkpoint:
            position += 1
        values.append(math.nan if position == 0 else float(accuracy[table.index_of(curve[position - 1][1])]))
    return values


def draw_runs(ax: Any, runs: list[list[tuple[float, float]]], label: str, style: str, colour: Any) -> None:
    """Mean incumbent accuracy over seeds (a step line) and its min-max band, where every seed has one."""
    costs = np.array(sorted({max(c, 1e-2) for curve in runs for c, _ in curve}))
    values = np.array([[_value_at(curve, c) for c in costs] for curve in runs])
    defined = ~np.isnan(values).any(0)
    costs, values = costs[defined], values[:, defined]
    if len(costs) == 1:
        ax.errorbar(costs, values.mean(0), yerr=values.std(0), fmt="o", capsize=3, label=label, color=colour)
        return
    ax.step(costs, values.mean(0), where="post", linestyle=style, label=label, color=colour)
    ax.fill_between(costs, values.min(0), values.max(0), step="post", alpha=0.08, color=colour)


def _value_at(curve: list[tuple[float, float]], cost: float) -> float:
    """The incumbent's accuracy once ``cost`` has been spent (NaN before the first answer)."""
    value = math.nan
    for spent, accuracy in curve:
        if max(spent, 1e-2) > cost:
            break
        value = accuracy
    return value
