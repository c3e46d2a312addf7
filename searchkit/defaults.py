"""``strategy: {name: auto}``: the strategy a run gets by default (issue 26).

Without a hardware constraint (or when validation is not affordable) it is regularized evolution
on the run's training-free metric, as before. With a ``constraint:`` and an affordable validation
oracle (the space's table has the run's dataset, so a 12-epoch validation is a lookup charged its
recorded training time, or the user chose ``validate.method: train``), it is the zero-cost
warm-up hybrid with the hardware benchmark's settings (:data:`CONSTRAINED`): in
results/hardware-aware (issue 16, CIFAR-10, 6 latency budgets) it was the row closest to the best
feasible cell on every budget (mean gap 0.00-0.50 points at <= 1,000 simulated s), where a
training-free evolution search was 0.65-3.79 points below it. Its budget: ``budget.archs`` is not
applied (the screen alone is 500 scores), ``budget.simulated_seconds`` defaults to
:data:`SIMULATED_SECONDS`; ``budget.seconds`` is kept.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from searchkit.config import VALIDATION, RunConfig, StrategyConfig
from searchkit.errors import SearchkitError
from searchkit.evaluation import target_dataset
from searchkit.spaces.base import Benchmark

AUTO = "auto"
#: the default without a constraint
UNCONSTRAINED = StrategyConfig("evolution", {})
#: the default under a constraint: configs/bench-hardware.yaml's ``warmup`` row
CONSTRAINED = StrategyConfig("warmup", {"warmup": 500, "population": 10, "sample_size": 3})
#: the constrained default's training budget (simulated seconds) when the config sets none
SIMULATED_SECONDS = 1000.0


def validation_affordable(cfg: RunConfig, table: Benchmark | None) -> bool:
    """Whether a run can validate: by a table lookup of its dataset, or by training the user asked for."""
    if cfg.validate.method == "train":
        return True
    return cfg.validate.method in ("auto", "table") and table is not None and \
        table.dataset_for(target_dataset(cfg)) is not None


def resolve_strategy(cfg: RunConfig, table: Callable[[], Benchmark | None]) -> RunConfig:
    """``cfg`` with ``strategy: auto`` replaced by the default it stands for (itself otherwise);
    ``table()``: the space's table for the run (opened only when a constrained auto run asks)."""
    if cfg.strategy.name != AUTO:
        return cfg
    if cfg.strategy.options:
        raise SearchkitError(f"strategy auto takes no options (got {sorted(cfg.strategy.options)}); name the strategy "
                             "to set its options, e.g. strategy: {name: warmup, options: {warmup: 500}}")
    if cfg.constraint is None or cfg.metric.name == VALIDATION or not validation_affordable(cfg, table()):
        return dataclasses.replace(cfg, strategy=UNCONSTRAINED)
    budget = dataclasses.replace(cfg.budget, archs=None,
                                 simulated_seconds=cfg.budget.simulated_seconds or SIMULATED_SECONDS)
    return dataclasses.replace(cfg, strategy=CONSTRAINED, budget=budget)
