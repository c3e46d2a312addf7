"""The number of linear-region boundaries a ReLU network crosses along segments between scoring images
(TE-NAS's expressivity measure, counted along lines)."""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.func import functional_call

from searchkit.data.base import Batch
from searchkit.errors import SearchkitError
from searchkit.metrics.base import Metric, metric
from searchkit.metrics.ntk import batch_statistics, train_mode


@metric("linear_regions")
class LinearRegions(Metric):
    """log(1 + number of linear-region boundaries crossed) along straight segments between pairs of
    scoring images: TE-NAS's expressivity measure (Chen et al. 2021), counted along lines as in
    Hanin & Rolnick 2019 ("Complexity of Linear Regions in Deep Networks").

    Each of ``n_pairs`` segments x_2k -> x_2k+1 is sampled at ``n_points`` points; every ReLU unit
    whose sign differs between consecutive points is one boundary crossed. TE-NAS instead counts
    the distinct activation patterns among 1000 random inputs, but on NAS-Bench-201 networks at
    C=16 that count saturates (1000 of 1000 for every architecture we tried, 4x4 and 8x8 inputs),
    so it cannot rank them; crossings do not saturate. BN normalises with the scoring batch's
    statistics, frozen (as ``bn="batchstats"``), so the network is one fixed function on the segment.
    """

    n_pairs: int = 4
    n_points: int = 100

    worst = 0.0
    quantity = "log(1 + linear-region boundaries crossed)"

    def check(self) -> None:
        if self.n_pairs < 1 or self.n_points < 2:
            raise SearchkitError(f"metric 'linear_regions' needs n_pairs >= 1 and n_points >= 2, "
                                 f"got {self.n_pairs} and {self.n_points}")

    def minimum_batch(self) -> int:
        return 2 * self.n_pairs

    def crossings(self, net: nn.Module, batch: Batch) -> int:
        x = batch.x.to(next(net.parameters()).device)
        if x.shape[0] < 2 * self.n_pairs:
            raise SearchkitError(f"linear_regions needs a scoring batch of >= {2 * self.n_pairs} images "
                                 f"(2 n_pairs), got {x.shape[0]}; raise the batch size or lower n_pairs")
        buffers = batch_statistics(net, x)
        t = torch.linspace(0, 1, self.n_points, device=x.device).view(-1, 1, 1, 1)
        total = 0

        def count(module: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
            nonlocal total
            signs = (out > 0).flatten(1)
            total += int((signs[1:] != signs[:-1]).sum())

        hooks = [m.register_forward_hook(count) for m in net.modules() if isinstance(m, nn.ReLU)]
        try:
            with torch.no_grad(), train_mode(net, False):
                for k in range(self.n_pairs):
                    segment = (1 - t) * x[2 * k] + t * x[2 * k + 1]
                    functional_call(net, buffers, (segment,))
        finally:
            for hook in hooks:
                hook.remove()
        return total

    def compute(self, net: nn.Module, batch: Batch) -> float:
        return math.log1p(self.crossings(net, batch))
