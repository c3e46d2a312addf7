"""The metric protocol and the guard that turns degenerate networks into a documented worst score."""
from __future__ import annotations

import math
import warnings
from typing import Protocol, runtime_checkable

from torch import nn

from searchkit.data.base import Batch
from searchkit.errors import SearchkitError
from searchkit.registry import Registry


@runtime_checkable
class Metric(Protocol):
    """A training-free fitness: (network at initialisation, scoring batch) -> float, higher is better."""

    name: str
    worst: float

    def __call__(self, net: nn.Module, batch: Batch) -> float: ...


class DegenerateNetworkWarning(UserWarning):
    """A network gave a non-finite score; it was given the metric's worst score instead."""


def guarded(metric: Metric, value: float) -> float:
    """``value`` if finite, else ``metric.worst`` with a :class:`DegenerateNetworkWarning`."""
    if math.isfinite(value):
        return value
    warnings.warn(f"{metric.name} gave {value}; using its worst score {metric.worst}", DegenerateNetworkWarning)
    return metric.worst


METRICS: Registry[Metric] = Registry("metric")


def get_metric(name: str, **options) -> Metric:
    """The registered metric ``name`` configured with ``options`` (unknown options -> SearchkitError)."""
    factory = METRICS.get(name)
    try:
        return factory(**options)
    except TypeError as err:
        raise SearchkitError(f"bad options for metric {name!r}: {err}") from None
