"""Hardware-aware search building blocks: cost models (HW-NAS-Bench tables, measured CPU latency),
budgets (:class:`Constraint`) and an additive per-edge cost model for differentiable penalties."""
from searchkit.hardware.additive import AdditiveCost, nb201_codes
from searchkit.hardware.constraint import LIMIT_KEYS, Constraint
from searchkit.hardware.cost import (MEASURED_DEVICE, CostModel, EnumerableCost, MeasuredLatency, TableCost,
                                     make_cost_model, measure_latency)

__all__ = ["AdditiveCost", "LIMIT_KEYS", "MEASURED_DEVICE", "Constraint", "CostModel", "EnumerableCost", "MeasuredLatency",
           "TableCost", "make_cost_model", "measure_latency", "nb201_codes"]
