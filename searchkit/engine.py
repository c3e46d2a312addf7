"""One search run end to end: data -> space -> fitness -> strategy -> evaluation -> run directory.

``run_search(config)`` is the Python API the ``searchkit search`` command wraps.

The engine owns both oracles a strategy sees (docs/design.md; protocol in
:mod:`searchkit.strategies.base`) and charges every answer to the budget:

* score: the run's metric (and the strategy's ``extra_metrics``) on the network at
  initialisation, charged the measured wall seconds of that training-free work. Scores go
  through the :class:`~searchkit.store.ScoreStore` (the run's ``scores.db``, or ``store:``
  shared with other runs): one the store already holds is not computed again and is charged the
  seconds it took then, so costs stay honest whichever run paid for it first. With a parallel
  backend (:class:`~searchkit.workers.Parallel`) the architectures a strategy asks for at once
  are scored ahead on the workers; each is still charged its own measured seconds.
* validate: :class:`TableValidator` (NB201 ``epochs``-epoch validation accuracy, charged the
  table's training time as simulated seconds) or :class:`TrainValidator` (real training,
  charged its measured seconds).

A repeat of a query within a run is answered from its earlier row and charged nothing
(:data:`MAX_REPEATS` in a row end the search).
"""
from __future__ import annotations

import dataclasses
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from tqdm import tqdm

from searchkit.config import RunConfig, config_from_dict, load_config
from searchkit.correlate import parse_metric_spec
from searchkit.data.base import Batch, DatasetSplits
from searchkit.errors import SearchkitError
from searchkit.evaluation import TABLE_DATASETS, Evaluation, evaluate_arch, open_table
from searchkit.metrics import Metric, get_metric
from searchkit.metrics.ntk import NTKMetric
from searchkit.runtime import build_network, resolve_device
from searchkit.spaces import get_space
from searchkit.spaces.base import SearchSpace
from searchkit.store import TRAIN_CHECKPOINT, VALIDATE_CHECKPOINT, HistoryRow, RunDir, ScoreStore
from searchkit.strategies import get_strategy
from searchkit.strategies.base import OneShotStrategy, SearchContext, Validate
from searchkit.tabular import NB201Table
from searchkit.workers import Parallel, ScoreRunner, ScoringRecipe

#: ``metric.name`` that answers every plain ask with the validate oracle: a training-based search
#: (e.g. regularized evolution on 12-epoch validation accuracy, the benchmark's REA baseline).
VALIDATION = "validation"
VALIDATE_METHODS = ("auto", "table", "train")
#: A search stops after this many consecutive repeated queries: they are free, so a strategy
#: cycling over architectures it has already queried (a small space, a budget in seconds only)
#: would otherwise never end.
MAX_REPEATS = 1000


def score_arch(
    space: SearchSpace, arch: Any, metric: Metric, batch: Batch, splits: DatasetSplits,
    seed: int, build: dict, device: torch.device,
) -> float:
    """The training-free fitness of ``arch``: its network at initialisation (seeded) on ``batch``."""
    net = build_network(space, arch, splits, seed, build).to(device)
    return metric(net, batch)


def combined_seconds(metrics: Mapping[str, Metric], seconds: Mapping[str, float]) -> float:
    """What scoring ``metrics`` together on one network costs, from each one's stand-alone seconds.

    NTK metrics with the same ``ntk_key`` share one kernel (:func:`score_metrics`), so a group
    of them is charged its largest time; every other metric its own.
    """
    total, kernels = 0.0, {}
    for label, metric in metrics.items():
        if isinstance(metric, NTKMetric):
            kernels[metric.ntk_key] = max(kernels.get(metric.ntk_key, 0.0), seconds[label])
        else:
            total += seconds[label]
    return total + sum(kernels.values())


@dataclass
class Scorer:
    """The score oracle: the run's metrics (label -> metric) on an architecture's seeded network
    at initialisation, through the store (:class:`~searchkit.workers.ScoreRunner`).

    ``scorer(text)`` returns (label -> value, seconds charged). A computed score is charged the
    measured time of scoring all metrics on one network (sharing the NTK); one the store held is
    charged :func:`combined_seconds` of the seconds stored with it. :meth:`prefetch` scores a
    batch of architectures ahead (on the workers) and keeps each one's measured seconds for
    when it is asked.
    """

    runner: ScoreRunner
    _ready: dict[str, tuple[dict[str, tuple[float, float]], float]] = field(default_factory=dict)

    def prefetch(self, texts: list[str]) -> None:
        for text, result, seconds in self.runner.scores(texts):
            if seconds is not None:
                self._ready[text] = (result, seconds)

    def __call__(self, text: str) -> tuple[dict[str, float], float]:
        if text in self._ready:
            result, seconds = self._ready.pop(text)
        else:
            ((_, result, seconds),) = self.runner.scores([text])
        if seconds is None:
            seconds = combined_seconds(self.runner.context.recipe.metrics, {k: alone for k, (_, alone) in result.items()})
        return {label: value for label, (value, _) in result.items()}, seconds


