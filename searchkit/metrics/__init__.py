"""Training-free metrics: one registry, every score "higher is better".

``get_metric("kcc", eps=0.1)`` builds a metric; ``METRICS.names()`` lists them.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from searchkit.data.base import Batch
from searchkit.metrics.base import DegenerateNetworkWarning, Metric, guarded
from searchkit.metrics.kcc import KCC_WORST, kcc
from searchkit.metrics.ntk import BNMode, OutputMode, empirical_ntk
from searchkit.registry import Registry

METRICS: Registry[Metric] = Registry("metric")


@METRICS.register("kcc")
@dataclass
class KCC:
    """Kernel canonical correlation of the empirical NTK and the labels (seed 000, eq. 9).

    Options: ``eps`` (regulariser), ``bn`` and ``output`` (how the NTK is taken, see
    :mod:`searchkit.metrics.ntk`), ``normalize`` (trace-normalise both kernels, see
    :mod:`searchkit.metrics.kcc`), ``chunk_size`` (vector-Jacobian products at once; memory only).
    Range [0, 1]; degenerate networks score 0.
    """

    eps: float = 0.1
    bn: BNMode = "batchstats"
    output: OutputMode = "sum"
    normalize: bool = True
    chunk_size: int | None = None
    name: str = "kcc"
    worst: float = KCC_WORST

    def __call__(self, net: nn.Module, batch: Batch) -> float:
        theta = empirical_ntk(net, batch.x, bn=self.bn, output=self.output, chunk_size=self.chunk_size)
        value = kcc(theta, batch.y, batch.num_classes, eps=self.eps, normalize=self.normalize)
        return guarded(self, value)


def get_metric(name: str, **options) -> Metric:
    """The registered metric ``name`` configured with ``options`` (unknown options -> SearchkitError)."""
    factory = METRICS.get(name)
    try:
        return factory(**options)
    except TypeError as err:
        from searchkit.errors import SearchkitError

        raise SearchkitError(f"bad options for metric {name!r}: {err}") from None


__all__ = ["METRICS", "Metric", "KCC", "get_metric", "empirical_ntk", "kcc", "DegenerateNetworkWarning"]
