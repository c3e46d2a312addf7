"""NAS-Bench-201's supernet for NASI (seed 002, section 3.3): every cell edge a mixture of the 5
ops, one choice per edge shared by all cells (see :mod:`searchkit.spaces.supernet`)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from searchkit.spaces.nb201_network import EDGES, NB201Arch, NB201Cell, NB201Network
from searchkit.spaces.nb201_network import OPS as NB201_OPS
from searchkit.spaces.ops import OP_FACTORIES as NB201_OP_FACTORIES
from searchkit.spaces.supernet import MixedOp, SuperNet, top


class NB201MixedCell(nn.Module):
    """An NB201 cell (node i = sum_{j<i} edge_{i<-j}(node j)) of :class:`MixedOp` edges over the 5
    ops; x (m, C, H, W), weights (6, 5) -> node 3 (m, C, H, W)."""

    def __init__(self, C: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(MixedOp(NB201_OP_FACTORIES[op](C) for op in NB201_OPS) for _ in EDGES)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        nodes, k = [x], 0
        for i in range(1, 4):
            nodes.append(sum(self.edges[k + j](nodes[j], weights[k + j]) for j in range(i)))
            k += i
        return nodes[3]


class NB201SuperNet(SuperNet):
    """The NB201 network (stem, 3 stages of N cells with C/2C/4C channels and residual reductions,
    head: :class:`~searchkit.spaces.nb201.NB201Network`) with every cell a :class:`NB201MixedCell`
    sharing ``weights`` (6 edges, 5 ops)."""

    size_defaults = {"C": 16, "N": 5}
    ops = NB201_OPS
    excluded = ("none",)

    def __init__(self, num_classes: int, C: int = 16, N: int = 5, in_channels: int = 3) -> None:
        super().__init__()
        skeleton = NB201Network(NB201Arch(("none",) * len(EDGES)), num_classes, C=C, N=N, in_channels=in_channels)
        self.stem, self.head = skeleton.stem, skeleton.head
        layers, width = [], C
        for layer in skeleton.cells:
            if isinstance(layer, NB201Cell):
                layers.append(NB201MixedCell(width))
            else:  # a stride-2 reduction doubles the width
                layers.append(layer)
                width *= 2
        self.cells = nn.ModuleList(layers)
        self.register_buffer("mask", torch.ones(len(EDGES), len(NB201_OPS), dtype=torch.bool), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self._weights()
        x = self.stem(x)
        for layer in self.cells:
            x = layer(x, weights) if isinstance(layer, NB201MixedCell) else layer(x)
        return self.head(x)

    def derive(self, scores: torch.Tensor) -> NB201Arch:
        """Each edge's highest-scoring op among its valid ones (Algorithm 1, line 8)."""
        scores = scores.masked_fill(~self.mask.cpu(), float("-inf"))
        return NB201Arch(tuple(NB201_OPS[top(row, 1)[0]] for row in scores))

    @staticmethod
    def weights_of(arch: NB201Arch, like: torch.Tensor) -> torch.Tensor:
        """The (6, 5) one-hot weights that select ``arch`` (dtype and device of ``like``)."""
        return F.one_hot(torch.tensor([NB201_OPS.index(op) for op in arch.ops]), len(NB201_OPS)).to(like)
