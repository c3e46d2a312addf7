"""KCC: the regularised kernel canonical correlation between the NTK and the labels.

Seed 000 (Singh 2025), section 3.2, eq. (9): with centred Gram matrices
K = H Theta(X) H (NTK) and L = H Y Y^T H (linear kernel on the labels), H = I - 11^T/m,

    [ 0   K L ] u = lambda [ K^2 + m eps K        0       ] u
    [ L K  0  ]            [      0        L^2 + m eps L  ]

and the score is gamma = lambda_max.

Why not solve (9) literally: its right-hand matrix B is singular. K is centred (H 1 = 0, so
rank K <= m - 1) and, for one-hot labels, rank L <= c - 1 << m; every direction in the null
space of B makes (9) ill-posed (infinite or arbitrary eigenvalues in a generalised eigensolver).
Only coefficients in range(K) + range(L) change f = K alpha and g = L beta, so we restrict to
those ranges. With K = U diag(k) U^T (k > 0) and L = Q diag(s^2) Q^T (Q from the thin SVD of
H Y), substituting a = (K + m eps I)^(1/2) K^(1/2) alpha and likewise b reduces (9) to an
ordinary singular value problem (Bach & Jordan 2002, regularised KCCA):

    gamma = sigma_max( diag(sqrt(k / (k + m eps))) U^T Q diag(sqrt(s^2 / (s^2 + m eps))) ).

The matrix is (rank K) x (rank L), at most m x (c - 1), so after one eigendecomposition of K
the score costs almost nothing. ``tests/test_kcc.py`` checks it against (9) solved on the
restricted ranges.

Choices the paper leaves open, as options:
  * ``normalize`` (default True): scale K and L to mean eigenvalue 1 (trace / m = 1) before
    regularising. Without it, gamma depends on the arbitrary output scale of the network at
    initialisation through m eps / k, and eps would mean something different per architecture.
    With it, gamma is invariant to rescaling Theta.
  * ``eps``: the regulariser epsilon of eq. (9). eps -> 0 drives gamma to 1 for any full-rank
    kernel (the paper's remark after eq. 8); larger eps weighs the leading NTK eigendirections.
    Default 1e-4, chosen on the 486 even-index architectures of a 1000-architecture NB201 sample
    (CIFAR-10 batch 64; Spearman with validation accuracy 0.762, vs 0.754 at 1e-3, paired
    bootstrap difference [0.004, 0.013]; 1e-5 no better on a 100-architecture subset): see
    results/correlation/README.md. The correlation changes SIGN with eps (negative for eps >= 0.1;
    results/correlation/kcc-eps).
  * labels: integer class labels use the linear kernel on one-hot vectors (section 4 notes this
    choice is open for classification); float targets (m,) or (m, d) use the linear kernel on
    the targets themselves (the regression case of section 3). ``labels="balanced"`` whitens
    them instead: L becomes the orthogonal projector onto range(H Y) (all its non-zero
    eigenvalues equal), so every class direction weighs the same whatever the class counts in
    the batch. A Gaussian kernel on one-hot labels is an affine function of the linear one and
    equals it after centring, so it is not offered separately.
  * the NTK's ``bn`` and ``output`` (:mod:`searchkit.metrics.ntk`) keep their defaults (batch
    statistics frozen, scalar NTK of the summed logits): on 100 even-index architectures the exact
    Jacobian through the batch statistics (``bn="train"``) scored 0.788 and the per-class NTK
    (``output="trace"``) 0.761 against 0.792, at ~35x and ~5x the cost.
gamma lies in [0, 1]; it is invariant to a joint permutation of the samples, to relabelling
classes, and (with ``normalize``) to the scale of Theta.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from searchkit.data.base import Batch
from searchkit.errors import SearchkitError
from searchkit.metrics.base import METRICS
from searchkit.metrics.ntk import NTKMetric

#: The score of a degenerate network (constant or non-finite NTK): the lower end of [0, 1].
KCC_WORST = 0.0


def centre(kernel: torch.Tensor) -> torch.Tensor:
    """H K H for K: (m, m), H = I - 11^T / m (double-centring)."""
    return kernel - kernel.mean(0, keepdim=True) - kernel.mean(1, keepdim=True) + kernel.mean()


def label_features(y: torch.Tensor, num_classes: int | None = None) -> torch.Tensor:
    """Centred label features H Y: (m, c) from class labels (m,) int, or targets (m,)/(m, d) float.

    L = (H Y)(H Y)^T is the centred linear label kernel of eq. (9).
    """
    if y.dtype in (torch.int64, torch.int32, torch.int16, torch.uint8):
        n = num_classes if num_classes is not None else int(y.max()) + 1
        features = torch.nn.functional.one_hot(y.long(), n).double()
    else:
        features = y.double().reshape(y.shape[0], -1)
    return features - features.mean(0, keepdim=True)


def _spectrum(kernel: torch.Tensor, rel_tol: float = 1e-10) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive eigenpairs of a symmetric PSD kernel: values (r,), vectors (m, r)."""
    values, vectors = torch.linalg.eigh((kernel + kernel.T) / 2)
    keep = values > rel_tol * values.abs().max().clamp_min(torch.finfo(values.dtype).tiny)
    return values[keep], vectors[:, keep]


