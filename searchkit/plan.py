"""The plan of a search, made before any work: what it will do and what that costs on this machine.

:func:`measure` times the run's two units of work here, on the run's device: scoring a first cell
(every metric of the run, on its scoring batch; a cell sampled from a generator of its own, so
the strategy's stream is untouched; scored twice, the faster time kept, since the first call
pays one-time costs) and a training step of that cell under the evaluation
protocol (two steps on one batch of the protocol's training batch size; the second is timed, the
first pays one-time allocations). From them (:class:`Costs`):

* a validation = ``validate.epochs`` x steps per epoch (:func:`~searchkit.train.trainer.plan_batches`)
  x the step, plus evaluating the valid and test splits (forward-only batches, costed a third of
  a training step each: the forward pass of forward + backward);
* the final training likewise with the evaluation protocol's epochs; it runs after the search and
  is outside the wall budget.

Data loading and augmentation are not in the step (the batch is assembled before timing), so a
dataset decoded on demand trains slower than planned.

:class:`Plan` is the one block printed before the search (:meth:`Plan.describe`): cells to score,
validations to train, the final training, each with its estimated seconds, and one-line warnings
(:meth:`Plan.warnings`) when it does not fit ``budget.wall_seconds``, naming the option that
fixes it. Under a wall budget the strategy sizes the options the user left unset from these costs
(:meth:`~searchkit.strategies.base.Strategy.budget_options`; HNAS's pool and growth, the warm-up
screen, NASI's time limit), and the driver uses them as its first estimate of a query's cost.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from searchkit.config import RunConfig
from searchkit.evaluation import evaluation_protocol, will_train
from searchkit.oracles import TrainValidator
from searchkit.runtime import build_network
from searchkit.scoring import ScoringContext
from searchkit.spaces.base import SearchSpace
from searchkit.strategies.base import TimeBudget, Workload
from searchkit.text import plural
from searchkit.train.trainer import plan_batches

#: A forward-only evaluation batch costs this share of a training step (forward + backward ~ 3 forwards).
EVAL_SHARE = 1 / 3


class PlanWarning(UserWarning):
    """The plan does not fit the budget (the message names the option that fixes it)."""


@dataclass(frozen=True)
class Training:
    """One training as planned: ``epochs`` x ``steps`` per epoch of ``batch_size``, plus
    ``eval_batches`` forward batches; ``seconds``: its estimated wall time."""

    epochs: int
    steps: int
    batch_size: int
    eval_batches: int
    seconds: float

    def describe(self) -> str:
        return (f"{plural(self.epochs, 'epoch')} x {plural(self.steps, 'step')} of batch {self.batch_size} "
                f"+ {self.eval_batches} evaluation batches: ~{_duration(self.seconds)}")


@dataclass(frozen=True)
class Costs:
    """What :func:`measure` timed: one cell's ``score`` seconds (None: a training-based run scores
    nothing), one training ``step``'s seconds (None: the run trains nothing), the run's scoring
    ``workers``, and ``seconds``: what measuring took (charged to the wall budget)."""

    score: float | None
    step: float | None
    workers: int
    seconds: float


def _duration(seconds: float) -> str:
    """``"42 s"``, ``"12.5 min"``, ``"2.1 h"``."""
    if seconds < 120:
        return f"{seconds:.3g} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def time_training_step(space: SearchSpace, arch, cfg: RunConfig, splits, device: torch.device) -> float:
    """Seconds of one SGD step of ``arch`` under the evaluation protocol at its training batch size
    (the second of two steps on one batch; :func:`~searchkit.train.trainer.train`'s optimiser and loss)."""
    protocol = evaluation_protocol(cfg)
    n_train = len(splits.train) if protocol.max_train is None else min(len(splits.train), protocol.max_train)
    batch = plan_batches(n_train, protocol).batch_size
    rows = np.random.default_rng(0).choice(len(splits.train), size=min(batch, len(splits.train)), replace=False)
    items = [splits.train[int(i)] for i in rows]
    x = torch.stack([item[0] for item in items]).float().to(device)
    y = torch.as_tensor([int(item[1]) for item in items]).to(device)
    net = build_network(space, arch, splits, cfg.evaluate.seed, {**cfg.space.build, **protocol.network}).to(device)
    net.train()
    optimizer = torch.optim.SGD(net.parameters(), lr=protocol.lr, momentum=protocol.momentum,
                                nesterov=protocol.nesterov, weight_decay=protocol.weight_decay)
    criterion = nn.CrossEntropyLoss()
    seconds = 0.0
    for _ in range(2):
        start = time.perf_counter()
        out = net(x)
        loss = criterion(out[0] if isinstance(out, tuple) else out, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
    return seconds


def measure(setup, workers: int = 1) -> Costs:
    """Time a first cell's scoring and a training step of it for the search ``setup`` describes
    (:class:`~searchkit.engine.SearchSetup`); ``workers``: the run's scoring workers. A cell's score
    costs its draws (``scoring.draws``) times draw 0's measured seconds."""
    start = time.perf_counter()
    space, cfg = setup.space, setup.cfg
    arch = space.sample(np.random.default_rng([cfg.seed, 1]))
    score = None
    if not setup.train_based:  # scored twice: the first call pays one-time costs (lazy imports, allocator)
        context = ScoringContext(setup.recipe, space, setup.splits, [setup.batch], setup.device)
        score = min(context.score(space.encode(arch))[1] for _ in range(2)) * setup.recipe.draws  # every draw
    trains = isinstance(setup.validator, TrainValidator) or will_train(cfg, setup.table)
    step = time_training_step(space, arch, cfg, setup.splits, setup.device) if trains else None
    return Costs(score, step, workers, time.perf_counter() - start)


def planned_training(cfg: RunConfig, splits, step: float, epochs: int) -> Training:
    """An ``epochs``-epoch training under the evaluation protocol, from a measured ``step``."""
    protocol = evaluation_protocol(cfg)
    n_train = len(splits.train) if protocol.max_train is None else min(len(splits.train), protocol.max_train)
    batches = plan_batches(n_train, protocol)
    sizes = [len(splits.test)] + ([] if splits.valid is None else [len(splits.valid)])
    eval_batches = sum(math.ceil(n / protocol.batch_size) for n in sizes)
    seconds = epochs * batches.steps_per_epoch * step + EVAL_SHARE * step * sum(sizes) / batches.batch_size
    return Training(epochs, batches.steps_per_epoch, batches.batch_size, eval_batches, seconds)


@dataclass
class Plan:
    """What the search will do and cost (see the module docstring). ``workload``: the strategy's
    (sized) cells and validations; ``validation``/``final``: the planned trainings (None: a table
    answers, or nothing is trained); ``table_validations``: a table answers validations."""

    strategy: str
    wall_budget: float | None
    archs_budget: int | None
    costs: Costs
    workload: Workload
    validation: Training | None
    final: Training | None
    table_validations: bool
    final_method: str
    sized: dict

    @classmethod
    def make(cls, setup, costs: Costs, sized: dict | None = None) -> "Plan":
        cfg = setup.cfg
        trained = isinstance(setup.validator, TrainValidator)
        validation = planned_training(cfg, setup.splits, costs.step, cfg.validate.epochs) if trained else None
        final = None
        if will_train(cfg, setup.table) and costs.step is not None:
            final = planned_training(cfg, setup.splits, costs.step, evaluation_protocol(cfg).epochs)
        method = "train" if final is not None else ("none" if cfg.evaluate.method == "none" else "table")
        workload = setup.strategy.workload()
        if workload == Workload() and not setup.needs.validation and cfg.budget.archs is not None:
            # an open-ended strategy under a query budget: that many queries of its one kind
            many = {"scores": cfg.budget.archs} if not setup.train_based else {"validations": cfg.budget.archs}
            workload = dataclasses.replace(workload, **({"scores": 0} | many))
        return cls(setup.strategy.name, cfg.budget.wall_seconds, cfg.budget.archs, costs, workload, validation, final,
                   setup.validator is not None and not trained, method, dict(sized or {}))

    @property
    def score_seconds(self) -> float | None:
        """Wall seconds per cell scored, the workers' parallelism included."""
        return None if self.costs.score is None else self.costs.score / self.costs.workers

    def time_budget(self) -> TimeBudget | None:
        """The wall budget left after measuring, as a strategy sizes itself by it (None: no wall budget)."""
        if self.wall_budget is None:
            return None
        return TimeBudget(max(self.wall_budget - self.costs.seconds, 0.0), self.score_seconds or 0.0,
                          None if self.validation is None else self.validation.seconds)

    def expected(self) -> dict[str, float]:
        """The driver's first estimate of one query's wall seconds, by query kind."""
        validation = 0.0 if self.validation is None else self.validation.seconds
        score = validation if self.costs.score is None else self.score_seconds
        return {"score": score, "validate": validation}

    def search_seconds(self) -> float | None:
        """The estimated wall seconds of the whole search (None: open-ended, or a one-shot search)."""
        cells, validations = self.workload.scores, self.workload.validations
        if self.workload.oneshot:
            limit = self.sized.get("seconds")
            return None if limit is None else self.costs.seconds + limit
        if cells is None or (validations is None and self.validation is not None):
            return None
        per_validation = 0.0 if self.validation is None else self.validation.seconds
        return self.costs.seconds + cells * (self.score_seconds or 0.0) + (validations or 0) * per_validation

    @property
    def budget_bound(self) -> bool:
        """The budget sized the strategy and ends it before its caps (e.g. HNAS's K): its counts
        are maxima, and the search runs until the budget ends."""
        search = self.search_seconds()
        return bool(self.sized) and self.wall_budget is not None and search is not None and search > self.wall_budget

    def describe(self) -> str:
        """The plan block: one line per kind of work, then the total."""
        lines = [f"plan ({self.strategy}; measured on this machine in {_duration(self.costs.seconds)}):"]
        most = "up to " if self.budget_bound else ""
        if self.costs.score is not None and self.workload.scores != 0:
            cells = self.workload.scores
            count = "cells until the budget ends" if cells is None else most + plural(cells, "cell")
            total = "" if cells is None else f": ~{_duration(cells * self.score_seconds)}"
            workers = f" / {self.costs.workers} workers" if self.costs.workers > 1 else ""
            lines.append(f"  score     {count}, {self.costs.score:.3g} s each{workers} (first cell){total}")
        if self.workload.oneshot:
            limit = self.sized.get("seconds")
            lines.append("  one-shot  one supernet search" + ("" if limit is None else f", limited to {_duration(limit)}"))
        if self.validation is not None:
            count = self.workload.validations
            what = "validations until the budget ends" if count is None else most + plural(count, "validation")
            total = "" if count is None else f"; ~{_duration(count * self.validation.seconds)} in all"
            lines.append(f"  validate  {what}, each {self.validation.describe()} "
                         f"(first step {self.costs.step:.3g} s){total}")
        elif self.table_validations:
            lines.append("  validate  from the benchmark table (simulated training time, no wall time)")
        search = None if self.budget_bound else self.search_seconds()
        budget = "no wall budget" if self.wall_budget is None else f"budget.wall_seconds={self.wall_budget:g}"
        lines.append(f"  search    {'~' + _duration(search) if search is not None else 'until the budget ends'} "
                     f"({budget})")
        final = ("table lookup" if self.final_method == "table" else "none" if self.final_method == "none"
                 else self.final.describe())
        lines.append(f"  final     {final} (after the search, outside the budget)")
        if self.sized:
            lines.append("  sized from the budget: " + ", ".join(f"strategy.options.{k}={v:g}" if isinstance(v, float)
                                                                 else f"strategy.options.{k}={v}"
                                                                 for k, v in self.sized.items()))
        return "\n".join(lines)

    def warnings(self) -> list[str]:
        """One line per way the plan does not fit ``budget.wall_seconds`` or ``budget.archs``, with
        the option that fixes it."""
        found = []
        queries = (self.workload.scores or 0) + (self.workload.validations or 0)
        if self.archs_budget is not None and None not in (self.workload.scores, self.workload.validations) \
                and queries > self.archs_budget:
            found.append(f"the plan asks for {queries} queries, more than budget.archs={self.archs_budget} (the "
                         f"search stops there); set budget.archs={queries}, or budget.wall_seconds to the time you "
                         f"have, with the strategy's size options unset, to size them to it")
        if self.wall_budget is None:
            return found
        left = self.wall_budget - self.costs.seconds
        if left <= 0:
            found.append(f"measuring the plan took {_duration(self.costs.seconds)}, all of budget.wall_seconds="
                         f"{self.wall_budget:g}: the search scores one cell and stops; set budget.wall_seconds="
                         f"{math.ceil(10 * self.costs.seconds)}")
        screen = self.workload.scores_first * (self.score_seconds or 0.0)  # scored before the first validation
        if self.validation is not None and self.validation.seconds > left - screen:
            after = max(left - screen, 0.0)
            epochs = max(1, int(self.validation.epochs * after / self.validation.seconds))
            scored = f" and scoring the first {self.workload.scores_first} cells" if screen else ""
            found.append(f"one validation takes ~{_duration(self.validation.seconds)}, more than the "
                         f"{_duration(after)} left in budget.wall_seconds={self.wall_budget:g} after measuring the plan"
                         f"{scored}, so none will run; set validate.epochs={epochs} or budget.wall_seconds="
                         f"{math.ceil(self.costs.seconds + screen + 1.2 * self.validation.seconds)}")
        search = self.search_seconds()
        if search is not None and search > 1.1 * self.wall_budget and not self.budget_bound:
            found.append(f"the plan needs ~{_duration(search)}, more than budget.wall_seconds={self.wall_budget:g} "
                         f"(the search stops when it runs out); set budget.wall_seconds={math.ceil(search)}, or "
                         f"leave the strategy's size options unset to size them from the budget")
        return found

    def to_dict(self) -> dict:
        return {**asdict(self), "search_seconds": self.search_seconds(), "warnings": self.warnings()}
