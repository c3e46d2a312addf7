"""A search run's hardware: its cost model and its constraint (formerly ``searchkit.hardware.run``).

The engine-level wiring of the hardware budget (docs/architecture.md, "Levels"): the cost models
and constraints are :mod:`searchkit.hardware`, the restricted space
:mod:`searchkit.spaces.constrained`, the oracle that adds costs to answers
:class:`searchkit.oracles.CostOracle`. :func:`open_hardware` reads a run config's ``constraint:`` and ``hardware:`` sections (during
``engine.prepare``, before anything is written or scored) and builds the cost model the space
offers (:meth:`searchkit.spaces.base.BaseSpace.cost_model`). With a constraint the search space is
wrapped in :class:`~searchkit.spaces.constrained.FeasibleSpace` (:meth:`RunHardware.constrain`)
before the strategy is built, so no strategy samples, mutates or steps to an architecture over
the budget, and an infeasible budget is refused there. :meth:`RunHardware.check` is the guard on
the answer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from searchkit.config import RunConfig
from searchkit.data.base import DatasetSplits
from searchkit.errors import SearchkitError
from searchkit.evaluation import target_dataset
from searchkit.hardware.constraint import Constraint
from searchkit.hardware.cost_models import MEASURED_DEVICE, CostModel, EnumerableCost
from searchkit.spaces.base import SearchSpace
from searchkit.spaces.constrained import FeasibleSpace
from searchkit.strategies.base import Needs


@dataclass
class RunHardware:
    """The run's ``cost`` model and its ``constraint`` (None: costs are recorded, nothing is
    restricted; a multi-objective search)."""

    cost: CostModel
    constraint: Constraint | None = None

    def constrain(self, space: SearchSpace, seed: int) -> SearchSpace:
        """``space`` restricted to the constraint (itself without one), checked to hold an
        architecture: a table (or a finite pool) is enumerated, which refuses an infeasible budget
        at once; a measured cost draws one feasible sample (from its own ``seed``), so a budget no
        sampled architecture meets is refused here too."""
        if self.constraint is None:
            self.require_costs(space)
            return space
        feasible = FeasibleSpace(space, self.cost, self.constraint)
        if feasible.members is None:
            feasible.sample(np.random.default_rng(seed))
        return feasible

    def require_costs(self, space: SearchSpace) -> None:
        """Without a constraint, every architecture a search may visit needs a cost: a table with
        gaps (HW-NAS-Bench's Edge TPU column) is refused up front, naming the first missing cell."""
        if not isinstance(self.cost, EnumerableCost):
            return
        members = getattr(space, "members", None)
        texts = self.cost.all_costs()[0] if members is None else [space.encode(a) for a in members]
        try:
            self.cost.costs(texts)
        except SearchkitError as err:
            raise SearchkitError(f"{err}; a search without a constraint needs every cell's cost: add a constraint "
                                 f"(cells without a measurement are then left out) or choose another device") from None

    def cost_of(self, text: str) -> float:
        return float(self.cost.cost(text))

    def check(self, text: str) -> float:
        """The cost of the run's answer ``text``; RuntimeError (a bug, not bad input) if it breaks the constraint."""
        value = self.cost_of(text)
        if self.constraint is not None and not self.constraint.satisfied(value):
            raise RuntimeError(f"internal error: the selected architecture {text} has {self.constraint.quantity} "
                               f"{value:.4g} {self.constraint.unit}, over the constraint {self.constraint}")
        return value

    def describe(self, text: str) -> dict[str, Any]:
        """best.json's ``hardware`` entry for the answer ``text``."""
        value = self.check(text)
        return {"device": self.cost.device, "quantity": self.cost.quantity, "unit": self.cost.unit, "cost": value,
                "constraint": None if self.constraint is None else self.constraint.as_mapping(),
                "feasible": None if self.constraint is None else True, "cost_model": repr(self.cost)}


def _cost_target(cfg: RunConfig, constraint: Constraint | None, needs: Needs, strategy: str) -> tuple[str, str] | None:
    """(device, quantity) of the run's cost model, or None when the run has none."""
    hw = cfg.hardware
    device = None if hw.device is None else hw.device.strip().lower()
    if constraint is not None:
        if device not in (None, constraint.device) or hw.quantity not in (None, constraint.quantity):
            raise SearchkitError(f"hardware.device/quantity ({device}, {hw.quantity}) differ from the constraint's "
                                 f"({constraint.device}, {constraint.quantity}); a run has one cost: drop them or "
                                 "make them agree")
        return constraint.device, constraint.quantity
    if device is None:
        if needs.cost:
            raise SearchkitError(f"strategy {strategy!r} needs a hardware cost: set hardware.device (e.g. pixel3, or "
                                 f"{MEASURED_DEVICE} to measure latency here) or a constraint")
        return None
    quantity = hw.quantity or "latency"
    Constraint.of(device, quantity, 1.0)  # checks the device and that it reports the quantity
    return device, quantity


def parse_constraint(cfg: RunConfig) -> Constraint | None:
    """The run's ``constraint:`` checked (SearchkitError, one line), or None."""
    return None if cfg.constraint is None else Constraint.parse(cfg.constraint)


def open_hardware(cfg: RunConfig, constraint: Constraint | None, space: SearchSpace, needs: Needs,
                  splits: DatasetSplits) -> RunHardware | None:
    """The run's hardware from its parsed ``constraint`` and ``hardware:`` section (None when it has
    neither and its strategy needs no cost); SearchkitError, one line, for a bad device or option."""
    target = _cost_target(cfg, constraint, needs, cfg.strategy.name)
    if target is None:
        return None
    hw = cfg.hardware
    if hw.batch_size < 1 or hw.warmup < 0 or hw.repeats < 1 or hw.threads < 1:
        raise SearchkitError(f"hardware needs batch_size >= 1, warmup >= 0, repeats >= 1 and threads >= 1; got "
                             f"{hw.batch_size}, {hw.warmup}, {hw.repeats} and {hw.threads}")
    device, quantity = target
    cost = space.cost_model(device, quantity, target_dataset(cfg), hw.table, num_classes=splits.num_classes,
                            input_shape=tuple(splits.input_shape), build=dict(cfg.space.build),
                            batch_size=hw.batch_size, warmup=hw.warmup, repeats=hw.repeats, threads=hw.threads,
                            seed=cfg.network_seed)
    return RunHardware(cost, constraint)
