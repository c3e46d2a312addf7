"""The oracles a search's queries are answered by (:mod:`searchkit.driver`).

* :class:`ScoreOracle`: the run's training-free metric (and the strategy's extra metrics, one
  shared NTK) on the architecture's seeded network, through the score store
  (:class:`~searchkit.scoring.ScoreRunner`): a score the store holds is not computed again and
  is charged the seconds it took then, so costs stay honest whichever run paid first. With a
  parallel backend, the scores a strategy asks for at once are computed ahead on the workers
  (:meth:`ScoreOracle.prefetch`); each is still charged its own measured seconds.
* :class:`TableValidator`: the space's tabular benchmark's ``epochs``-epoch validation accuracy,
  charged the table's training time as simulated seconds (NAS-Bench-201: 12/200 of the
  recorded 200-epoch time).
* :class:`TrainValidator`: a real short training, charged its measured seconds.
* :class:`OneShotOracle`: runs a one-shot search (NASI) and charges its wall time as
  training-free work.
* :class:`CostOracle`: wraps another and adds the architecture's hardware cost to every answer
  (a run with a cost model, :mod:`searchkit.budget`).
"""
from __future__ import annotations

import dataclasses
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from searchkit.config import RunConfig
from searchkit.data.base import DatasetSplits
from searchkit.driver import Oracle, Reply
from searchkit.errors import SearchkitError
from searchkit.evaluation import evaluate_arch, table_dataset
from searchkit.hardware.cost_models import CostModel
from searchkit.scoring import ScoreRunner, combined_seconds
from searchkit.spaces.base import Benchmark, SearchSpace
from searchkit.strategies.base import COST, OneShot, Query, SearchContext
from searchkit.train.trainer import TrainingDiverged

VALIDATE_METHODS = ("auto", "table", "train")
#: The history extras key of a validation whose training diverged: the epoch it diverged in.
DIVERGED = "diverged_epoch"


class OracleDefaults:
    """The defaults of :class:`~searchkit.driver.Oracle`: a cost unknown in advance, no prefetching,
    one query at a time (``parallelism``), simulated seconds that are not wall time (``measured``)."""

    parallelism: ClassVar[int] = 1
    measured: ClassVar[bool] = False

    def cost(self, text: str) -> float | None:
        return None

    def prefetch(self, texts: list[str]) -> None:
        return None

    def start(self) -> None:
        """Start whatever answers take (workers) before the search; nothing by default."""
        return None


@dataclass
class ScoreOracle(OracleDefaults):
    """The score oracle: ``main`` (the run's metric label) and ``extras`` (the strategy's extra
    metric labels) of the runner's recipe. A computed score is charged the measured time of
    scoring all its metrics on one network; one the store held is charged
    :func:`combined_seconds` of the seconds stored with it (summed over the draws when a score
    averages several, :mod:`searchkit.scoring`)."""

    runner: ScoreRunner
    main: str
    extras: tuple[str, ...] = ()
    kind: str = "score"
    _ready: dict[str, tuple[dict[str, tuple[float, float]], float]] = field(default_factory=dict)

    @property
    def quantity(self) -> str:
        return self.main

    @property
    def parallelism(self) -> int:  # type: ignore[override]
        """How many scores the runner computes at once (its workers; 1 in this process)."""
        return 1 if self.runner.parallel.backend == "serial" else self.runner.parallel.workers

    def start(self) -> None:
        if self.parallelism > 1:
            self.runner.start()

    def prefetch(self, texts: list[str]) -> None:
        if self.runner.parallel.backend == "serial":
            return
        for text, result, seconds in self.runner.scores(texts):
            if seconds is not None:
                self._ready[text] = (result, seconds)

    def __call__(self, query: Query, text: str | None) -> Reply:
        if text in self._ready:
            result, seconds = self._ready.pop(text)
        else:
            ((_, result, seconds),) = self.runner.scores([text])
        if seconds is None:
            seconds = combined_seconds(self.runner.context.recipe.metrics, {k: alone for k, (_, alone) in result.items()})
        return Reply(result[self.main][0], seconds, extras={label: result[label][0] for label in self.extras})


@dataclass
class TableValidator(OracleDefaults):
    """validate(arch) from a tabular benchmark: the ``epochs``-epoch validation accuracy (%) on
    ``dataset`` (NB201 CIFAR-10: the ``cifar10-valid`` protocol), charged the table's training
    time for that many epochs as simulated seconds."""

    table: Benchmark
    dataset: str
    epochs: int = 12
    kind: str = "validate"
    charged: str = "simulated from the benchmark table's recorded training time"

    @property
    def quantity(self) -> str:
        return f"{self.epochs}-epoch validation accuracy (%)"

    def cost(self, text: str) -> float:
        """The simulated seconds a validation of ``text`` will be charged (known in advance)."""
        return self.table.train_time(self.table.index_of(text), self.dataset, self.epochs)

    def __call__(self, query: Query, text: str | None) -> Reply:
        index = self.table.index_of(text)
        return Reply(self.table.accuracy(index, self.dataset, "valid", self.epochs), simulated_seconds=self.cost(text))


