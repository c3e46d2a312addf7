"""NTK-based training-free metrics and NASI's gradient approximation of the NTK trace.

All are "higher is better". The NTK metrics (everything deriving :class:`NTKMetric`) read one
empirical Gram matrix Theta: (m, m) (:mod:`searchkit.metrics.ntk`; BN mode and output reduction
are their ``bn`` / ``output`` options), so several of them on the same network and batch share
one NTK computation (:func:`searchkit.metrics.scoring.score_metrics`).
"""
from __future__ import annotations

import math
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from searchkit.data.base import Batch
from searchkit.errors import SearchkitError
from searchkit.metrics.base import Metric, metric
from searchkit.metrics.kcc import centre, label_features
from searchkit.metrics.ntk import NTKMetric, batch_statistics, train_mode

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
    eq. 11-12; :class:`NTKTraceApprox`), which is what NASI's Algorithm 1 optimises: the exact
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


@metric("linear_regions")
class LinearRegions(Metric):
    """log(1 + number of linear-region boundaries crossed) along straight segments between pairs of
    scoring images: TE-NAS's expressivity measure (Chen et al. 2021), counted along lines as in
    Hanin & Rolnick 2019 ("Complexity of Linear Regions in Deep Networks").

    Each of ``n_pairs`` segments x_2k -> x_2k+1 is sampled at ``n_points`` points; every ReLU unit
    whose sign differs between consecutive points is one boundary crossed. TE-NAS instead counts
    the distinct activation patterns among 1000 random inputs, but on NAS-Bench-201 networks at
    C=16 that count saturates (1000 of 1000 for every architecture we tried, 4x4 and 8x8 inputs),
    so it cannot rank them; crossings do not saturate. BN normalises with the scoring batch's
    statistics, frozen (as ``bn="batchstats"``), so the network is one fixed function on the segment.
    """

    n_pairs: int = 4
    n_points: int = 100

    worst = 0.0
    quantity = "log(1 + linear-region boundaries crossed)"

    def check(self) -> None:
        if self.n_pairs < 1 or self.n_points < 2:
            raise SearchkitError(f"metric 'linear_regions' needs n_pairs >= 1 and n_points >= 2, "
                                 f"got {self.n_pairs} and {self.n_points}")

    def minimum_batch(self) -> int:
        return 2 * self.n_pairs

    def crossings(self, net: nn.Module, batch: Batch) -> int:
        x = batch.x.to(next(net.parameters()).device)
        if x.shape[0] < 2 * self.n_pairs:
            raise SearchkitError(f"linear_regions needs a scoring batch of >= {2 * self.n_pairs} images "
                                 f"(2 n_pairs), got {x.shape[0]}; raise the batch size or lower n_pairs")
        buffers = batch_statistics(net, x)
        t = torch.linspace(0, 1, self.n_points, device=x.device).view(-1, 1, 1, 1)
        total = 0

        def count(module: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
            nonlocal total
            signs = (out > 0).flatten(1)
            total += int((signs[1:] != signs[:-1]).sum())

        hooks = [m.register_forward_hook(count) for m in net.modules() if isinstance(m, nn.ReLU)]
        try:
            with torch.no_grad(), train_mode(net, False):
                for k in range(self.n_pairs):
                    segment = (1 - t) * x[2 * k] + t * x[2 * k + 1]
                    functional_call(net, buffers, (segment,))
        finally:
            for hook in hooks:
                hook.remove()
        return total

    def compute(self, net: nn.Module, batch: Batch) -> float:
        return math.log1p(self.crossings(net, batch))


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


def loss_gradient_sq_norm(net: nn.Module, batch: Batch, frozen_stats: bool,
                          create_graph: bool = False) -> torch.Tensor:
    """||d L / d theta||_2^2 over all parameters (a float64 scalar), L = mean cross-entropy on the batch.

    ``frozen_stats``: BN normalises with the batch statistics held constant (samples independent,
    so the batch gradient is the mean of per-sample gradients); otherwise train-mode BN.
    ``create_graph``: keep the graph, so the value is differentiable in whatever the forward
    depends on besides the parameters (a supernet's architecture weights: NASI's objective).
    """
    params = {k: v.detach().requires_grad_(True) for k, v in net.named_parameters()}
    if frozen_stats:
        buffers = batch_statistics(net, batch.x)
        with train_mode(net, False):
            logits = functional_call(net, (params, buffers), (batch.x,))
    else:
        buffers = {k: v.clone() for k, v in net.named_buffers()}
        with train_mode(net, True):
            logits = functional_call(net, (params, buffers), (batch.x,))
    grads = torch.autograd.grad(F.cross_entropy(logits, batch.y), list(params.values()), allow_unused=True,
                                create_graph=create_graph)
    return sum((g.double() ** 2).sum() for g in grads if g is not None)


@metric("ntk_trace_approx")
class NTKTraceApprox(Metric):
    """NASI's approximation of the NTK trace, ||b^-1 sum_{x in X_j} grad_theta L_x||_2^2 (seed 002,
    eq. 11-12; the constant m / gamma of eq. 12 is dropped, it does not change rankings). One
    backward of the mean loss with train-mode BN, as NASI computes it on a mini-batch.
    Differentiable (create_graph): NASI's objective."""

    worst = 0.0
    quantity = "NASI NTK-trace estimate ‖∇θ L‖²"
    unbounded = True

    def compute(self, net: nn.Module, batch: Batch) -> float:
        return float(loss_gradient_sq_norm(net, batch, frozen_stats=False))

    def differentiable(self, net: nn.Module, batch: Batch) -> torch.Tensor:
        return loss_gradient_sq_norm(net, batch, frozen_stats=False, create_graph=True)


@metric("knas")
class KNAS(Metric):
    """KNAS's mean of the Gram matrix of per-sample loss gradients (Xu et al. 2021, "MGM"):
    (1/m^2) sum_ij <g_i, g_j> = ||(1/m) sum_i g_i||^2, so it is computed exactly by one backward
    of the mean loss with the batch statistics frozen (per-sample gradients are independent).
    It equals ``ntk_trace_approx`` except for the gradient through the BN statistics."""

    worst = 0.0
    quantity = "KNAS mean gradient Gram ‖∇θ L‖² (frozen BN statistics)"

    def compute(self, net: nn.Module, batch: Batch) -> float:
        return float(loss_gradient_sq_norm(net, batch, frozen_stats=True))
