"""The candidate operations of the DARTS search space and their building blocks.

Definitions follow DARTS (Liu, Simonyan & Yang, "DARTS: Differentiable Architecture Search",
ICLR 2019, Sec. 3 and its reference code) as used by the *evaluation* network: every op maps
(m, C, H, W) -> (m, C, H / stride, W / stride); convolutions have no bias; BatchNorm is affine
with running statistics. Unlike the DARTS search supernet (which puts a non-affine BN after each
pooling op inside its mixed ops), the evaluation network has no BN after pooling, so neither
have these ops. Shared blocks (``ReLUConvBN``, ``Zero``) come from :mod:`searchkit.spaces.ops`.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from searchkit.spaces.ops import Zero


class DilConv(nn.Sequential):
    """ReLU -> depthwise Conv2d(k, stride, dilation) -> pointwise Conv2d(1x1) -> BatchNorm2d.

    (m, c_in, H, W) -> (m, c_out, H / stride, W / stride); padding ``dilation * (k - 1) // 2``
    keeps the size at stride 1. With ``dilation=2`` this is DARTS' ``dil_conv_kxk``.
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c_in, c_in, kernel_size, stride=stride, padding=dilation * (kernel_size - 1) // 2,
                      dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )


class SepConv(nn.Sequential):
    """DARTS' ``sep_conv_kxk``: two stacked ReLU-dwconv-pwconv-BN blocks (:class:`DilConv` with
    dilation 1), the first with ``stride`` and c_in -> c_in, the second stride 1 and c_in -> c_out.

    (m, c_in, H, W) -> (m, c_out, H / stride, W / stride).
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__(DilConv(c_in, c_in, kernel_size, stride), DilConv(c_in, c_out, kernel_size, 1))


class FactorizedReduce(nn.Module):
    """Halve the resolution without losing pixels: ReLU, then two 1x1 stride-2 convs (c_in ->
    c_out / 2 each) on the even and on the odd pixel grid, concatenated, then BatchNorm2d.

    (m, c_in, H, W) -> (m, c_out, ceil(H/2), ceil(W/2)); ``c_out`` must be even. DARTS shifts the
    input by one pixel for the second conv (``x[:, :, 1:, 1:]``), which matches sizes only for
    even H, W; here the shifted input is zero-padded at the bottom/right, which is the same for
    even sizes and also works for odd ones.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU()
        self.conv_even = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_odd = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = nn.functional.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv_even(x), self.conv_odd(shifted)], dim=1))


def drop_path(x: torch.Tensor, p: float) -> torch.Tensor:
    """ScheduledDropPath (Zoph et al. 2018, as used by DARTS): zero each sample's path
    x: (m, ...) with probability ``p`` and scale the kept ones by 1 / (1 - p).

    The per-sample mask is drawn from the global torch RNG of x's device (the trainer seeds it).
    ``p = 1`` drops every path (x * 0, keeping the graph) instead of dividing by zero.
    """
    if p >= 1.0:
        return x * 0.0
    keep = 1.0 - p
    mask = torch.bernoulli(torch.full((x.shape[0],) + (1,) * (x.dim() - 1), keep, dtype=x.dtype, device=x.device))
    return x * mask / keep


def _strided_zero(c: int, stride: int) -> nn.Module:
    """``none``: zeros of the output shape (``c`` channels, as its input); subsampling x[:, :, ::2, ::2]
    is MaxPool2d(1, 2)."""
    return Zero() if stride == 1 else nn.Sequential(nn.MaxPool2d(1, stride=stride), Zero())


OP_FACTORIES: dict[str, Callable[[int, int], nn.Module]] = {
    "none": _strided_zero,
    "max_pool_3x3": lambda c, stride: nn.MaxPool2d(3, stride=stride, padding=1),
    "avg_pool_3x3": lambda c, stride: nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False),
    "skip_connect": lambda c, stride: nn.Identity() if stride == 1 else FactorizedReduce(c, c),
    "sep_conv_3x3": lambda c, stride: SepConv(c, c, 3, stride),
    "sep_conv_5x5": lambda c, stride: SepConv(c, c, 5, stride),
    "dil_conv_3x3": lambda c, stride: DilConv(c, c, 3, stride, dilation=2),
    "dil_conv_5x5": lambda c, stride: DilConv(c, c, 5, stride, dilation=2),
}
"""Op name -> factory ``(C, stride) -> module`` mapping (m, C, H, W) -> (m, C, H/stride, W/stride)."""
