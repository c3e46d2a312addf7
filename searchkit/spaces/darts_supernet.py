"""The DARTS space's supernet for NASI (seed 002, appendix B.2): a separate op choice and input
choice per intermediate node of the normal and the reduction cell (see :mod:`searchkit.spaces.supernet`)."""
from __future__ import annotations

import torch
from torch import nn

from searchkit.spaces.darts_network import CELLS, CONCAT, NODES, CellInputs, DartsGenotype, darts_skeleton, op_stride
from searchkit.spaces.darts_network import OPS as DARTS_OPS
from searchkit.spaces.darts_ops import OP_FACTORIES as DARTS_OP_FACTORIES
from searchkit.spaces.supernet import MixedOp, SuperNet, top


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
