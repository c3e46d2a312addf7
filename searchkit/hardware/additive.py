"""An additive (per edge, per op) model of a cell's hardware cost, fitted to a cost table.

cost(cell) ~= bias + sum_e W[e, op_e], fitted by least squares over every measured cell (NaN
left out). It gives one-shot strategies a differentiable budget penalty: for independent
per-edge op distributions p (E, K), the expected cost is bias + sum_{e,k} p[e, k] W[e, k]
(linear in p; the lookup-table latency of FBNet / ProxylessNAS is this form). On HW-NAS-Bench's
NB201 columns the model is exact for Eyeriss and the FPGA and approximate on the measured edge
devices (see results/hardware-aware/budgets.md for each column's R^2).
"""
from __future__ import annotations

from dataclasses import dataclass
import numpy as np
import torch

from searchkit.errors import SearchkitError


@dataclass(frozen=True)
class AdditiveCost:
    """``bias`` + ``weights`` (E, K): cost of a cell with op indices ``codes`` (E,) is
    bias + sum_e weights[e, codes[e]]. ``r2`` and ``max_error`` describe the fit."""

    weights: np.ndarray
    bias: float
    r2: float
    max_error: float

    @classmethod
    def fit(cls, codes: np.ndarray, costs: np.ndarray, num_ops: int) -> "AdditiveCost":
        """Least squares over cells ``codes`` (n, E) of op indices in [0, num_ops) (a space's
        :func:`~searchkit.spaces.base.feature_matrix`, e.g. NB201's) with ``costs``
        (n,); NaN costs are left out. The one-hot design is rank-deficient (each edge's columns sum
        to the intercept): the minimum-norm solution is used, whose predictions are unique."""
        codes, costs = np.asarray(codes), np.asarray(costs, dtype=np.float64)
        ok = ~np.isnan(costs)
        if ok.sum() < 2 or codes.ndim != 2 or len(codes) != len(costs):
            raise SearchkitError(f"an additive cost fit needs codes (n, E) and n costs with 2+ measured; "
                                 f"got {codes.shape} and {costs.shape} ({ok.sum()} measured)")
        n_edges = codes.shape[1]
        design = _one_hot(codes[ok], num_ops)
        design = np.c_[np.ones(len(design)), design]
        solution, *_ = np.linalg.lstsq(design, costs[ok], rcond=None)
        residual = costs[ok] - design @ solution
        total = ((costs[ok] - costs[ok].mean()) ** 2).sum()
        r2 = 1.0 - float((residual ** 2).sum() / total) if total > 0 else 1.0
        return cls(solution[1:].reshape(n_edges, num_ops), float(solution[0]), r2, float(np.abs(residual).max()))

    def predict(self, codes: np.ndarray) -> np.ndarray:
        """Predicted costs of cells ``codes`` (n, E), shape (n,)."""
        codes = np.asarray(codes)
        return self.bias + self.weights[np.arange(codes.shape[1]), codes].sum(1)

    def expected(self, probs: torch.Tensor) -> torch.Tensor:
        """Expected cost under independent per-edge op distributions ``probs`` (E, K): a scalar
        tensor, differentiable in ``probs`` (gradient = weights)."""
        w = torch.as_tensor(self.weights, dtype=probs.dtype, device=probs.device)
        return self.bias + (probs * w).sum()


def _one_hot(codes: np.ndarray, num_ops: int) -> np.ndarray:
    """(n, E * num_ops) indicator matrix of ``codes`` (n, E)."""
    n, n_edges = codes.shape
    out = np.zeros((n, n_edges * num_ops))
    out[np.arange(n)[:, None], np.arange(n_edges) * num_ops + codes] = 1.0
    return out
