"""NASWOT: the log-determinant of the ReLU activation-code kernel (Mellor et al., "Neural
Architecture Search without Training", ICML 2021 = arXiv:2006.04647 v2, sec. 3: the kernel K_H
and the score s = log |K_H|).

For each sample n the binary code c_n in {0,1}^{N_A} says which ReLU units are active (input > 0),
concatenated over every ``nn.ReLU`` of the network. With the Hamming distance d_H,

    K_H[i, j] = N_A - d_H(c_i, c_j) = c_i . c_j + (1 - c_i) . (1 - c_j),     score = log |det K_H|.

Per ReLU layer with codes C: (m, n_l) and row sums s, this is 2 C C^T - s 1^T - 1 s^T + n_l, one
(m x m) matrix product per layer, accumulated in float64 (integer counts, exact).

Choices, following the authors' updated code and NAS-Bench-Suite-Zero (NASLib ``nwot``):
the code of a ReLU is taken on its *input* (a forward pre-hook); every ``nn.ReLU`` module counts,
once per call; BN uses the batch statistics (train mode), the references' setting; no gradients.
Higher is better. K_H is an integer matrix, so a non-singular one has |det| >= 1 and a score
>= 0: :data:`NASWOT_WORST` = 0 is the bound, given to singular kernels (two samples with the same
code everywhere, e.g. a network whose cells are all ``none``), with a warning.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from searchkit.data.base import Batch
from searchkit.metrics.base import Metric, metric
from searchkit.metrics.zero_cost import train_forward

#: Lower bound of log|det K_H| for a non-singular integer kernel; singular kernels get it too.
NASWOT_WORST = 0.0


def hamming_kernel(codes: torch.Tensor) -> torch.Tensor:
    """K_H = C C^T + (1 - C)(1 - C)^T: (m, m) float64 for binary codes C: (m, n).

    The float32 product is exact while n < 2^24 units per layer.
    """
    c = codes.float()
    s = c.sum(1, keepdim=True).double()
    return 2.0 * (c @ c.T).double() - s - s.T + c.shape[1]


def activation_kernel(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The sum of :func:`hamming_kernel` over the input codes of every ``nn.ReLU`` call: (m, m).

    A non-finite ReLU input (NaN weights, overflow) has no code: the kernel is then all NaN.
    """
    kernel = torch.zeros(x.shape[0], x.shape[0], dtype=torch.float64, device=x.device)

    def accumulate(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        nonlocal kernel
        pre = inputs[0].flatten(1)
        kernel = kernel + hamming_kernel(pre > 0) if torch.isfinite(pre).all() else kernel * math.nan

    handles = [m.register_forward_pre_hook(accumulate) for m in net.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            train_forward(net, x)
    finally:
        for handle in handles:
            handle.remove()
    return kernel


@metric("naswot")
class NASWOT(Metric):
    """log |det K_H| of the ReLU activation-code kernel (Mellor et al. 2021 v2, sec. 3; see the
    module docstring). BN on batch statistics; higher is better; singular kernels, networks
    without ReLUs and non-finite activations score :data:`NASWOT_WORST`.
    """

    worst = NASWOT_WORST
    quantity = "NASWOT log |det K_H|"

    def compute(self, net: nn.Module, batch: Batch) -> float:
        _, logabsdet = torch.linalg.slogdet(activation_kernel(net, batch.x))
        return float(logabsdet)
