"""The hardware-aware benchmark: ``searchkit benchmark`` with a ``benchmark.hardware`` section.

It shares the plain benchmark's pool, score store and resumable runner
(:func:`searchkit.study.benchmark.score_pool`, :class:`~searchkit.study.runs.Study`) and adds two
kinds of rows (``configs/bench-hardware.yaml``):

* **Constrained** (``budgets``): every strategy that needs no cost, with each of its metrics and
  seeds, under each budget (a ``constraint:`` in the run's config, so the run searches the pool
  restricted to the budget, :mod:`searchkit.budget`). A run is scored by its selected
  cell's test accuracy against the best feasible cell's over the whole space (the gap,
  in points; the issue's target: <= 0.5 at <= 1,000 simulated seconds).
* **Multi-objective** (``devices``): every strategy that needs a cost (``Needs.cost``, e.g.
  ``nsga2``) once per device, without a budget. A run is scored by the hypervolume of its found
  front (:func:`searchkit.front.found_front`) at the cells' test accuracy, relative to
  the true front of all cells (:class:`Truth`), under two reference points (:meth:`Truth.references`).

Both kinds run over the plain benchmark's dataset axis (``benchmark.datasets``, an entry's own
``datasets``, a budget's own ``datasets``): a search for a dataset (its ``data.target``) validates
on that dataset's 12-epoch column, its cost is HW-NAS-Bench's for that dataset's inputs, and it is
judged on that dataset's 200-epoch test column and cost table (:class:`Truth` per dataset and
device); training-free scores stay the scoring batch's (CIFAR-10 images).

Outputs: ``runs.csv`` (:data:`FIELDS`, a row appended after every run), ``summary.md``,
``anytime_gap.png``, ``hypervolume.png``, ``fronts.png`` (:mod:`searchkit.study.hardware_report`),
rewritten at most every :data:`REPORT_EVERY` seconds of a benchmark and at its end (the reports
read every run's curve and front, so rewriting them after each of ~1,000 short runs would cost more than
the runs).
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from searchkit.config import RunConfig, build_section
from searchkit.errors import SearchkitError
from searchkit.evaluation import target_dataset
from searchkit.front import found_front
from searchkit.hardware.constraint import Constraint
from searchkit.hardware.cost_models import EnumerableCost
from searchkit.pareto import hypervolume, reference_point
from searchkit.spaces.base import Benchmark, SearchSpace
from searchkit.spaces.pool import PoolSpace
from searchkit.store import ScoreStore
from searchkit.study.benchmark_config import VALIDATION, BenchmarkConfig, StrategyEntry, needs, run_config
from searchkit.study.curves import front_pairs
from searchkit.study.runs import REPORT_EVERY, PlannedRun, Study, dirname

FIELDS = ("target", "dataset", "device", "quantity", "limit", "strategy", "metric", "seed", "arch", "index", "selected_by",
          "cost", "test", "best_feasible", "gap", "hv", "hv_median_floor", "front_size", "wall_seconds",
          "simulated_seconds", "validations", "archs_scored", "run")


@dataclass
class HardwareRows:
    """The ``benchmark.hardware`` section. ``budgets``: the constrained rows, each a constraint with a
    ``label``, e.g. ``{label: pixel3-tight, device: pixel3, latency_ms: 3.3}``; ``devices``: the
    multi-objective rows' devices (cost ``quantity``); a budget may name its own ``datasets``
    (e.g. HELP's budgets, CIFAR-100 only; default: the benchmark's) and published results under it
    (``published: {HELP: 71.8}``, test accuracy %, shown beside ours); ``margin``: the hypervolume reference
    point's distance beyond the true front's nadir, as a fraction of the front's range
    (:func:`searchkit.pareto.reference_point`)."""

    budgets: list = field(default_factory=list)
    devices: list = field(default_factory=list)
    quantity: str = "latency"
    margin: float = 0.1


@dataclass(frozen=True)
class Target:
    """A group of rows: a budget (``constraint``) or a multi-objective ``device`` (constraint None),
    searched for ``dataset`` (a name of searchkit's, e.g. cifar100: the runs' ``data.target``);
    ``published``: (method, its published test accuracy %) under the same budget, reported beside ours."""

    label: str
    device: str
    quantity: str
    constraint: Constraint | None = None
    dataset: str = "cifar10"
    published: tuple[tuple[str, float], ...] = ()

    @property
    def limit(self) -> float | None:
        return None if self.constraint is None else self.constraint.limit


@dataclass
class Truth:
    """A device's ground truth over every cell the table has, for one dataset: ``accuracy`` (its
    200-epoch test accuracy, %) and ``cost`` (HW-NAS-Bench's, for its inputs) by benchmark index,
    both (n,), NaN where a cost is missing."""

    dataset: str
    device: str
    quantity: str
    unit: str
    accuracy: np.ndarray
    cost: np.ndarray
    _total: dict = field(default_factory=dict, repr=False)  # reference point -> the true front's hypervolume

    def points(self) -> np.ndarray:
        """(accuracy, cost) of every cell with both, shape (m, 2)."""
        pts = np.c_[self.accuracy, self.cost]
        return pts[np.isfinite(pts).all(1)]

    def best_feasible(self, constraint: Constraint) -> tuple[int, float]:
        """(index, test accuracy) of the most accurate cell that meets ``constraint``."""
        accuracy = np.where(constraint.feasible(self.cost), self.accuracy, -np.inf)
        index = int(np.argmax(accuracy))
        return index, float(accuracy[index])

    def references(self, margin: float) -> dict[str, np.ndarray]:
        """The hypervolume reference points, (accuracy floor, cost ceiling): ``median floor`` = the
        median accuracy over all cells as the floor (only trade-offs better than the typical cell
        count: the honest reference, the one the target is judged on), with the cost ceiling of
        ``nadir`` = the true front's nadir pushed ``margin`` of the front's range away from its
        ideal (the earlier reference, reported beside it; its floor near the worst cell's accuracy
        counts area that any front reaching degenerate cells wins)."""
        pts = self.points()
        nadir = reference_point(pts, margin)
        return {"nadir": nadir, "median floor": np.array([float(np.median(pts[:, 0])), nadir[1]])}

    def relative_hypervolume(self, found: np.ndarray, ref: np.ndarray) -> float:
        """HV(found) / HV(the true front) under ``ref``."""
        key = tuple(np.asarray(ref, dtype=np.float64).tolist())
        if key not in self._total:
            self._total[key] = hypervolume(self.points(), ref)
        return hypervolume(found, ref) / self._total[key]

    def front_points(self, pairs: Sequence[tuple[int, float]]) -> np.ndarray:
        """(test accuracy, cost) of a found front's (index, cost) pairs (:func:`~searchkit.study.curves.front_pairs`),
        shape (k, 2)."""
        return np.array([(self.accuracy[index], cost) for index, cost in pairs], dtype=np.float64).reshape(-1, 2)


@dataclass
class HardwarePlan:
    """The checked hardware section: its targets, the ground truth by (dataset, device) and the margin."""

    targets: list[Target]
    truths: dict[tuple[str, str], Truth]
    margin: float

    def truth(self, target: Target) -> Truth:
        return self.truths[target.dataset, target.device]

    def refs(self, target: Target) -> dict[str, np.ndarray]:
        return self.truth(target).references(self.margin)


def parse_hardware(bench: BenchmarkConfig, space: SearchSpace, base: RunConfig) -> HardwarePlan:
    """The ``benchmark.hardware`` section checked (labels, constraints, devices with a cost table),
    a target per (budget or device, dataset searched for), with every (dataset, device)'s ground
    truth; SearchkitError, one line, on bad input."""
    rows = build_section(HardwareRows, bench.hardware, "benchmark.hardware.")
    table = space.benchmark(base.table)
    default = [target_dataset(base)] if bench.datasets is None else list(bench.datasets)
    targets, labels = [], []
    for i, spec in enumerate(rows.budgets):
        if not isinstance(spec, dict) or not isinstance(spec.get("label"), str):
            raise SearchkitError(f"benchmark.hardware.budgets[{i}] must be a constraint with a label, e.g. "
                                 f"{{label: pixel3-tight, device: pixel3, latency_ms: 3.3}}; got {spec!r}")
        datasets = spec.get("datasets") or default
        if not isinstance(datasets, list):
            raise SearchkitError(f"benchmark.hardware.budgets[{i}].datasets must be a list of datasets, e.g. "
                                 f"[cifar100]; got {datasets!r}")
        published = spec.get("published") or {}
        if not isinstance(published, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                      for v in published.values()):
            raise SearchkitError(f"benchmark.hardware.budgets[{i}].published must map a method to its published test "
                                 f"accuracy (%), e.g. {{HELP: 71.8}}; got {published!r}")
        constraint = Constraint.parse({k: v for k, v in spec.items() if k not in ("label", "datasets", "published")})
        labels.append(spec["label"])
        targets += [Target(spec["label"], constraint.device, constraint.quantity, constraint, str(d),
                           tuple((str(k), float(v)) for k, v in published.items())) for d in datasets]
    for device in rows.devices:
        Constraint.of(str(device), rows.quantity, 1.0)  # checks the device reports the quantity
        labels.append(str(device))
        targets += [Target(str(device), str(device), rows.quantity, dataset=str(d)) for d in default]
    if not targets or len(set(labels)) != len(labels):
        raise SearchkitError(f"benchmark.hardware needs budgets and/or devices with distinct labels; got {labels}")
    if not 0 <= rows.margin:
        raise SearchkitError(f"benchmark.hardware.margin must be >= 0, got {rows.margin}")
    unknown = sorted({t.dataset for t in targets if table.dataset_for(t.dataset) is None})
    if unknown:
        raise SearchkitError(f"benchmark.hardware.budgets: the {table.name} table has no results for "
                             f"{', '.join(map(repr, unknown))}; name its datasets, e.g. cifar10, cifar100, ImageNet16-120")
    truths: dict[tuple[str, str], Truth] = {}
    for target in targets:
        key = target.dataset, target.device
        if key not in truths:
            truths[key] = truth(space, table, target.dataset, target.device, target.quantity, base)
        if target.constraint is not None:  # an infeasible budget: refused before anything is written
            target.constraint.require_achievable(truths[key].cost)
    return HardwarePlan(targets, truths, rows.margin)


def truth(space: SearchSpace, table: Benchmark, dataset: str, device: str, quantity: str, base: RunConfig) -> Truth:
    """The ground truth of ``device`` for ``dataset`` (a name of searchkit's): the table's test
    accuracy and the space's cost table for that dataset's inputs."""
    cost = space.cost_model(device, quantity, dataset, base.hardware.table)
    if not isinstance(cost, EnumerableCost):
        raise SearchkitError(f"the hardware benchmark needs a cost table for {device} (the true front and the best "
                             f"feasible cell are computed over every cell)")
    texts, values = cost.all_costs()
    by_index = np.full(len(table), np.nan)
    by_index[[table.index_of(t) for t in texts]] = values
    return Truth(dataset, device, quantity, cost.unit,
                 np.asarray(table.column(table.dataset_for(dataset), "test", 200), dtype=np.float64), by_index)


def runs(plan: HardwarePlan, bench: BenchmarkConfig, space: SearchSpace) -> Iterator[tuple[Target, StrategyEntry, str, int]]:
    """Every (target, strategy, metric, seed) (seeds from ``first_seed``): strategies that need a
    cost under the devices, the others under the budgets, for the target's dataset (an entry with
    its own ``datasets`` only for those)."""
    costs = {entry.title: needs(entry).cost for entry in bench.entries()}
    for target in plan.targets:
        for entry, metric, seed in bench.runs():
            if costs[entry.title] == (target.constraint is None) and \
                    (entry.datasets is None or target.dataset in entry.datasets):
                yield target, entry, metric, seed


def run_name(base: RunConfig, target: Target, entry: StrategyEntry, metric: str, seed: int) -> str:
    """``<label>__<metric>__<target>__s<seed>``, with ``__<dataset>`` before the seed for a dataset
    other than the config's own (so a benchmark without ``datasets`` keeps its names)."""
    return dirname(entry.title, metric, target.label,
                   *([] if target.dataset == target_dataset(base) else [target.dataset]), f"s{seed}")


def target_config(base: RunConfig, target: Target, entry: StrategyEntry, metric: str, seed: int) -> RunConfig:
    """One run's config: the plain benchmark's for the target's dataset, with the target's
    constraint, or its cost device."""
    config = run_config(base, entry, metric, seed, target.dataset)
    name = f"{entry.title}-{metric}-{target.label}-{target.dataset}-s{seed}"
    if target.constraint is not None:
        return dataclasses.replace(config, name=name, constraint=target.constraint.as_mapping())
    hardware = dataclasses.replace(config.hardware, device=target.device, quantity=target.quantity)
    return dataclasses.replace(config, name=name, hardware=hardware)


def record(plan: HardwarePlan, target: Target, entry: StrategyEntry, metric: str, seed: int, name: str,
           result) -> dict:
    """The runs.csv row of a finished run."""
    truth_ = plan.truth(target)
    test = float(truth_.accuracy[result.index])
    row = {"target": target.label, "dataset": target.dataset, "device": target.device, "quantity": target.quantity,
           "limit": "" if target.limit is None else target.limit, "strategy": entry.title, "metric": metric,
           "seed": seed, "arch": result.arch, "index": result.index, "selected_by": result.selected_by,
           "cost": result.hardware["cost"], "test": test, "best_feasible": "", "gap": "", "hv": "",
           "hv_median_floor": "", "front_size": "", "wall_seconds": f"{result.search_seconds:.3f}",
           "simulated_seconds": f"{result.simulated_seconds:.3f}", "validations": result.validations,
           "archs_scored": result.archs_scored, "run": f"runs/{name}"}
    if target.constraint is not None:
        _, best = truth_.best_feasible(target.constraint)
        row.update(best_feasible=best, gap=f"{best - test:.4f}")
    else:
        front = truth_.front_points(front_pairs(found_front(result.history)))
        refs = plan.refs(target)
        row.update(hv=f"{truth_.relative_hypervolume(front, refs['nadir']):.4f}",
                   hv_median_floor=f"{truth_.relative_hypervolume(front, refs['median floor']):.4f}",
                   front_size=len(front))
    return row


def run_hardware(plan: HardwarePlan, out: Path, base: RunConfig, bench: BenchmarkConfig, pool: PoolSpace,
                 table: Benchmark, db: ScoreStore, notes: list[str], progress: bool) -> None:
    """Run every hardware row not yet in ``out/runs.csv`` and write the reports after each."""
    from searchkit.study.hardware_report import write_hardware_report

    members = np.array([table.index_of(pool.encode(a)) for a in pool.members])
    datasets = list(dict.fromkeys(t.dataset for t in plan.targets))
    notes.append(f"datasets searched for: {', '.join(datasets)} (each with its own 12-epoch validation column, "
                 f"test column and HW-NAS-Bench cost table; training-free scores are {base.data.name} scores)")
    for target in plan.targets:  # a budget no pool member meets: refused before any run
        if target.constraint is not None:
            truth_ = plan.truth(target)
            feasible = target.constraint.require_achievable(truth_.cost[members], f"NB201 cell of the benchmark's "
                                                                                  f"pool of {len(members)}")
            _, best = truth_.best_feasible(target.constraint)
            in_pool = float(truth_.accuracy[members][feasible].max())
            notes.append(f"{target.label} ({target.dataset}): {int(feasible.sum())} feasible cells in the pool; the pool's best feasible "
                         f"test accuracy {in_pool:.2f} (the space's {best:.2f}: a pool search's gap is >= "
                         f"{best - in_pool:.2f})")
    study = Study(out, FIELDS)
    planned = planned_runs(plan, base, bench, pool.space)
    study.run_all(planned, pool, db, lambda: write_hardware_report(study, base.name, plan, table, notes, len(planned)),
                  REPORT_EVERY, progress, "hardware benchmark")


def planned_runs(plan: HardwarePlan, base: RunConfig, bench: BenchmarkConfig, space: SearchSpace) -> list[PlannedRun]:
    """Every run of the hardware matrix (:func:`runs`) with its config and how its row is made."""
    planned = []
    for target, entry, metric, seed in runs(plan, bench, space):
        name = run_name(base, target, entry, metric, seed)
        planned.append(PlannedRun(name, target_config(base, target, entry, metric, seed),
                                  metric != VALIDATION and not needs(entry).gradient,
                                  functools.partial(record, plan, target, entry, metric, seed, name)))
    return planned

