"""The supernet protocol: one-shot networks of the search spaces, for NASI (Shu et al., ICLR 2022 =
seed 002, section 3.3, appendix B.2-B.3). Each space's supernet lives beside it
(:mod:`searchkit.spaces.nb201_supernet`, :mod:`searchkit.spaces.darts_supernet`) and is offered
by :meth:`searchkit.spaces.base.BaseSpace.supernet`.

A supernet represents a search space as one network whose sub-graphs are its candidate
architectures. Its architecture choices are the rows of a weight matrix ``weights``: (R, K), one
categorical choice per row with the options ``mask[r]`` (rows with fewer than K options are
padded and masked out):

* NAS-Bench-201 (:class:`~searchkit.spaces.nb201_supernet.NB201SuperNet`): one choice per cell edge, R = 6 edges, K = 5 ops; all
  cells share it (NB201 cells are identical).
* DARTS (:class:`~searchkit.spaces.darts_supernet.DartsSuperNet`): per intermediate node i = 2..5 of each cell type, one op
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
from torch import nn

from searchkit.errors import SearchkitError


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
    excluded: ClassVar[tuple[str, ...]] = ()
    """The ops NASI leaves out unless told otherwise (see :mod:`searchkit.strategies.nasi`)."""
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
