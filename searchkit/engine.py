"""One search run end to end: config -> validated inputs -> driver -> evaluation -> run directory.

``run_search(config)`` is the Python API the ``searchkit search`` command wraps. It works in
three steps, so that bad input fails before anything is computed or written:

1. :func:`prepare` builds and checks every input (:class:`SearchSetup`): the config, the space,
   what the strategy needs (:class:`~searchkit.strategies.base.Needs`, from its class and options),
   the metrics, the dataset and its scoring batch (checked against every metric), the hardware cost
   model and constraint (:mod:`searchkit.budget`: the space is restricted to the budget before the
   strategy is built, once; an infeasible budget is refused here), the tabular benchmark and the
   validation oracle.
2. The run directory is created (a used one is refused unless resumed or overwritten) and the
   strategy is driven by :class:`~searchkit.driver.Driver` against the oracles of
   :mod:`searchkit.oracles`, every answered query streamed to ``history.csv``.
3. The driver's incumbent is evaluated (table lookup or training) and ``best.json`` written (with
   its hardware cost, checked against the constraint); a multi-objective run also writes its
   front (``front.csv``, ``front.png``: :mod:`searchkit.front`).
"""
from __future__ import annotations

import dataclasses
import json
import time
import warnings
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from searchkit.budget import RunHardware, open_hardware, parse_constraint
from searchkit.config import VALIDATION, RunConfig, config_from_dict, load_config
from searchkit.data.base import Batch, DatasetSplits
from searchkit.defaults import resolve_strategy
from searchkit.driver import Driver, Oracle, SearchLog
from searchkit.errors import SearchkitError
from searchkit.evaluation import Evaluation, evaluate_arch, open_benchmark, table_dataset, target_dataset, will_train
from searchkit.front import write_front
from searchkit.metrics.base import Metric, parse_metric
from searchkit.oracles import DIVERGED, CostOracle, OneShotOracle, ScoreOracle, TrainValidator, open_validator
from searchkit.plan import Plan, PlanWarning, measure
from searchkit.rundir import TRAIN_CHECKPOINT, VALIDATE_CHECKPOINT, HistoryRow, RunDir
from searchkit.runtime import resolve_device
from searchkit.scoring import ScoreRunner, ScoringRecipe
from searchkit.spaces import search_space
from searchkit.spaces.base import Benchmark, SearchSpace
from searchkit.store import ScoreStore
from searchkit.strategies import get_strategy, strategy_needs
from searchkit.strategies.base import Needs, SearchContext, Strategy
from searchkit.train.trainer import TrainingDiverged, read_checkpoint
from searchkit.workers import Parallel

def metric_label(name: str, options: dict) -> str:
    """The spec of a metric given as ``name`` (itself possibly a spec) plus ``options``: its label."""
    return name + "".join(f":{key}={json.dumps(value)}" for key, value in sorted(options.items()))