@dataclass
class TableValidator:
    """validate(arch) from the NAS-Bench-201 table: the ``epochs``-epoch validation accuracy (%) on
    ``dataset`` (CIFAR-10: the ``cifar10-valid`` protocol), charged ``NB201Table.train_time``
    (12 epochs: 12/200 of the recorded 200-epoch time) as simulated seconds."""

    table: NB201Table
    dataset: str
    epochs: int = 12

    def cost(self, text: str) -> float:
        """The simulated seconds a validation of ``text`` will be charged (known in advance)."""
        return self.table.train_time(self.table.index_of(text), self.dataset, self.epochs)

    def __call__(self, arch: Any, text: str) -> tuple[float, float]:
        index = self.table.index_of(text)
        return self.table.accuracy(index, self.dataset, "valid", self.epochs), self.cost(text)


@dataclass
class TrainValidator:
    """validate(arch) by training: ``evaluate.protocol`` for ``validate.epochs`` epochs from
    ``evaluate.seed``; the validation accuracy (%), charged the measured training seconds.
    ``checkpoint``: where the training in progress is checkpointed (removed when it finishes), so
    that a resumed search continues an interrupted validation."""

    space: SearchSpace
    cfg: RunConfig
    device: torch.device
    splits: DatasetSplits
    checkpoint: Path | None = None

    def cost(self, text: str) -> None:
        """Unknown until trained."""
        return None

    def __call__(self, arch: Any, text: str) -> tuple[float, float]:
        cfg = dataclasses.replace(self.cfg, evaluate=dataclasses.replace(
            self.cfg.evaluate, method="train", epochs=self.cfg.validate.epochs))
        evaluation = evaluate_arch(self.space, arch, cfg, None, self.device, self.splits, progress=False,
                                   checkpoint=self.checkpoint)
        if self.checkpoint is not None:
            self.checkpoint.unlink(missing_ok=True)
        return float(evaluation.valid_accuracy), float(evaluation.details["seconds"])


def open_validator(
    cfg: RunConfig, space: SearchSpace, table: NB201Table | None, device: torch.device, splits: DatasetSplits,
    checkpoint: Path | None = None,
) -> TableValidator | TrainValidator:
    """The run's validate oracle (``validate.method``; see :class:`searchkit.config.ValidateConfig`);
    ``checkpoint``: a training validator's checkpoint file."""
    method = cfg.validate.method
    if method not in VALIDATE_METHODS:
        raise SearchkitError(f"unknown validate.method {method!r}; choose one of {', '.join(VALIDATE_METHODS)}")
    dataset = TABLE_DATASETS.get(cfg.data.name)
    if method == "table" or (method == "auto" and table is not None and dataset is not None):
        if table is None or dataset is None:
            raise SearchkitError(
                f"validate.method=table needs the NB201 space, the NB201 table and one of its datasets "
                f"({', '.join(TABLE_DATASETS)}); got space {cfg.space.name!r}, dataset {cfg.data.name!r}")
        return TableValidator(table, dataset, cfg.validate.epochs)
    if splits.valid is None:
        raise SearchkitError(
            f"validate.method=train needs a dataset with a validation split; {splits.name!r} has none "
            "(use e.g. cifar10-valid, or validate.method=table on NAS-Bench-201)")
    return TrainValidator(space, cfg, device, splits, checkpoint)


@dataclass
class SearchResult:
    """What a search returns: the selected architecture, its score and final evaluation.

    ``score`` is the value the answer was selected by (``selected_by``: the training-free
    score, or the validation accuracy for hybrid and training-based searches). Costs:
    ``search_seconds`` is the measured wall time of the training-free work, ``simulated_seconds``
    the training time charged for validations, ``strategy_seconds`` the strategy's own
    bookkeeping (e.g. fitting a GP), reported but not budgeted.
    """

    arch: str
    index: int | None
    score: float
    metric: str
    evaluation: Evaluation | None
    archs_scored: int
    unique_archs: int
    search_seconds: float
    out: Path
    history: list[HistoryRow] = field(default_factory=list)
    validations: int = 0
    simulated_seconds: float = 0.0
    strategy_seconds: float = 0.0
    selected_by: str = "score"

    def to_dict(self) -> dict:
        return {
            "arch": self.arch, "index": self.index, "metric": self.metric, "score": self.score,
            "selected_by": self.selected_by,
            "final": None if self.evaluation is None else self.evaluation.to_dict(),
            "search_cost": {"archs_scored": self.archs_scored, "validations": self.validations,
                            "unique_archs": self.unique_archs,
                            "wall_seconds": round(self.search_seconds, 3),
                            "simulated_seconds": round(self.simulated_seconds, 3),
                            "strategy_seconds": round(self.strategy_seconds, 3)},
            "out": str(self.out),
        }


