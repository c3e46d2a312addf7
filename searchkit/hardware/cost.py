"""Deprecated: renamed :mod:`searchkit.hardware.cost_models` (this name collided with
:mod:`searchkit.metrics.cost`); kept for one release, with a DeprecationWarning."""
import warnings

from searchkit.hardware.cost_models import (MEASURED_DEVICE, CostModel, EnumerableCost, MeasuredLatency, TableCost,
                                            measure_latency, torch_threads)

warnings.warn("searchkit.hardware.cost is renamed searchkit.hardware.cost_models; the old name goes in the next "
              "release", DeprecationWarning, stacklevel=2)

__all__ = ["MEASURED_DEVICE", "CostModel", "EnumerableCost", "MeasuredLatency", "TableCost", "measure_latency",
           "torch_threads"]
