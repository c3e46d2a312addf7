"""Empirical NTK Gram matrix of a network at initialisation, vectorised with ``torch.func``.

Theta(X, X) = J J^T with J = d f(X) / d theta, J: (m, p) (seed 000, eq. 4; seed 002 eq. 3).
Nothing loops over samples in Python: the Jacobian comes from ``jacrev`` (vmapped
vector-Jacobian products), and Theta is accumulated one parameter tensor at a time, so only
one tensor's Jacobian block is turned into float64 at once.

Two choices the papers leave open are options here:

``bn`` — how BatchNorm normalises while the kernel is taken:
  * ``"train"``: batch statistics, differentiated through (the exact Jacobian of the batch
    outputs f(X), which is what training sees and what TE-NAS computes with a per-sample
    backward loop). Samples are coupled, so each of the m vector-Jacobian products is a full
    batch backward: O(m^2) work.
  * ``"batchstats"``: the same batch statistics, frozen as constants. The forward is identical
    to ``"train"``; only the gradient through the statistics is dropped. Samples decouple, so
    per-sample gradients are vmapped: O(m) work. The default (fast and close to ``"train"``).
  * ``"eval"``: running statistics, which at initialisation are mean 0 / variance 1, i.e. BN is
    the identity affine map. Per-sample, O(m).

``output`` — how multi-class logits f(x): (c,) become one m x m kernel:
  * ``"sum"``: the scalar NTK of sum_k f_k(x) (TE-NAS, KNAS): Theta_ij = <d sum_k f_k(x_i),
    d sum_k f_k(x_j)>.
  * ``"trace"``: the trace over classes of the (m c x m c) NTK: Theta_ij = sum_k <d f_k(x_i),
    d f_k(x_j)>; c times more Jacobian rows.
  * ``"label"``: the scalar NTK of each sample's true-class logit, Theta_ij = <d f_{y_i}(x_i),
    d f_{y_j}(x_j)> (what HNAS's authors use); needs the labels ``y``.
  * ``"centred"``: the trace NTK of the centred logits f~_k(x) = f_k(x) - (1/c) sum_l f_l(x),
    Theta_ij = sum_k <d f~_k(x_i), d f~_k(x_j)> (issue 28): the c - 1 directions softmax
    cross-entropy trains (its gradient in the logits, softmax(f) - e_y, sums to 0), where ``"sum"``
    keeps only the direction 1 it ignores. ``"trace"`` = ``"centred"`` + ``"sum"`` / c.

``method`` — how Theta is computed (the values agree to float rounding):
  * ``"reference"``: the per-parameter Jacobian from ``vmap(jacrev)`` (this module), then J J^T.
  * ``"fast"``: one batched forward and backward with per-layer contractions, J never formed
    (:mod:`searchkit.metrics.ntk_fast`); only for ``bn`` in ("batchstats", "eval"), and only for
    networks whose layers it knows (it raises a SearchkitError otherwise).
  * ``"auto"`` (default): fast where it applies, else the reference.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

from searchkit.errors import SearchkitError
from searchkit.metrics import ntk_fast
from searchkit.metrics.base import Metric, SharedWork, is_out_of_memory, memory_option
from searchkit.metrics.batchnorm import batch_statistics, train_mode

if TYPE_CHECKING:
    from searchkit.data.base import Batch

BNMode = Literal["train", "batchstats", "eval"]
OutputMode = Literal["sum", "trace", "label", "centred"]
Method = Literal["auto", "fast", "reference"]
BN_MODES: tuple[str, ...] = ("train", "batchstats", "eval")
OUTPUT_MODES: tuple[str, ...] = ("sum", "trace", "label", "centred")
METHODS: tuple[str, ...] = ("auto", "fast", "reference")

def _reduce(out: torch.Tensor, output: OutputMode, y: torch.Tensor) -> torch.Tensor:
    """(m, c) logits -> (m,) for "sum" and "label" (the true class's logit), (m, c) for "trace" and
    "centred" (each logit minus the mean over classes)."""
    if output == "label":
        return out.gather(-1, y.reshape(-1, 1)).squeeze(-1)
    if output == "centred":
        return out - out.mean(-1, keepdim=True)
    return out.sum(-1) if output == "sum" else out


def check_modes(bn: str, output: str, x: torch.Tensor, y: torch.Tensor | None, method: str = "auto") -> None:
    """Raise a SearchkitError for an unknown ``bn`` / ``output`` / ``method`` or missing labels."""
    for name, value, allowed in (("bn", bn, BN_MODES), ("output", output, OUTPUT_MODES), ("method", method, METHODS)):
        if value not in allowed:
            raise SearchkitError(f"NTK {name} must be one of {', '.join(allowed)}, got {value!r}")
    if output == "label" and (y is None or y.shape[:1] != x.shape[:1]):
        raise SearchkitError(f"NTK output='label' needs one class label per sample (y of shape ({x.shape[0]},)); "
                             "pass y=batch.y")


def jacobian(
    net: nn.Module,
    x: torch.Tensor,
    bn: BNMode = "batchstats",
    output: OutputMode = "sum",
    chunk_size: int | None = None,
    *,
    y: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Per-parameter Jacobian blocks of the network outputs at its current weights.

    x: (m, *input_shape), y: (m,) class labels (only ``output="label"`` reads them). Returns
    name -> J_t of shape (m, *param_shape) for ``output="sum"`` / ``"label"`` or
    (m, c, *param_shape) for ``"trace"`` / ``"centred"``. ``chunk_size`` bounds how many vector-Jacobian
    products run at once (memory), without changing the result.
    """
    check_modes(bn, output, x, y)
    labels = (y if y is not None else torch.zeros(x.shape[0], dtype=torch.long)).to(x.device).long()
    params = {k: v.detach() for k, v in net.named_parameters() if v.requires_grad}
    if bn == "train":
        buffers = {k: v.detach().clone() for k, v in net.named_buffers()}

        def batch_out(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> torch.Tensor:
            return _reduce(functional_call(net, (p, b), (x,)), output, labels)

        with train_mode(net, True):  # buffers go in as an argument: BN updates its running stats in place
            return jacrev(batch_out, chunk_size=chunk_size)(params, buffers)

    buffers = batch_statistics(net, x) if bn == "batchstats" else dict(net.named_buffers())

    def sample_out(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        return _reduce(functional_call(net, (p, buffers), (xi.unsqueeze(0),)), output, yi.unsqueeze(0))[0]

    with train_mode(net, False):
        return vmap(jacrev(sample_out), in_dims=(None, 0, 0), chunk_size=chunk_size)(params, x, labels)


def gram(blocks: dict[str, torch.Tensor], m: int) -> torch.Tensor:
    """Theta = sum_t J_t J_t^T (float64, (m, m)) from per-parameter Jacobian blocks.

    Blocks of shape (m, c, ...) (``output="trace"`` / ``"centred"``) are contracted over the class axis too.
    """
    if not blocks:
        raise ValueError("the network has no trainable parameters")
    theta = torch.zeros(m, m, dtype=torch.float64, device=next(iter(blocks.values())).device)
    for block in blocks.values():
        j = block.reshape(m, -1).double()
        theta += j @ j.T
    return theta


def empirical_ntk(
    net: nn.Module,
    x: torch.Tensor,
    bn: BNMode = "batchstats",
    output: OutputMode = "sum",
    chunk_size: int | None = None,
    *,
    y: torch.Tensor | None = None,
    method: Method = "auto",
) -> torch.Tensor:
    """The empirical NTK Gram matrix Theta(X, X): (m, m) float64 (see the module docstring).

    For ``output="trace"`` the (m, c, p) Jacobian is flattened to (m, c p), so
    Theta_ij = sum_k <d f_k(x_i), d f_k(x_j)>. ``y``: (m,) labels, for ``output="label"``.
    ``chunk_size`` bounds the samples processed at once (memory) without changing the result.

    Memory is released before returning (glibc's heap trimmed, :func:`searchkit.runtime.release_memory`,
    ~20 ms), so any loop over networks stays flat without the caller's help. A loop over 6 NB201 cells
    at m = 128 (1 thread) grew 888 -> 2102 MB before; with the fast path's reference cycle broken
    (:meth:`searchkit.metrics.ntk_fast._Pass.forget`) 844 -> 928 MB; with the trim here too it stays
    at 492 MB. ``python benchmarks/memory_bound.py --ntk-loop 50`` measures it.
    """
    from searchkit.runtime import release_memory  # runtime imports the spaces, which import this module

    check_modes(bn, output, x, y, method)
    try:
        if method != "reference":
            try:
                return ntk_fast.fast_ntk(net, x, bn=bn, output=output, y=y, chunk_size=chunk_size)
            except ntk_fast.Unsupported as err:
                if method == "fast":
                    raise SearchkitError(f"the fast NTK cannot compute this one exactly: {err}; "
                                         "use method='reference'") from None
        return gram(jacobian(net, x, bn=bn, output=output, chunk_size=chunk_size, y=y), x.shape[0])
    finally:
        release_memory()


def robust_ntk(
    net: nn.Module, x: torch.Tensor, bn: BNMode, output: OutputMode, chunk_size: int | None = None,
    *, y: torch.Tensor | None = None, method: Method = "auto",
) -> torch.Tensor:
    """:func:`empirical_ntk`, retrying with half as many samples at once whenever memory runs out
    (``chunk_size`` changes memory only, never the result)."""
    chunk = chunk_size or x.shape[0]
    while True:
        try:
            return empirical_ntk(net, x, bn=bn, output=output, chunk_size=chunk, y=y, method=method)
        except (RuntimeError, torch.OutOfMemoryError) as err:
            if not is_out_of_memory(err) or chunk == 1:
                raise
            chunk = max(1, chunk // 2)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


@dataclass
class NTKMetric(Metric):
    """Base of the metrics computed from the empirical NTK Gram matrix Theta: (m, m).

    Options: the NTK's ``bn`` and ``output`` modes (see the module docstring) and ``chunk_size``
    (how many vector-Jacobian products run at once: memory only, not in the store key).
    Subclasses implement :meth:`from_ntk` (or :meth:`score_with` when they need the network
    too). Metrics with the same :attr:`ntk_key` on the same network and batch share one Theta
    (:func:`searchkit.metrics.base.score_metrics`, through :meth:`compute_shared`).
    """

    bn: BNMode = "batchstats"
    output: OutputMode = "sum"
    chunk_size: int | None = memory_option(None)

    @property
    def ntk_key(self) -> tuple[str, str]:
        return (self.bn, self.output)

    @property
    def shared_key(self) -> tuple[str, str, str]:
        """The Theta of this BN and output mode, shared by the NTK metrics scored beside this one."""
        return ("ntk", *self.ntk_key)

    def ntk(self, net: nn.Module, batch: "Batch") -> torch.Tensor:
        """Theta of the batch (its labels for ``output="label"``)."""
        return robust_ntk(net, batch.x, self.bn, self.output, self.chunk_size, y=batch.y)

    def from_ntk(self, theta: torch.Tensor, batch: "Batch") -> float:
        raise NotImplementedError

    def score_with(self, theta: torch.Tensor, net: nn.Module, batch: "Batch") -> float:
        """The score given this network's Theta (most metrics need only Theta)."""
        return self.from_ntk(theta, batch)

    def compute(self, net: nn.Module, batch: "Batch") -> float:
        return self.score_with(self.ntk(net, batch), net, batch)

    def compute_shared(self, net: nn.Module, batch: "Batch", shared: SharedWork | None) -> float:
        """The score from the Theta of this ``ntk_key`` that ``shared`` holds (computed here if none
        does; it may be on another device after a CPU fallback, and is moved to the batch's)."""
        if shared is None:
            return self.compute(net, batch)
        theta = shared.get(self.shared_key, lambda: self.ntk(net, batch))
        return self.score_with(theta.to(batch.x.device), net, batch)
