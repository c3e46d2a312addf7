"""``strategy: {name: auto}``: the strategy a run gets by default (issues 16 and 26).

Without a hardware constraint (or when validation is not affordable) it is regularized evolution
on the run's training-free metric, as before. With a ``constraint:`` and an affordable validation
oracle (the space's table has the run's dataset, so a 12-epoch validation is a lookup charged its
recorded training time, or the user chose ``validate.method: train``), it is the benchmark's
``warmup-whole`` row (:data:`CONSTRAINED`, screened by :data:`CONSTRAINED_METRIC`): synflow over
every feasible cell of a table's space (a space without a table: 500 samples), the top 20
validated best-first, then REA on validation accuracy. The screen was chosen on the tuning seeds
100-109 over 21 budget x dataset targets (results/hardware-aware/tuning): mean gap 0.74 for the
whole feasible set by synflow, 0.96 for the mean rank of synflow, jacob_cov and #params (which also
costs about nine times synflow's CPU per cell: results/nb201-all medians at C = 16, N = 5, jacob_cov
0.39 s, synflow 0.05 s, paid for every feasible cell by a user without stored scores), 1.09 for
synflow capped at 10,000 cells; results/hardware-aware/bench-all reports it on seeds 0-9. So the
run's metric is replaced by synflow: ``auto`` chooses how to search, the screen included; name a
strategy to keep your metric (the preset's KCC on 500 samples: mean gap 3.92 on seeds 0-9). Its
budget: ``budget.archs`` is not applied (the screen alone is up to 15,625 scores),
``budget.simulated_seconds`` defaults to :data:`SIMULATED_SECONDS`; ``budget.seconds`` is kept.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from searchkit.config import VALIDATION, MetricConfig, RunConfig, StrategyConfig
from searchkit.errors import SearchkitError
from searchkit.evaluation import target_dataset
from searchkit.spaces.base import Benchmark

AUTO = "auto"
#: the default without a constraint
UNCONSTRAINED = StrategyConfig("evolution", {})
#: the default under a constraint: configs/bench-hardware.yaml's ``warmup-whole`` row
CONSTRAINED = StrategyConfig("warmup", {"warmup": 500, "screen_all": 15625, "top": 20, "population": 10,
                                        "sample_size": 3})
#: its screen (the run's metric is replaced)
CONSTRAINED_METRIC = MetricConfig("synflow", {})
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
    return dataclasses.replace(cfg, strategy=CONSTRAINED, metric=CONSTRAINED_METRIC, budget=budget)