def _resolve_config(config: RunConfig | dict | str | Path | None, overrides) -> RunConfig:
    if isinstance(config, RunConfig):
        return config
    if isinstance(config, dict):
        return config_from_dict(config)
    return load_config(config, overrides)


def run_search(
    config: RunConfig | dict | str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    out: str | Path | None = None,
    resume: str | Path | None = None,
    progress: bool = True,
    space: SearchSpace | None = None,
    store: ScoreStore | None = None,
    parallel: Parallel = Parallel(),
) -> SearchResult:
    """Search, evaluate the selected architecture and write the run directory.

    ``config``: a RunConfig, a nested dict, or a YAML path (None: the defaults). ``resume``: an
    earlier run's directory; its config is reused and its history replayed without re-querying
    either oracle (strategies are deterministic given their seed and answers), so the result
    equals an uninterrupted run's; a training of the selected architecture that was interrupted
    continues from the run directory's checkpoint (``train.ckpt``). ``space``: a search space object to use instead of
    ``cfg.space.name``'s (e.g. the benchmark's pool of scored architectures). ``store``: an
    open score store (None: ``cfg.store``, else the run directory's ``scores.db``). ``parallel``:
    how the architectures of one ask are scored (workers need a registered space name).
    """
    if resume is not None:
        run = RunDir.existing(resume)
        cfg = config_from_dict(run.read_config())
        replay = run.read_history()
    else:
        cfg = _resolve_config(config, overrides)
        run = RunDir(out) if out is not None else RunDir.new(cfg.name)
        replay = []
    run.write_config(cfg.to_dict())

    device = resolve_device(cfg.device)
    space = space if space is not None else get_space(cfg.space.name)
    strategy = get_strategy(cfg.strategy.name, space, np.random.default_rng(cfg.seed), **cfg.strategy.options)
    train_based = cfg.metric.name == VALIDATION
    one_shot = isinstance(strategy, OneShotStrategy)
    metrics = {}
    if not train_based:
        metrics = {cfg.metric.name: get_metric(cfg.metric.name, **cfg.metric.options)}
        metrics.update(parse_metric_spec(spec) for spec in strategy.extra_metrics)
    scoring = ScoringRecipe.from_config(cfg, metrics, device).open(space)
    splits, batch = scoring.splits, scoring.batch
    table = open_table(cfg)
    budget = cfg.budget
    if budget.archs is None and budget.seconds is None and budget.simulated_seconds is None:
        raise SearchkitError("the budget is unlimited; set budget.archs, budget.seconds and/or budget.simulated_seconds")
    if train_based and (strategy.extra_metrics or one_shot):
        raise SearchkitError(f"strategy {cfg.strategy.name!r} needs a training-free metric, not metric.name={VALIDATION}")

    validator = (open_validator(cfg, space, table, device, splits, run.path / VALIDATE_CHECKPOINT)
                 if train_based or strategy.validates else None)
    closing = ExitStack()
    scorer = None
    if not (train_based or one_shot):
        if store is None:
            store = closing.enter_context(ScoreStore(cfg.store or run.path / "scores.db"))
        scorer = Scorer(closing.enter_context(ScoreRunner(scoring, store, parallel)))
    replayed = {row.arch for row in replay}

    history: list[HistoryRow] = []
    scored: dict[str, tuple[float, dict[str, float]]] = {}  # this run's scores: arch -> (score, extras)
    validated: dict[str, float] = {}
    spent = {"seconds": 0.0, "simulated_seconds": 0.0, "strategy": 0.0, "repeats": 0}

    def exhausted() -> bool:
        return (spent["repeats"] >= MAX_REPEATS or (budget.archs is not None and len(history) >= budget.archs)
                or (budget.seconds is not None and spent["seconds"] >= budget.seconds)
                or (budget.simulated_seconds is not None and spent["simulated_seconds"] >= budget.simulated_seconds))

    def answer(arch: Any, text: str, kind: str) -> HistoryRow | None:
        """A new row for this query, or None when a validation would overrun the simulated budget."""
        index = table.index_of(text) if table else None
        if kind == "validate":
            if text in validated:
                return HistoryRow(len(history), text, index, validated[text], 0.0, True, kind)
            if validator is None:
                raise RuntimeError(f"strategy {cfg.strategy.name!r} asked for a validation but does not set validates")
            cost = validator.cost(text)
            if budget.simulated_seconds is not None and cost is not None and \
                    spent["simulated_seconds"] + cost > budget.simulated_seconds:
                return None
            accuracy, charged = validator(arch, text)
            return HistoryRow(len(history), text, index, accuracy, 0.0, False, kind, charged)
        if text in scored:
            value, extras = scored[text]
            return HistoryRow(len(history), text, index, value, 0.0, True, kind, extras=extras)
        values, seconds = scorer(text)
        value = values.pop(cfg.metric.name)
        return HistoryRow(len(history), text, index, value, seconds, False, kind, extras=values)

    def deliver(arch: Any, row: HistoryRow, asked_validation: bool) -> None:
        if row.kind == "validate":
            validated[row.arch] = row.score
        else:
            scored[row.arch] = (row.score, row.extras)
        history.append(row)
        spent["repeats"] = spent["repeats"] + 1 if row.cached else 0
        spent["seconds"] += row.seconds
        spent["simulated_seconds"] += row.simulated_seconds
        start = time.perf_counter()
        if asked_validation:
            strategy.tell_validation(arch, row.score)
        else:
            if row.extras:
                strategy.tell_extras(arch, row.extras)
            strategy.tell(arch, row.score)
        spent["strategy"] += time.perf_counter() - start

    writer = run.history_writer(replay)
    bar = tqdm(total=budget.archs, disable=not progress or one_shot, desc="search", unit="query")
    try:
        if one_shot:
            if replay:
                row = replay[0]
                arch = space.decode(row.arch)
            else:
                context = SearchContext(splits, batch, device, cfg.metric.name, dict(cfg.metric.options),
                                        dict(cfg.space.build))
                start = time.perf_counter()
                arch, value = strategy.search(context)
                text = space.encode(arch)
                row = HistoryRow(0, text, table.index_of(text) if table else None, float(value),
                                 time.perf_counter() - start, False, "oneshot")
                writer.append(row)
            deliver(arch, row, False)
        stopped = one_shot
        while not stopped and not exhausted():
            start = time.perf_counter()
            asks = strategy.ask()
            spent["strategy"] += time.perf_counter() - start
            if not asks:
                break
            if scorer is not None and parallel.backend != "serial":
                ahead = [t for t in (space.encode(a) for a in asks if not isinstance(a, Validate))
                         if t not in scored and t not in replayed]
                scorer.prefetch(ahead if budget.archs is None else ahead[:max(0, budget.archs - len(history))])
            for item in asks:
                if exhausted():
                    break
                asked_validation = isinstance(item, Validate)
                arch = item.arch if asked_validation else item
                kind = "validate" if asked_validation or train_based else "score"
                text, step = space.encode(arch), len(history)
                if step < len(replay):  # resuming: the same queries come back; reuse their rows
                    row = replay[step]
                    if (row.arch, row.kind) != (text, kind):
                        raise SearchkitError(f"cannot resume {run.path}: its history diverges from this search at step {step}")
                else:
                    row = answer(arch, text, kind)
                    if row is None:
                        stopped = True
                        break
                    writer.append(row)
                deliver(arch, row, asked_validation)
                bar.update(1)
                bar.set_postfix(best=f"{strategy.best_score:.4f}")
    finally:
        bar.close()
        writer.close()
        closing.close()

    if strategy.best_arch is None:
        raise SearchkitError("the budget ran out before the strategy selected an architecture; raise the budget")
    best_text = space.encode(strategy.best_arch)
    evaluation = evaluate_arch(space, strategy.best_arch, cfg, table, device, splits, progress,
                               checkpoint=run.path / TRAIN_CHECKPOINT)
    result = SearchResult(
        arch=best_text, index=table.index_of(best_text) if table else None, score=float(strategy.best_score),
        metric=cfg.metric.name, evaluation=evaluation, archs_scored=sum(r.kind == "score" for r in history),
        unique_archs=len(scored.keys() | validated.keys()), search_seconds=spent["seconds"], out=run.path, history=history,
        validations=sum(r.kind == "validate" for r in history), simulated_seconds=spent["simulated_seconds"],
        strategy_seconds=spent["strategy"], selected_by="validation" if train_based else strategy.selected_by,
    )
    run.write_json("best.json", result.to_dict())
    return result
