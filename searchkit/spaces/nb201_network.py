"""NAS-Bench-201's cell and network (Dong & Yang, "NAS-Bench-201: Extending the Scope of
Reproducible Neural Architecture Search", ICLR 2020): the 5 ops, the 6 edges, :class:`NB201Arch`
and the benchmark's network. The space (:mod:`searchkit.spaces.nb201`) and its supernet
(:mod:`searchkit.spaces.nb201_supernet`) both build on this module, which imports neither.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from searchkit.errors import SearchkitError
from searchkit.spaces.ops import OP_FACTORIES, ResNetBasicBlock

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
"""(to, from) node pairs in the official edge order."""


@dataclass(frozen=True)
class NB201Arch:
    """One NAS-Bench-201 cell: ``ops[k]`` is the op on edge ``EDGES[k]``."""

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.ops) != len(EDGES) or any(op not in OPS for op in self.ops):
            raise SearchkitError(f"NB201Arch needs {len(EDGES)} ops from {', '.join(OPS)}; got {self.ops!r}")


class NB201Cell(nn.Module):
    """One cell with C channels: x (m, C, H, W) -> node 3 (m, C, H, W)."""

    def __init__(self, arch: NB201Arch, C: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(OP_FACTORIES[op](C) for op in arch.ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        k = 0
        for i in range(1, 4):
            node = self.edges[k](nodes[0])
            for j in range(1, i):
                node = node + self.edges[k + j](nodes[j])
            k += i
            nodes.append(node)
        return nodes[3]


class NB201Network(nn.Module):
    """The benchmark's macro skeleton ("TinyNetwork" in its code), x (m, in_channels, H, W) ->
    logits (m, num_classes).

    Stem conv3x3(in_channels -> C, bias=False) + BN; stages of N cells with C, 2C, 4C channels,
    separated by :class:`ResNetBasicBlock` reductions; then BN + ReLU, global average pooling and
    a linear head. Needs H, W >= 4 (two stride-2 reductions).
    """

    def __init__(self, arch: NB201Arch, num_classes: int, C: int = 16, N: int = 5, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, C, 3, padding=1, bias=False), nn.BatchNorm2d(C)
        )
        layers: list[nn.Module] = []
        for stage, width in enumerate((C, 2 * C, 4 * C)):
            if stage > 0:
                layers.append(ResNetBasicBlock(width // 2, width))
            layers += [NB201Cell(arch, width) for _ in range(N)]
        self.cells = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.BatchNorm2d(4 * C), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(4 * C, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.cells(self.stem(x)))
