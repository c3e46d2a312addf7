"""Hardware cost models (HW-NAS-Bench tables, measured CPU latency, an additive per-edge model for
differentiable penalties) and budgets (:class:`Constraint`). This package sits below the spaces
(docs/architecture.md, "Levels"): a run's hardware wiring is :mod:`searchkit.budget` and
:class:`searchkit.oracles.CostOracle`, its found front :mod:`searchkit.front`."""
from searchkit.hardware.additive import AdditiveCost
from searchkit.hardware.constraint import LIMIT_KEYS, Constraint
from searchkit.hardware.cost_models import (MEASURED_DEVICE, CostModel, EnumerableCost, MeasuredLatency, TableCost,
                                            measure_latency)

__all__ = ["AdditiveCost", "LIMIT_KEYS", "MEASURED_DEVICE", "Constraint", "CostModel", "EnumerableCost", "MeasuredLatency",
           "TableCost", "measure_latency"]
