"""The schema of a benchmark file (``configs/bench-nb201.yaml``): a run config every run shares,
plus a ``benchmark:`` section with the matrix of strategies x metrics x seeds; and what one entry
of it means for a run (:func:`run_config`, :func:`needs`), which the NB201 and the hardware
benchmark (:mod:`searchkit.study.benchmark`, :mod:`searchkit.study.hardware`) both read."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from searchkit.config import VALIDATION, RunConfig, build_section, config_from_dict, load_config
from searchkit.errors import SearchkitError
from searchkit.evaluation import target_dataset
from searchkit.metrics import parse_metric
from searchkit.strategies import Needs, strategy_needs


@dataclass
class StrategyEntry:
    """One strategy of the benchmark: registry ``name``, ``label`` in the tables, its ``options``,
    the ``metrics`` it runs with (None: the benchmark's list; ``validation`` for a training-based
    search), ``budget`` keys overriding the shared config's, and ``seeds`` (None: the benchmark's;
    e.g. fewer for an expensive one-shot search) and ``datasets`` (None: the benchmark's)."""

    name: str = "random"
    label: str | None = None
    options: dict = field(default_factory=dict)
    metrics: list | None = None
    budget: dict = field(default_factory=dict)
    seeds: int | None = None
    datasets: list | None = None

    @property
    def title(self) -> str:
        return self.label or self.name


@dataclass
class PoolConfig:
    """The architectures searched: ``n`` drawn with ``seed`` exactly as ``searchkit correlate --n N
    --seed S`` draws them (null: every architecture of the benchmark); ``scored_only``: keep only
    those the score store already holds for every metric (a benchmark that computes no new scores);
    ``prescore``: score every member before the runs (in parallel with ``--workers``), or, when false,
    leave each missing score to the run that asks for it: a row of 100 random samples per seed then
    scores ~1,000 of NB201's 15,625 cells instead of all of them (a strategy that ranks the whole
    pool, such as HNAS, RoBoT or the warm-up over every cell, still scores all of them, one by one)."""

    n: int | None = 1000
    seed: int = 0
    scored_only: bool = False
    prescore: bool = True


@dataclass
class BenchmarkConfig:
    """The ``benchmark:`` section: runs use seeds first_seed .. first_seed + seeds - 1 (e.g. the
    tuning seeds 100-109: ``first_seed: 100``); ``metrics`` are metric specs (with
    options, e.g. ``kcc:eps=0.001``); ``score_cache`` lists ``searchkit correlate`` output
    directories whose scores (their ``scores.csv``, an export of a store) are imported into the
    benchmark's store first, when their recipe matches. ``hardware``: the hardware-aware rows
    (latency budgets and multi-objective devices, :class:`searchkit.study.hardware.HardwareRows`);
    empty: the plain benchmark. ``datasets``: the table datasets each search is for (each run's
    ``data.target``: it validates on that dataset's column and reads its test column, while
    training-free scores stay those of the scoring batch's images); null: the config's own
    (``data.target``, else ``data.name``)."""

    seeds: int = 5
    first_seed: int = 0
    pool: PoolConfig = field(default_factory=PoolConfig)
    score_cache: list = field(default_factory=list)
    metrics: list = field(default_factory=lambda: ["kcc"])
    strategies: list = field(default_factory=list)
    hardware: dict = field(default_factory=dict)
    datasets: list | None = None

    def entries(self) -> list[StrategyEntry]:
        return [build_section(StrategyEntry, entry, f"benchmark.strategies[{i}].")
                for i, entry in enumerate(self.strategies)]

    def with_seeds(self, seeds: int) -> "BenchmarkConfig":
        """``--seeds N``: seeds 0 .. N-1 for every (strategy, metric), an entry's own ``seeds`` capped at N."""
        strategies = [{**entry, "seeds": min(entry["seeds"], seeds)}
                      if isinstance(entry, dict) and isinstance(entry.get("seeds"), int) else entry
                      for entry in self.strategies]
        return dataclasses.replace(self, seeds=seeds, strategies=strategies)

    def runs(self) -> list[tuple[StrategyEntry, str, int]]:
        """Every (strategy, metric spec, seed) of the matrix, in order."""
        return [(entry, metric, seed) for entry in self.entries() for metric in (entry.metrics or self.metrics)
                for seed in range(self.first_seed, self.first_seed + (self.seeds if entry.seeds is None else entry.seeds))]

    def datasets_of(self, entry: StrategyEntry, default: str) -> list[str]:
        """The datasets ``entry``'s searches are for: its own, else the benchmark's, else ``default``."""
        return list(entry.datasets or self.datasets or [default])


def load_benchmark_config(path: str | Path) -> tuple[RunConfig, BenchmarkConfig]:
    """(the settings every run shares, the benchmark section) of the YAML at ``path``, every key
    and metric spec checked. Scoring networks are initialised from the shared ``init_seed`` (0
    when null) in every run, so a score depends only on the architecture and the recipe."""
    base = load_config(path)
    if base.init_seed is None:
        base = dataclasses.replace(base, init_seed=0)
    bench = build_section(BenchmarkConfig, base.benchmark, "benchmark.")
    if bench.seeds < 1 or not bench.entries():
        raise SearchkitError("the benchmark needs benchmark.seeds >= 1 and at least one entry under benchmark.strategies")
    for _, metric, _ in bench.runs():
        if metric != VALIDATION:
            parse_metric(metric)
    return base, bench


def run_config(base: RunConfig, entry: StrategyEntry, metric: str, seed: int, dataset: str | None = None) -> RunConfig:
    """One run's config: the shared settings with this strategy, metric spec, seed and budget;
    ``dataset``: the table dataset the search is for (``data.target``; None: the shared config's)."""
    config = base.to_dict()
    if dataset is not None and dataset != target_dataset(base):
        config["data"] = {**config["data"], "target": dataset}
    config.update(
        name=f"{entry.title}-{metric}-s{seed}", seed=seed, benchmark={},
        metric={"name": metric, "options": {}},
        strategy={"name": entry.name, "options": dict(entry.options)},
        budget={**config["budget"], **entry.budget},
    )
    return config_from_dict(config)


def needs(entry: StrategyEntry) -> Needs:
    """What the entry's strategy, with its options, needs from a run (no strategy is built)."""
    return strategy_needs(entry.name, entry.options)
