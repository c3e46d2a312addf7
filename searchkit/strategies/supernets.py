"""One-shot networks (supernets) of the search spaces, for NASI (Shu et al., ICLR 2022 = seed 002,
section 3.3, appendix B.2-B.3).

A supernet represents a search space as one network whose sub-graphs are its candidate
architectures. Its architecture choices are the rows of a weight matrix ``weights``: (R, K), one
categorical choice per row with the options ``mask[r]`` (rows with fewer than K options are
padded and masked out):

* NAS-Bench-201 (:class:`NB201SuperNet`): one choice per cell edge, R = 6 edges, K = 5 ops; all
  cells share it (NB201 cells are identical).
* DARTS (:class:`DartsSuperNet`): per intermediate node i = 2..5 of each cell type, one op
  choice over the 7 ops of :data:`searchkit.spaces.darts.OPS` (no ``none``, B.2) and one input
  choice over nodes 0..i-1, made separately (B.2, eq. 42): R = 2 cells x 4 nodes x (op, input)
  = 16, K = 7.

Set ``weights`` to a one-hot sample (NASI's straight-through Gumbel-softmax, B.3) before a
forward: the forward is then the sampled architecture, and the gradient w.r.t. ``weights`` also
reaches the options not taken (each option's output enters multiplied by its weight).
:meth:`SuperNet.derive` turns the final scores alpha* into the space's architecture
(Algorithm 1, line 8; for DARTS with B.2's top-2 retention).

Ops are the evaluation network's (no BN after pooling, unlike DARTS' search supernet), so a
sampled supernet computes exactly the network of the sampled cell.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from searchkit.errors import SearchkitError
from searchkit.spaces.darts import CELLS, CONCAT, NODES, CellInputs, DartsGenotype, darts_skeleton, op_stride
from searchkit.spaces.darts import OPS as DARTS_OPS
from searchkit.spaces.darts_ops import OP_FACTORIES as DARTS_OP_FACTORIES
from searchkit.spaces.nb201 import EDGES, NB201Arch, NB201Cell, NB201Network
from searchkit.spaces.nb201 import OPS as NB201_OPS
from searchkit.spaces.ops import OP_FACTORIES as NB201_OP_FACTORIES


class MixedOp(nn.ModuleList):
    """Candidate ops on one input, mixed by weights w: (K,): x -> sum_k w[k] op_k(x) (DARTS' mixed
    op; with one-hot w the value is the chosen op's output)."""

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return sum(w[k] * op(x) for k, op in enumerate(self))


class SuperNet(nn.Module, ABC):
    """A search space's one-shot network: x (m, in_channels, H, W) -> logits (m, num_classes) of the
    architecture ``weights`` selects.

    ``mask``: (R, K) bool buffer, the valid options of each choice row. ``weights``: (R, K), set
    before a forward; neither a parameter nor a buffer, so gradients w.r.t. the network's
    parameters never include it. ``size_defaults``: the size options (constructor keywords) and
    their defaults, those of the space's ``build``.
    """

    size_defaults: ClassVar[dict[str, int]]
    ops: ClassVar[tuple[str, ...]]
    """The op names of the columns of the op-choice rows."""
    min_ops: ClassVar[int] = 1
    """How many ops an op-choice row must keep (:meth:`derive` takes that many)."""
    mask: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.weights: torch.Tensor | None = None

    @property
    def op_rows(self) -> torch.Tensor:
        """(R,) bool: which rows choose an op (the others, if any, choose an input)."""
        return torch.ones(self.mask.shape[0], dtype=torch.bool)

    def exclude_ops(self, names: Iterable[str]) -> None:
        """Remove ops from every op choice (e.g. ``none``, as seed 002 B.2 does in DARTS): they are
        never sampled and never derived. Unknown names, or too few ops left, raise SearchkitError."""
        names = list(names)
        unknown = [name for name in names if name not in self.ops]
        if unknown:
            raise SearchkitError(f"cannot exclude {', '.join(map(repr, unknown))}: the ops here are {', '.join(self.ops)}")
        keep = torch.tensor([op not in names for op in self.ops], device=self.mask.device)
        if int(keep.sum()) < self.min_ops:
            raise SearchkitError(f"excluding {', '.join(names)} leaves fewer than {self.min_ops} ops to choose from")
        self.mask[self.op_rows, :len(self.ops)] &= keep

    def _weights(self) -> torch.Tensor:
        if self.weights is None:
            raise RuntimeError(f"set {type(self).__name__}.weights before calling it")
        return self.weights

    @abstractmethod
    def derive(self, scores: torch.Tensor) -> Any:
        """The architecture that scores: (R, K) (alpha*, masked entries ignored) select."""


def top(scores: torch.Tensor, k: int) -> list[int]:
    """Indices of the k largest entries of a 1-d tensor, largest first; ties go to the lower index."""
    values = scores.tolist()
    return sorted(range(len(values)), key=lambda i: (-values[i], i))[:k]


# --- NAS-Bench-201 ---------------------------------------------------------------------------------


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


# --- DARTS -------------------------------------------------------------------------------------------

DARTS_ROWS = 2 * NODES
"""Choice rows per DARTS cell type: node 2 + n has its op choice in row 2n, its input choice in 2n + 1."""


class DartsMixedNode(nn.Module):
    """Intermediate node i of a DARTS supernet cell: an op choice w_op (7,) and an input choice
    w_in (i,), made separately (B.2); node i = sum_j w_in[j] sum_o w_op[o] op_{j,o}(node j), with
    every (input j, op o) pair its own module (stride 2 on nodes 0, 1 of a reduction cell).

    Only the pairs that share the chosen input j* or the chosen op o* are computed: with one-hot
    weights every other term is w_in[j] w_op[o] op = 0 * 0 * op, whose value and first derivative
    w.r.t. the weights vanish (its own parameters' gradients are proportional to w_in[j] w_op[o]
    too), so the value and the weight gradient of any function of the output, NASI's trace
    included, are those of the full mixture, at 7 + i - 1 op evaluations instead of 7 i.
    """

    def __init__(self, i: int, C: int, reduction: bool) -> None:
        super().__init__()
        self.edges = nn.ModuleList(
            MixedOp(DARTS_OP_FACTORIES[op](C, op_stride(reduction, j)) for op in DARTS_OPS) for j in range(i))

    def forward(self, states: list[torch.Tensor], w_op: torch.Tensor, w_in: torch.Tensor) -> torch.Tensor:
        j_star, o_star = int(w_in.detach().argmax()), int(w_op.detach().argmax())
        out = w_in[j_star] * self.edges[j_star](states[j_star], w_op)
        for j, edge in enumerate(self.edges):
            if j != j_star:
                out = out + w_in[j] * w_op[o_star] * edge[o_star](states[j])
        return out


class DartsMixedCell(CellInputs):
    """A DARTS supernet cell with C channels per node: (s0, s1, weights (8, 7)) -> the channel
    concatenation of nodes 2..5, (m, 4C, H', W'); inputs as :class:`~searchkit.spaces.darts.CellInputs`."""

    def __init__(self, c_prev_prev: int, c_prev: int, C: int, reduction: bool, reduction_prev: bool) -> None:
        super().__init__(c_prev_prev, c_prev, C, reduction_prev)
        self.nodes = nn.ModuleList(DartsMixedNode(2 + n, C, reduction) for n in range(NODES))
        self.reduction = reduction
        self.out_channels = len(CONCAT) * C

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        states = super().forward(s0, s1)
        for n, node in enumerate(self.nodes):
            states.append(node(states, weights[2 * n, :len(DARTS_OPS)], weights[2 * n + 1, :2 + n]))
        return torch.cat([states[i] for i in CONCAT], dim=1)


class DartsSuperNet(SuperNet):
    """DARTS' network skeleton (:func:`~searchkit.spaces.darts.darts_skeleton`: stem, ``layers``
    cells with reductions at 1/3 and 2/3 depth, classifier; no auxiliary head, no drop path) with
    every cell a :class:`DartsMixedCell`. ``weights``: (16, 7), rows 0..7 the normal cell's
    choices, 8..15 the reduction cell's (:data:`DARTS_ROWS` each), all cells of a type sharing
    them. The weights must be one-hot in value (see :class:`DartsMixedNode`).

    Unlike B.2, reduction cells are searched in place (as in DARTS' search network) rather than
    separated from normal cells by extra max-pooling.
    """

    size_defaults = {"C": 16, "layers": 5, "stem_multiplier": 3}
    ops = DARTS_OPS
    min_ops = 2

    def __init__(self, num_classes: int, C: int = 16, layers: int = 5, stem_multiplier: int = 3,
                 in_channels: int = 3) -> None:
        super().__init__()

        def cell(cell_type: str, c_prev_prev: int, c_prev: int, c: int, reduction_prev: bool) -> DartsMixedCell:
            return DartsMixedCell(c_prev_prev, c_prev, c, cell_type == "reduce", reduction_prev)

        self.stem, self.cells, self.pool, self.classifier = darts_skeleton(
            cell, num_classes, in_channels, C, layers, stem_multiplier)
        mask = torch.zeros(len(CELLS) * DARTS_ROWS, len(DARTS_OPS), dtype=torch.bool)
        for c in range(len(CELLS)):
            for n in range(NODES):
                mask[c * DARTS_ROWS + 2 * n, :] = True
                mask[c * DARTS_ROWS + 2 * n + 1, :2 + n] = True
        self.register_buffer("mask", mask, persistent=False)

    @property
    def op_rows(self) -> torch.Tensor:
        return torch.arange(self.mask.shape[0]) % 2 == 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self._weights()
        values = weights.detach()[self.mask]
        if not bool(((values == 0) | (values - 1).abs().le(1e-5)).all()):
            raise ValueError("DartsSuperNet computes only the chosen input's and op's terms; its weights must be one-hot")
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, weights[DARTS_ROWS:] if cell.reduction else weights[:DARTS_ROWS])
        return self.classifier(self.pool(s1).flatten(1))

    def derive(self, scores: torch.Tensor) -> DartsGenotype:
        """B.2's retention: per cell type and node i, the two highest-scoring ops and the two
        highest-scoring inputs; node i reads its best input through its best op and its second
        input through its second op (B.2 does not say how the kept ops and inputs pair up).
        Concat: all intermediate nodes."""
        scores = scores.masked_fill(~self.mask.cpu(), float("-inf"))
        cells = []
        for c in range(len(CELLS)):
            pairs: list[tuple[str, int]] = []
            for n in range(NODES):
                ops = top(scores[c * DARTS_ROWS + 2 * n, :len(DARTS_OPS)], 2)
                inputs = top(scores[c * DARTS_ROWS + 2 * n + 1, :2 + n], 2)
                pairs += [(DARTS_OPS[o], j) for o, j in zip(ops, inputs)]
            cells.append(tuple(pairs))
        return DartsGenotype(cells[0], CONCAT, cells[1], CONCAT)


SUPERNETS: dict[str, type[SuperNet]] = {"nb201": NB201SuperNet, "darts": DartsSuperNet}
"""Search space name -> its supernet class, constructed as ``cls(num_classes, in_channels=..., **size)``."""
