"""Training-free metrics read from the empirical NTK Gram matrix Theta: (m, m): its trace, condition
number, smallest eigenvalue, spectral entropy, ridge fit, HSIC and alignment with the labels, and
TE-NAS's score.

All are "higher is better" and derive :class:`~searchkit.metrics.ntk.NTKMetric` (BN mode and output
reduction are their ``bn`` / ``output`` options), so several of them on the same network and batch
share one NTK computation (:func:`searchkit.metrics.base.score_metrics`). KCC is in
:mod:`searchkit.metrics.kcc`; the gradient-norm metrics (NASI's trace approximation, KNAS) in
:mod:`searchkit.metrics.loss_gradient`; the linear-region count in :mod:`searchkit.metrics.linear_regions`.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from searchkit.data.base import Batch
from searchkit.errors import SearchkitError
from searchkit.metrics.base import metric
from searchkit.metrics.kcc import centre, label_features
from searchkit.metrics.linear_regions import LinearRegions
from searchkit.metrics.loss_gradient import loss_gradient_sq_norm
from searchkit.metrics.ntk import NTKMetric

#: Largest condition number reported; a rank-deficient Theta (lambda_min <= lambda_max / COND_CAP) gets it.
COND_CAP = 1e15


def _eigenvalues(theta: torch.Tensor) -> torch.Tensor:
    """Ascending eigenvalues of the symmetric Theta: (m,) float64."""
    return torch.linalg.eigvalsh((theta + theta.T).double() / 2)


def condition_number(theta: torch.Tensor) -> float:
    """kappa = lambda_max / lambda_min of Theta, capped at :data:`COND_CAP` (rank-deficient Theta)."""
    eig = _eigenvalues(theta)
    top = float(eig[-1])
    if not math.isfinite(top) or top <= 0:
        return math.nan
    return top / max(float(eig[0]), top / COND_CAP)


@metric("ntk_trace")
class NTKTrace(NTKMetric):
    """M_Trace = sqrt(||Theta_0||_tr / m) (HNAS, seed 003, eq. 4; NASI's objective, seed 002).

    Differentiable form: NASI's approximation of the trace, ||b^-1 sum_x grad L_x||^2 (seed 002,
    eq. 11-12; :class:`~searchkit.metrics.loss_gradient.NTKTraceApprox`), which is what NASI's Algorithm 1 optimises: the exact
    trace would need per-sample gradients of the supernet with their own graph."""

    worst = 0.0
    quantity = "NTK trace score √(tr Θ / m)"
    unbounded = True

    def from_ntk(self, theta: torch.Tensor, batch: Batch) -> float:
        return math.sqrt(float(torch.trace(theta)) / theta.shape[0])

    def differentiable(self, net: nn.Module, batch: Batch) -> torch.Tensor:
        return loss_gradient_sq_norm(net, batch, frozen_stats=False, create_graph=True)


@metric("ntk_cond")
class NTKCond(NTKMetric):
    """-kappa, kappa = lambda_max(Theta_0) / lambda_min(Theta_0) (TE-NAS, Chen et al. 2021; seed 003
    Theorem 2). Negated: a smaller condition number trains better. Range [-COND_CAP, -1]."""

    worst = -COND_CAP
    quantity = "−κ, negated NTK condition number λmax/λmin"
    magnitude = "κ (NTK condition number)"

    def from_ntk(self, theta: torch.Tensor, batch: Batch) -> float:
        return -condition_number(theta)


@metric("ntk_eig_min")
class NTKEigMin(NTKMetric):
    """lambda_min(Theta_0) / m, the smallest NTK eigenvalue (EigenNAS, seed 004: a larger minimum
    eigenvalue bounds the generalisation error better). Divided by m so batches of different size
    compare; clamped at 0 (round-off can make it slightly negative)."""

    worst = 0.0
    quantity = "smallest NTK eigenvalue λmin(Θ) / m"

    def from_ntk(self, theta: torch.Tensor, batch: Batch) -> float:
        return max(float(_eigenvalues(theta)[0]), 0.0) / theta.shape[0]


def spectral_entropy(theta: torch.Tensor, centred: bool = True) -> float:
    """Entropy of Theta's normalised spectrum over its maximum, H(p) / log m with p = lambda / sum lambda
    (eigenvalues clamped at 0, 0 log 0 = 0), in [0, 1]: 1 for a flat spectrum (every direction of the
    batch equally fitted), 0 for rank one. ``centred``: of K = H Theta H, the kernel KCC reads
    (:func:`searchkit.metrics.kcc.kcc_tensor`); else of Theta. NaN when the spectrum sums to <= 0 or
    is not finite."""
    kernel = centre(theta.double()) if centred else theta.double()
    eig = _eigenvalues(kernel).clamp_min(0)
    total = eig.sum()
    if not bool(torch.isfinite(total)) or not float(total) > 0:
        return math.nan
    p = eig / total
    entropy = -(p * torch.log(torch.where(p > 0, p, torch.ones_like(p)))).sum()
    return float(entropy) / math.log(theta.shape[0])


@metric("ntk_spectral_entropy")
class NTKSpectralEntropy(NTKMetric):
    """Normalised entropy of the NTK's eigenvalue spectrum (:func:`spectral_entropy`), a control that
    reads Theta's eigenvalues alone, no labels (issue 28): if it ranks architectures like KCC, KCC's
    ranking comes from the spectrum, not from the labels. The same family as VKDNW (CVPR 2025),
    which ranks by the entropy of the empirical Fisher's spectrum. Option ``centred`` (default True):
    the spectrum of the centred kernel KCC uses. Range [0, 1]."""

    centred: bool = True

    worst = 0.0
    quantity = "normalised NTK spectral entropy H(λ / Σλ) / log m, in [0, 1]"

    def from_ntk(self, theta: torch.Tensor, batch: Batch) -> float:
        return spectral_entropy(theta, self.centred)


@metric("ntk_ridge")
class NTKRidge(NTKMetric):
    """NTK kernel-regression accuracy on held-out images of the batch (seed 001 section 5.3.1; the
    predictor of seed 000 eq. 5 with a ridge): one-hot labels regressed on ``folds`` - 1 stratified
    folds, the held-out fold classified by argmax, each image held out once
    (:func:`searchkit.metrics.kcc_variants.ridge_accuracy`). ``eps``: the ridge on the trace-normalised
    kernel. Range [0, 1] (chance 1/c); degenerate networks score 0."""

    folds: int = 4
    eps: float = 1e-4

    worst = 0.0
    quantity = "NTK kernel-regression accuracy on held-out images, in [0, 1]"
    min_classes = 2

    def check(self) -> None:
        if not self.eps > 0:
            raise SearchkitError(f"metric 'ntk_ridge' option eps must be > 0, got {self.eps}")
        if self.folds < 2:
            raise SearchkitError(f"metric 'ntk_ridge' option folds must be at least 2, got {self.folds}")

    def minimum_batch(self) -> int:
        return 2 * self.folds

    def from_ntk(self, theta: torch.Tensor, batch: Batch) -> float:
        from searchkit.metrics.kcc_variants import ridge_accuracy

        return ridge_accuracy(theta, batch.y, batch.num_classes, folds=self.folds, eps=self.eps)


def _centred_pair(theta: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Centred NTK and label kernels (K, L), each scaled to mean eigenvalue 1 (trace / m = 1)."""
    m = theta.shape[0]
    k = centre(theta.double())
    hy = label_features(batch.y.to(theta.device), batch.num_classes)
    ell = hy @ hy.T
    return k / (torch.trace(k) / m), ell / (torch.trace(ell) / m)


