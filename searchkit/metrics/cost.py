"""Model-size baselines: ``params`` (trainable parameters) and ``flops`` (multiply-accumulates of
one forward pass), both in millions, as NAS-Bench-201 and NAS-Bench-Suite-Zero report them.

Neither looks at the data beyond the batch's input shape. "Higher is better" holds only in the
sense every baseline in Abdelfattah et al. 2021 (table 1) uses them: bigger networks tend to be
more accurate on NAS-Bench-201. A network without parameters (or MACs) scores 0, their worst.
"""
from __future__ import annotations


import torch
from torch import nn

from searchkit.data.base import Batch
from searchkit.metrics.base import Metric, metric
from searchkit.metrics.ntk import train_mode
from searchkit.metrics.zero_cost import forward_hooks, weighted_modules


def count_params(net: nn.Module) -> int:
    """The number of scalars in parameters that require grad (BN affine parameters included)."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def count_macs(net: nn.Module, input_shape: tuple[int, ...], device: torch.device | str = "cpu") -> int:
    """Multiply-accumulates of conv and linear layers for one input of ``input_shape`` (C, H, W).

    Conv: (output elements) x (C_in / groups) x prod(kernel); linear: (output elements) x
    in_features. Bias additions, BN, activations, pooling and additions are not counted. One
    eval-mode forward of zeros (BN running statistics untouched; train/eval flags restored).
    """
    macs = 0

    def count(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal macs
        macs += output.numel() * module.weight[0].numel()

    with forward_hooks(weighted_modules(net).values(), count), train_mode(net, False), torch.no_grad():
        net(torch.zeros((1, *input_shape), device=device))
    return macs


@metric("params")
class Params(Metric):
    """Trainable parameters in millions, BN affine parameters included: the NAS-Bench-201 /
    Suite-Zero ``params`` column (equal to it for all 300 architectures checked). Worst 0."""

    worst = 0.0
    quantity = "parameters (millions)"

    def compute(self, net: nn.Module, batch: Batch) -> float:
        return count_params(net) / 1e6


@metric("flops")
class Flops(Metric):
    """Conv + linear multiply-accumulates of one sample, in millions (see :func:`count_macs`).

    This is the usual "FLOPs = MACs" convention of NAS papers. NAS-Bench-Suite-Zero's ``flops``
    column additionally counts 2 per BN output element, 1 per ReLU output element and k^2 per
    average-pooling output element (ours plus those equals its NB201 values up to one constant,
    0.005184 M, for every architecture checked), so there an avg_pool_3x3 edge costs more than a
    1x1 convolution, while here it is free like skip and none; ranks differ only by that (see
    ``results/reference-agreement``). Worst 0.
    """

    worst = 0.0
    quantity = "multiply-accumulates per image (millions)"

    def compute(self, net: nn.Module, batch: Batch) -> float:
        return count_macs(net, tuple(batch.x.shape[1:]), batch.x.device) / 1e6