@dataclass
class TrainValidator(OracleDefaults):
    """validate(arch) by training: ``evaluate.protocol`` for ``validate.epochs`` epochs from
    ``evaluate.seed``; the validation accuracy (%), charged the MEASURED training seconds (in the
    budget's and the history's ``simulated_seconds``, the training time charged). ``checkpoint``:
    where the training in progress is checkpointed (removed when it finishes), so that a resumed
    search continues an interrupted validation.

    A training whose loss becomes NaN or infinite (:class:`~searchkit.train.trainer.TrainingDiverged`)
    answers ``-inf``: the worst value, so no strategy prefers it and the incumbent never takes
    it (:class:`~searchkit.driver.Incumbent`); its epoch goes to the row's ``extras``
    (``diverged_epoch``), a one-line warning says so, and the search goes on."""

    space: SearchSpace
    cfg: RunConfig
    device: torch.device
    splits: DatasetSplits
    checkpoint: Path | None = None
    kind: str = "validate"
    charged: str = "measured: real trainings on this machine"
    measured: ClassVar[bool] = True

    @property
    def quantity(self) -> str:
        return f"{self.cfg.validate.epochs}-epoch validation accuracy (%, trained)"

    def __call__(self, query: Query, text: str | None) -> Reply:
        cfg = dataclasses.replace(self.cfg, evaluate=dataclasses.replace(
            self.cfg.evaluate, method="train", epochs=self.cfg.validate.epochs))
        try:
            evaluation = evaluate_arch(self.space, query.arch, cfg, None, self.device, self.splits, progress=False,
                                       checkpoint=self.checkpoint)
        except TrainingDiverged as diverged:
            warnings.warn(f"the validation training of {text} diverged (mean loss {diverged.loss} in epoch "
                          f"{diverged.epoch}); recorded as diverged (-inf), not as an accuracy", stacklevel=2)
            reply = Reply(-math.inf, simulated_seconds=diverged.seconds, extras={DIVERGED: float(diverged.epoch)})
        else:
            reply = Reply(float(evaluation.valid_accuracy), simulated_seconds=float(evaluation.details["seconds"]))
        if self.checkpoint is not None:
            self.checkpoint.unlink(missing_ok=True)
        return reply


@dataclass
class OneShotOracle(OracleDefaults):
    """Runs a one-shot query's search in ``context``; charged its wall seconds as training-free work."""

    context: SearchContext
    space: SearchSpace
    kind: str = "oneshot"

    @property
    def quantity(self) -> str:
        return f"one-shot objective ({self.context.metric.name})"

    def __call__(self, query: Query, text: str | None) -> Reply:
        assert isinstance(query, OneShot)
        start = time.perf_counter()
        arch, value = query.search(self.context)
        return Reply(float(value), time.perf_counter() - start, arch=self.space.encode(arch))


def open_validator(cfg: RunConfig, space: SearchSpace, table: Benchmark | None, device: torch.device,
                   splits: DatasetSplits, checkpoint: Path | None = None) -> Any:
    """The run's validate oracle (``validate.method``; see :class:`searchkit.config.ValidateConfig`);
    ``checkpoint``: a training validator's checkpoint file. With ``data.target`` it is the table's
    validator of that dataset (we train only on ``data.name``'s images)."""
    method = cfg.validate.method
    if method not in VALIDATE_METHODS:
        raise SearchkitError(f"unknown validate.method {method!r}; choose one of {', '.join(VALIDATE_METHODS)}")
    if method == "table" or (method == "auto" and (cfg.data.target is not None or (
            table is not None and table.dataset_for(cfg.data.name)))):
        return TableValidator(table, table_dataset(cfg, table, "validate.method=table"), cfg.validate.epochs)
    if cfg.data.target is not None:
        raise SearchkitError(f"data.target={cfg.data.target!r} validates from the table; validate.method=train "
                             f"trains on data.name's images ({cfg.data.name!r}): drop data.target or use method table")
    if splits.valid is None:
        raise SearchkitError(
            f"validate.method=train needs a dataset with a validation split; {splits.name!r} has none (an image "
            "folder carves one from train/ unless data.options.valid_fraction=0, or add root/valid/<class>/; "
            "CIFAR-10: use cifar10-valid)")
    return TrainValidator(space, cfg, device, splits, checkpoint)


@dataclass
class CostOracle:
    """``inner`` with the architecture's cost under ``cost_model`` added to every reply's extras
    (:data:`~searchkit.strategies.base.COST`), computed once per architecture and run (the driver
    answers repeats from the run's rows); a measured cost is charged its measuring seconds as
    training-free work (architectures a rejection-sampling
    :class:`~searchkit.spaces.constrained.FeasibleSpace` timed and turned down are the strategy's
    own time: reported as strategy seconds, not budgeted)."""

    inner: Oracle
    cost_model: CostModel

    @property
    def kind(self) -> str:
        return self.inner.kind

    @property
    def quantity(self) -> str:
        return self.inner.quantity

    @property
    def parallelism(self) -> int:
        return getattr(self.inner, "parallelism", 1)

    @property
    def measured(self) -> bool:
        return getattr(self.inner, "measured", False)

    def cost(self, text: str) -> float | None:
        return self.inner.cost(text)

    def prefetch(self, texts: list[str]) -> None:
        self.inner.prefetch(texts)

    def start(self) -> None:
        getattr(self.inner, "start", lambda: None)()

    def __call__(self, query: Query, text: str | None) -> Reply:
        value = None if text is None else float(self.cost_model.cost(text))  # a missing cost fails before the query
        reply = self.inner(query, text)
        arch = reply.arch if reply.arch is not None else text
        if value is None:
            value = float(self.cost_model.cost(arch))
        charge = getattr(self.cost_model, "charge", None)
        seconds = reply.seconds + (0.0 if charge is None else float(charge(arch)))
        return dataclasses.replace(reply, seconds=seconds, extras={**reply.extras, COST: value})
