"""Score one network with several metrics, computing each distinct NTK only once."""
from __future__ import annotations

import time
from typing import Mapping

import torch
from torch import nn

from searchkit.data.base import Batch
from searchkit.metrics.base import Metric
from searchkit.metrics.ntk import NTKMetric


def score_metrics(net: nn.Module, batch: Batch, metrics: Mapping[str, Metric]) -> dict[str, tuple[float, float]]:
    """label -> (score, seconds) for every metric on the same network and batch.

    NTK metrics with the same ``ntk_key`` (BN mode, output reduction) share one Theta; each is
    charged the NTK's time plus its own, i.e. what it would cost alone, so per-metric seconds
    stay comparable whatever else was scored beside it.
    """
    batch = batch.to(next(net.parameters()).device)
    kernels: dict[tuple[str, str], tuple[torch.Tensor, float]] = {}
    results = {}
    for label, metric in metrics.items():
        start = time.perf_counter()
        if isinstance(metric, NTKMetric):
            if metric.ntk_key not in kernels:
                theta = metric.ntk(net, batch)
                kernels[metric.ntk_key] = (theta, time.perf_counter() - start)
                start = time.perf_counter()
            theta, ntk_seconds = kernels[metric.ntk_key]
            value = metric.guard(metric.score_with(theta, net, batch))
            results[label] = (value, ntk_seconds + time.perf_counter() - start)
        else:
            value = metric(net, batch)
            results[label] = (value, time.perf_counter() - start)
    return results