@metric("hsic")
class HSIC(NTKMetric):
    """HSIC(K, L) = tr(K L) / (m - 1)^2 with K, L the centred NTK and linear label kernels
    (Gretton et al. 2005; seed 000 section 4), both trace-normalised so it is scale invariant."""

    worst = 0.0
    quantity = "HSIC of NTK and label kernels"
    min_classes = 2

    def from_ntk(self, theta: torch.Tensor, batch: Batch) -> float:
        k, ell = _centred_pair(theta, batch)
        return float((k * ell).sum()) / (theta.shape[0] - 1) ** 2


@metric("kta")
class KTA(NTKMetric):
    """Centred kernel-target alignment <K, L>_F / (||K||_F ||L||_F) (Cortes et al. 2012; seed 000
    section 4). In [-1, 1]; invariant to the scale of Theta."""

    worst = -1.0
    quantity = "kernel-target alignment, in [−1, 1]"
    min_classes = 2

    def from_ntk(self, theta: torch.Tensor, batch: Batch) -> float:
        k, ell = _centred_pair(theta, batch)
        return float((k * ell).sum() / (torch.linalg.norm(k) * torch.linalg.norm(ell)))


@metric("tenas")
class TENAS(NTKMetric):
    """log(1 + #region boundaries) - log(kappa): TE-NAS's trade-off of expressivity against trainability
    (Chen et al. 2021) as one per-architecture number. TE-NAS itself ranks a population by the
    sum of the two ranks; that needs the population, so ``searchkit correlate`` also reports that
    rank combination of ``linear_regions`` and ``ntk_cond``. Here both enter in log scale, with
    equal weight."""

    worst = -math.log(COND_CAP)
    quantity = "TE-NAS score log(1 + boundaries) − log κ"

    def score_with(self, theta: torch.Tensor, net: nn.Module, batch: Batch) -> float:
        return LinearRegions().compute(net, batch) - math.log(condition_number(theta))
