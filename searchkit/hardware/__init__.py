"""Hardware-aware search building blocks: cost models (HW-NAS-Bench tables, measured CPU latency)
and budgets (:class:`Constraint`)."""
from searchkit.hardware.constraint import LIMIT_KEYS, Constraint
from searchkit.hardware.cost import (MEASURED_DEVICE, CostModel, EnumerableCost, MeasuredLatency, TableCost,
                                     make_cost_model, measure_latency)

__all__ = ["LIMIT_KEYS", "MEASURED_DEVICE", "Constraint", "CostModel", "EnumerableCost", "MeasuredLatency",
           "TableCost", "make_cost_model", "measure_latency"]