@dataclass
class SearchResult:
    """What a search returns: the selected architecture, the value it was selected by and its
    final evaluation.

    ``score`` is that value and ``quantity`` says what it is: the training-free score
    (``selected_by="score"``, e.g. ``kcc``) or a validation accuracy in % (hybrid and
    training-based searches). Costs: ``search_seconds`` is the measured wall time of the
    training-free work, ``simulated_seconds`` the training time charged for validations (from the
    table, or measured by real trainings), ``strategy_seconds`` the strategy's own bookkeeping
    (e.g. fitting a GP), reported but not budgeted; ``training_charged`` says how the training
    seconds were charged (simulated from a table, or measured; None without validations);
    ``validation_split``: where a training validator's validation images came from;
    ``hardware``: the selected architecture's cost on the run's device and the constraint it meets
    (:meth:`searchkit.budget.RunHardware.describe`; None for a run without a cost model).
    ``elapsed_seconds``: the search's elapsed wall time as ``budget.wall_seconds`` counts it (the
    plan's measurements, scoring, validation training, the strategy's work; final training excluded).
    ``model``: the files of the trained selection (``model.pt``, ``model.json``; None: not trained).
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
    quantity: str = ""
    training_charged: str | None = None
    validation_split: str | None = None
    hardware: dict | None = None
    elapsed_seconds: float = 0.0
    model: dict | None = None

    def to_dict(self) -> dict:
        return {
            "arch": self.arch, "index": self.index, "metric": self.metric, "score": self.score,
            "quantity": self.quantity, "selected_by": self.selected_by,
            "final": None if self.evaluation is None else self.evaluation.to_dict(),
            "search_cost": {"archs_scored": self.archs_scored, "validations": self.validations,
                            "unique_archs": self.unique_archs,
                            "wall_seconds": round(self.search_seconds, 3),
                            "simulated_seconds": round(self.simulated_seconds, 3),
                            "training_charged": self.training_charged,
                            "validation_split": self.validation_split,
                            "strategy_seconds": round(self.strategy_seconds, 3),
                            "elapsed_seconds": round(self.elapsed_seconds, 3)},
            "hardware": self.hardware,
            "model": self.model,
            "out": str(self.out),
        }


@dataclass
class SearchSetup:
    """A run's inputs, built and checked by :func:`prepare` before anything is written.

    ``metrics``: label -> metric the score oracle computes (the run's own under ``main``, the
    strategy's extra metrics under their specs; empty for a training-based run). ``hardware``:
    the cost model and constraint (None without); ``space`` is then the constrained space.
    ``needs``: what the strategy needs (:func:`~searchkit.strategies.base.strategy_needs`).
    """

    cfg: RunConfig
    space: SearchSpace
    strategy: Strategy
    needs: Needs
    device: torch.device
    recipe: ScoringRecipe
    splits: DatasetSplits
    batch: Batch
    table: Benchmark | None
    main: str | None
    metrics: dict[str, Metric]
    validator: Any
    hardware: RunHardware | None = None

    @property
    def train_based(self) -> bool:
        return self.main is None

    def resized(self, options: dict[str, Any]) -> "SearchSetup":
        """This setup with ``options`` merged into the strategy's (the config records them)."""
        if not options:
            return self
        strategy_cfg = dataclasses.replace(self.cfg.strategy, options={**self.cfg.strategy.options, **options})
        cfg = dataclasses.replace(self.cfg, strategy=strategy_cfg)
        strategy = get_strategy(cfg.strategy.name, self.space, np.random.default_rng(cfg.seed), **strategy_cfg.options)
        return dataclasses.replace(self, cfg=cfg, strategy=strategy, needs=strategy_needs(cfg.strategy.name,
                                                                                           strategy_cfg.options))

    def oracles(self, closing: ExitStack, store: ScoreStore | None, run: RunDir, parallel: Parallel) -> dict[str, Oracle]:
        """Query kind -> oracle; the score store and the workers are closed by ``closing``."""
        oracles: dict[str, Oracle] = {}
        if self.validator is not None:
            oracles["validate"] = self.validator
        if self.train_based:
            oracles["score"] = self.validator
            return self.costed(oracles)
        if self.needs.gradient:
            context = SearchContext(self.splits, self.batch, self.device, self.metrics[self.main], dict(self.cfg.space.build))
            oracles["oneshot"] = OneShotOracle(context, self.space)
        if store is None:
            store = closing.enter_context(ScoreStore(self.cfg.store or run.path / "scores.db"))
        runner = closing.enter_context(ScoreRunner(self.recipe.open(self.space), store, parallel))
        oracles["score"] = ScoreOracle(runner, self.main, self.needs.extra_metrics)
        return self.costed(oracles)

    def costed(self, oracles: dict[str, Oracle]) -> dict[str, Oracle]:
        """Every oracle's answers with the architecture's hardware cost, when the run has a cost model."""
        if self.hardware is None:
            return oracles
        return {kind: CostOracle(oracle, self.hardware.cost) for kind, oracle in oracles.items()}


def check_budget(cfg: RunConfig) -> None:
    """SearchkitError for an unlimited or non-positive budget."""
    budget = cfg.budget
    limits = {"archs": budget.archs, "seconds": budget.seconds, "simulated_seconds": budget.simulated_seconds,
              "wall_seconds": budget.wall_seconds}
    if all(value is None for value in limits.values()):
        raise SearchkitError("the budget is unlimited; set budget.wall_seconds, budget.archs, budget.seconds and/or "
                             "budget.simulated_seconds")
    for key, value in limits.items():
        if value is not None and not value > 0:
            raise SearchkitError(f"budget.{key} must be positive (or null for no limit of that kind), got {value}")


def prepare(cfg: RunConfig, space: SearchSpace | None = None, run_path: Path | None = None) -> SearchSetup:
    """Every input of the search ``cfg`` describes, built and checked (SearchkitError on bad input).

    ``space``: a search space object to use instead of ``cfg.space.name``'s (e.g. the benchmark's
    pool); ``run_path``: where a training validator checkpoints.
    """
    cfg = resolve_strategy(cfg, lambda: open_benchmark(cfg, space if space is not None else
                                                        search_space(cfg.space.name, cfg.space.options)))
    check_budget(cfg)
    constraint = parse_constraint(cfg)
    device = resolve_device(cfg.device)
    space = space if space is not None else search_space(cfg.space.name, cfg.space.options)
    needs = strategy_needs(cfg.strategy.name, cfg.strategy.options)
    train_based = cfg.metric.name == VALIDATION
    if train_based and needs.training_free:
        raise SearchkitError(f"strategy {cfg.strategy.name!r} needs a training-free metric, not metric.name={VALIDATION}")
    metrics: dict[str, Metric] = {}
    main = None
    if not train_based:
        main = metric_label(cfg.metric.name, cfg.metric.options)
        metrics[main] = parse_metric(cfg.metric.name, cfg.metric.options)
        if needs.gradient:
            metrics[main].require_gradient()
        metrics.update((spec, parse_metric(spec)) for spec in needs.extra_metrics if spec not in metrics)
    recipe = ScoringRecipe.from_config(cfg, metrics, device)
    context = recipe.open(space)
    hardware = open_hardware(cfg, constraint, space, needs, context.splits)
    if hardware is not None:  # the strategy searches the constrained space (an infeasible budget fails here)
        space = hardware.constrain(space, cfg.seed)
    strategy = get_strategy(cfg.strategy.name, space, np.random.default_rng(cfg.seed), **cfg.strategy.options)
    table = open_benchmark(cfg, space)
    if cfg.data.target is not None:  # a dataset we hold no images of: every answer comes from its table
        table_dataset(cfg, table, f"data.target={cfg.data.target!r}")
        if will_train(cfg, table):
            raise SearchkitError(f"data.target={cfg.data.target!r} is evaluated from the table; evaluate.method="
                                 f"{cfg.evaluate.method} would train on {cfg.data.name!r}: use evaluate.method table")
    validator = None
    if train_based or needs.validation:
        checkpoint = None if run_path is None else run_path / VALIDATE_CHECKPOINT
        validator = open_validator(cfg, space, table, device, context.splits, checkpoint)
    return SearchSetup(cfg, space, strategy, needs, device, context.recipe, context.splits, context.batch, table, main,
                       metrics, validator, hardware)


def _resolve_config(config: RunConfig | dict | str | Path | None, overrides: list[str] | tuple[str, ...]) -> RunConfig:
    if isinstance(config, RunConfig):
        return config
    if isinstance(config, dict):
        return config_from_dict(config)
    return load_config(config, overrides)


def check_checkpoints(run: RunDir, replay: list[HistoryRow]) -> None:
    """Before a resumed run does anything: its training checkpoints must be readable
    (SearchkitError naming the file otherwise), and a validation checkpoint older than the
    history (its validation already has a row, e.g. a directory restored from a backup) is
    removed with a warning, so the next validation does not mistake it for its own."""
    for name in (TRAIN_CHECKPOINT, VALIDATE_CHECKPOINT):
        if (run.path / name).exists():
            state = read_checkpoint(run.path / name)
            arch = state["run"].get("identity", {}).get("arch")
            if name == VALIDATE_CHECKPOINT and any(r.kind == "validate" and r.arch == arch for r in replay):
                (run.path / name).unlink()
                warnings.warn(f"{run.path / name} was older than the history (its validation of {arch} is recorded "
                              "there); removed", stacklevel=2)


def run_search(
    config: RunConfig | dict | str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    out: str | Path | None = None,
    resume: str | Path | None = None,
    progress: bool = True,
    space: SearchSpace | None = None,
    store: ScoreStore | None = None,
    parallel: Parallel = Parallel(),
    overwrite: bool = False,
    on_plan: Callable[[Plan], None] | None = None,
) -> SearchResult:
    """Search, evaluate the selected architecture and write the run directory.

    ``config``: a RunConfig, a nested dict, or a YAML path (None: the defaults). ``out``: the
    run directory (None: ``runs/<time>-<name>/``); one that holds a run is refused unless
    ``overwrite``. ``resume``: an earlier run's directory; its config is reused and its history
    replayed without re-querying any oracle (strategies are deterministic given their seed and
    answers), so the result equals an uninterrupted run's; an interrupted final training
    continues from the run directory's checkpoint (``train.ckpt``). ``space``: a search space
    object to use instead of ``cfg.space.name``'s (e.g. the benchmark's pool). ``store``: an open
    score store (None: ``cfg.store``, else the run directory's ``scores.db``). ``parallel``: how
    the architectures of one ask are scored (workers need a registered space name).

    A run with a wall budget (``budget.wall_seconds``) or a training (trained validations or final
    training) is planned first (:mod:`searchkit.plan`): its costs measured, a fresh run's unset
    strategy options sized from the wall budget, the plan handed to ``on_plan`` (the CLI prints it)
    and written to ``plan.json``, and a :class:`~searchkit.plan.PlanWarning` issued for every way it
    does not fit the budget. A trained selection is written as ``model.pt`` and ``model.json``
    (:mod:`searchkit.export`).
    """
    if resume is not None:
        run = RunDir.existing(resume)
        cfg = config_from_dict(run.read_config())
        replay = run.read_history()
        run.check_results()
        check_checkpoints(run, replay)
    else:
        cfg = _resolve_config(config, overrides)
        run = RunDir.fresh(out, overwrite) if out is not None else RunDir.new(cfg.name)
        replay = []
    setup = prepare(cfg, space, run.path)
    plan = None
    if cfg.budget.wall_seconds is not None or isinstance(setup.validator, TrainValidator) \
            or will_train(cfg, setup.table):
        setup, plan = make_plan(setup, parallel, fresh=resume is None)
        if on_plan is not None:
            on_plan(plan)
        for line in plan.warnings():
            warnings.warn(line, PlanWarning, stacklevel=2)
    cfg = setup.cfg  # strategy auto resolved, options sized by the plan
    if resume is None:
        run.start()
    run.write_config(cfg.to_dict())
    if plan is not None:
        run.write_json("plan.json", plan.to_dict())

    writer = run.history_writer(replay)
    with ExitStack() as closing:
        closing.callback(writer.close)
        oracles = setup.oracles(closing, store, run, parallel)
        started = time.perf_counter()
        if cfg.budget.wall_seconds is not None:  # workers start inside the budget, not inside its first chunk
            getattr(oracles.get("score"), "start", lambda: None)()
        started = time.perf_counter() - started
        finished = _finished_elapsed(run) if resume is not None else None
        table = setup.table
        log = Driver(setup.strategy, setup.space, oracles, cfg.budget, replay, writer.append,
                     (lambda text: table.index_of(text)) if table is not None else (lambda text: None),
                     progress, expected=None if plan is None else plan.expected(),
                     spent_before=started + (0.0 if plan is None else plan.costs.seconds) + (finished or 0.0),
                     charge_replay=finished is None).run()
    return finish(setup, log, run, progress)


def _finished_elapsed(run: RunDir) -> float | None:
    """A finished run's recorded elapsed search time (best.json), or None (interrupted, older, or a
    damaged best.json, which :meth:`RunDir.check_results` has warned about)."""
    best = run.path / "best.json"
    try:
        return json.loads(best.read_text()).get("search_cost", {}).get("elapsed_seconds")
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def make_plan(setup: SearchSetup, parallel: Parallel, fresh: bool) -> tuple[SearchSetup, Plan]:
    """Measure the run's costs and plan it; a ``fresh`` run under a wall budget gets the strategy
    options the user left unset sized from it (a resumed run's config holds them already)."""
    costs = measure(setup, parallel.workers if parallel.backend != "serial" else 1)
    plan = Plan.make(setup, costs)
    budget = plan.time_budget()
    if fresh and budget is not None:
        sized = setup.strategy.budget_options(budget, frozenset(setup.cfg.strategy.options))
        setup = setup.resized(sized)
        plan = Plan.make(setup, costs, sized)
    return setup, plan


def finish(setup: SearchSetup, log: SearchLog, run: RunDir, progress: bool) -> SearchResult:
    """Evaluate the incumbent of a driven search and write ``best.json``."""
    incumbent = log.incumbent
    if incumbent.arch is None:
        diverged = sum(DIVERGED in row.extras for row in log.history)
        if diverged:
            raise SearchkitError(f"every validation training diverged ({diverged}); lower the learning rate or clip "
                                 "gradients, e.g. evaluate.overrides={lr: 0.01, grad_clip: 5}")
        raise SearchkitError("the budget ran out before the strategy selected an architecture; raise the budget")
    cfg, table = setup.cfg, setup.table
    arch = setup.space.decode(incumbent.arch)
    try:
        evaluation, final = evaluate_arch(setup.space, arch, cfg, table, setup.device, setup.splits, progress,
                                          checkpoint=run.path / TRAIN_CHECKPOINT, model_dir=run.path), None
    except TrainingDiverged as diverged:  # best.json records the selection and the divergence, no accuracy
        evaluation, final = None, diverged
    result = SearchResult(
        arch=incumbent.arch, index=table.index_of(incumbent.arch) if table else None, score=float(incumbent.value),
        metric=cfg.metric.name, evaluation=evaluation, archs_scored=log.count("score"), unique_archs=log.unique_archs,
        search_seconds=log.seconds, elapsed_seconds=log.wall_seconds, out=run.path, history=log.history, validations=log.count("validate"),
        simulated_seconds=log.simulated_seconds, strategy_seconds=log.strategy_seconds,
        selected_by=incumbent.selected_by, quantity=incumbent.quantity,
        training_charged=getattr(setup.validator, "charged", None) if log.count("validate") else None,
        validation_split=setup.splits.describe_valid() if isinstance(setup.validator, TrainValidator) else None,
        hardware=None if setup.hardware is None else setup.hardware.describe(incumbent.arch),
        model=None if evaluation is None else evaluation.details.get("model"),
    )
    if setup.needs.cost:
        write_front(run.path, log.history, setup.space, setup.hardware.cost, table, target_dataset(cfg))
    run.write_json("best.json", {**result.to_dict(), **({"final": final.record()} if final else {})})
    if final is not None:
        raise SearchkitError(f"the final training of the selected architecture ({incumbent.arch}) diverged; "
                             f"{run.path / 'best.json'} records the search without an accuracy. {final}")
    if evaluation is not None:
        evaluation.write_plots(run.path)
    return result