@dataclass
class Reduced:
    """Eq. (9) on the ranges of K and L, as the matrix whose singular values are the regularised
    canonical correlations: ``core`` = diag(left) U^T Q diag(right): (r_K, r_L).

    K = H Theta H = U diag(k) U^T, H Y = Q diag(s) V^T; ``k`` and the label eigenvalues ``e`` are
    normalised when asked; left = sqrt(k / (k + m eps)), right = sqrt(e / (e + m eps)).
    """

    u: torch.Tensor
    k: torch.Tensor
    left: torch.Tensor
    q: torch.Tensor
    s: torch.Tensor
    v: torch.Tensor
    right: torch.Tensor

    @property
    def core(self) -> torch.Tensor:
        return self.left[:, None] * (self.u.T @ self.q) * self.right[None, :]


def reduce_eq9(theta: torch.Tensor, hy: torch.Tensor, eps: float, normalize: bool = True,
               labels: str = "linear") -> Reduced | None:
    """:class:`Reduced` for theta: (m, m) and centred label features hy: (m, c); None when the centred
    kernel or the labels are zero or not finite."""
    m = theta.shape[0]
    k_centred = centre(theta.double())
    if not torch.isfinite(k_centred).all():
        return None
    k, u = _spectrum(k_centred)
    q, s, vh = torch.linalg.svd(hy.double(), full_matrices=False)
    keep = s > 1e-10 * s.max().clamp_min(1e-300)
    q, s, v = q[:, keep], s[keep], vh[keep].T
    if labels == "balanced":
        e = torch.ones_like(s)
    elif labels == "linear":
        e = s**2
    else:
        raise SearchkitError(f"kcc: labels must be 'linear' or 'balanced', got {labels!r}")
    if k.numel() == 0 or e.numel() == 0:
        return None
    if normalize:
        k = k / (k.sum() / m)
        e = e / (e.sum() / m)
    ridge = m * eps
    return Reduced(u, k, torch.sqrt(k / (k + ridge)), q, s, v, torch.sqrt(e / (e + ridge)))


REDUCTIONS = ("max", "rms")


def kcc(
    theta: torch.Tensor,
    y: torch.Tensor,
    num_classes: int | None = None,
    eps: float = 1e-4,
    normalize: bool = True,
    labels: str = "linear",
    reduce: str = "max",
) -> float:
    """gamma = lambda_max of eq. (9) for an NTK Gram matrix theta: (m, m) and labels y: (m,).

    ``labels``: "linear" (L = H Y Y^T H) or "balanced" (L = the projector onto range(H Y)).
    ``reduce``: "max" (the largest canonical correlation, eq. 9) or "rms" (the root mean square of
    all rank(L) canonical correlations: every label direction counts, not only the best-fitted one).

    Returns :data:`KCC_WORST` when the centred kernel is zero or not finite (a network whose
    output does not depend on its input, or overflowed).
    """
    if reduce not in REDUCTIONS:
        raise SearchkitError(f"kcc: reduce must be one of {', '.join(REDUCTIONS)}, got {reduce!r}")
    problem = reduce_eq9(theta, label_features(y.to(theta.device), num_classes), eps, normalize, labels)
    if problem is None:
        return KCC_WORST
    core = problem.core
    if reduce == "rms":
        return float(torch.sqrt((core * core).sum() / problem.s.numel()))
    return float(torch.linalg.matrix_norm(core, ord=2))


@METRICS.register("kcc")
@dataclass
class KCC(NTKMetric):
    """Kernel canonical correlation of the empirical NTK and the labels (seed 000, eq. 9).

    Options: ``eps`` (regulariser), ``normalize`` (trace-normalise both kernels, see above),
    ``labels`` ("linear" or "balanced" label kernel, see above), and
    the NTK's ``bn`` / ``output`` / ``chunk_size`` (:mod:`searchkit.metrics.ntk`). Range [0, 1];
    degenerate networks score :data:`KCC_WORST`.
    """

    eps: float = 1e-4
    normalize: bool = True
    labels: str = "linear"
    reduce: str = "max"

    name = "kcc"
    worst = KCC_WORST

    def from_ntk(self, theta: torch.Tensor, batch: Batch) -> float:
        return kcc(theta, batch.y, batch.num_classes, eps=self.eps, normalize=self.normalize, labels=self.labels,
                   reduce=self.reduce)


@METRICS.register("kcc_crossfit")
@dataclass
class KCCCrossfit(NTKMetric):
    """Cross-fitted KCC (issue 15; seed 000 section 4 items 1-2): eq. (9) solved on ``folds`` - 1
    stratified folds of the batch, its witness functions correlated on the held-out fold, averaged
    over folds (:func:`searchkit.metrics.kcc_variants.crossfit_kcc`). ``posterior``: judge samples of
    the NTK-GP posterior (eq. 5 and 7) instead of its mean
    (:func:`~searchkit.metrics.kcc_variants.posterior_kcc`). ``eps``, ``normalize``, ``labels`` as
    for :class:`KCC`. Range [-1, 1]; degenerate networks score -1.
    """

    folds: int = 4
    eps: float = 1e-2
    normalize: bool = True
    labels: str = "linear"
    posterior: bool = False

    name = "kcc_crossfit"
    worst = -1.0

    def from_ntk(self, theta: torch.Tensor, batch: Batch) -> float:
        from searchkit.metrics.kcc_variants import crossfit_kcc, posterior_kcc

        score = posterior_kcc if self.posterior else crossfit_kcc
        return score(theta, batch.y, batch.num_classes, folds=self.folds, eps=self.eps, normalize=self.normalize,
                     labels=self.labels)
