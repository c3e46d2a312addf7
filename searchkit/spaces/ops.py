"""Building blocks shared by cell-based search spaces.

Definitions follow NAS-Bench-201 (Dong & Yang, ICLR 2020, Sec. 2.1 and its reference code):
every cell op maps (m, C, H, W) -> (m, C, H, W); BatchNorm uses ``affine=True`` and
``track_running_stats=True``, the setting the benchmark's networks were trained with.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn


class Zero(nn.Module):
    """The ``none`` op: ``x * 0``, keeping shape, dtype, device and the autograd graph.

    x: (m, C, H, W) -> (m, C, H, W) of zeros.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv2d(k, bias=False) -> BatchNorm2d; (m, C_in, H, W) -> (m, C_out, H', W').

    Padding is ``k // 2`` so that stride 1 keeps the spatial size.
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(c_out),
        )


class ResNetBasicBlock(nn.Module):
    """NAS-Bench-201's residual reduction block between stages (stride 2, channels c_in -> c_out).

    Main path: ReLUConvBN(3x3, stride 2) -> ReLUConvBN(3x3); shortcut: AvgPool2d(2, 2) ->
    Conv2d(1x1, bias=False) (no BN on the shortcut, as in the benchmark's code).
    x: (m, c_in, H, W) -> (m, c_out, floor(H/2), floor(W/2)); needs H, W >= 2.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        self.shortcut = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2), nn.Conv2d(c_in, c_out, 1, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


OP_FACTORIES: dict[str, Callable[[int], nn.Module]] = {
    "none": lambda c: Zero(),
    "skip_connect": lambda c: nn.Identity(),
    "nor_conv_1x1": lambda c: ReLUConvBN(c, c, 1),
    "nor_conv_3x3": lambda c: ReLUConvBN(c, c, 3),
    "avg_pool_3x3": lambda c: nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
}
"""Op name -> factory ``(C) -> module`` for stride-1, C -> C cell edges."""
