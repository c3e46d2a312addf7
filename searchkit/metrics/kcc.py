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
those ranges. With K = U diag(k) U^T and L = Q diag(s^2) Q^T (Q from the thin SVD of H Y),
substituting a = (K + m eps I)^(1/2) K^(1/2) alpha and likewise b reduces (9) to an ordinary
singular value problem (Bach & Jordan 2002, regularised KCCA):

    gamma = sigma_max(C),   C = diag(sqrt(k / (k + r))) U^T Q D,   D = diag(sqrt(s^2 / (s^2 + r))),

r = m eps. We never form U: C^T C = D Q^T K (K + r I)^-1 Q D = D Q^T (I - r (K + r I)^-1) Q D, so

    gamma^2 = lambda_max( D Q^T (I - r (K + r I)^-1) Q D ),

a (c-1) x (c-1) eigenproblem after one m x m linear solve. This is the only KCC implementation:
it is smooth in Theta (the solve's gradient), so NASI optimises it through its supernet
(:meth:`KCC.differentiable`). ``tests/test_kcc.py`` checks it against (9) solved on the
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

from typing import Literal

import torch
from torch import nn

from searchkit.data.base import Batch
from searchkit.errors import SearchkitError
from searchkit.metrics.base import metric
from searchkit.metrics.kcc_variants import centre, crossfit_kcc, posterior_kcc
from searchkit.metrics.ntk import NTKMetric, empirical_ntk

#: The score of a degenerate network (constant or non-finite NTK): the lower end of [0, 1].
KCC_WORST = 0.0


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


def kcc_tensor(
    theta: torch.Tensor,
    y: torch.Tensor,
    num_classes: int | None = None,
    eps: float = 1e-4,
    normalize: bool = True,
    labels: str = "linear",
    reduce: str = "max",
) -> torch.Tensor:
    """gamma = lambda_max of eq. (9) for an NTK Gram matrix theta: (m, m) and labels y: (m,), as a
    float64 scalar tensor differentiable in theta (see the module docstring).

    ``labels``: "linear" (L = H Y Y^T H) or "balanced" (L = the projector onto range(H Y)).
    ``reduce``: "max" (the largest canonical correlation, eq. 9) or "rms" (the root mean square of
    all rank(L) canonical correlations, sqrt(trace(C^T C) / rank L): every label direction counts,
    not only the best-fitted one; issue 15, question 4).
    Returns :data:`KCC_WORST` (a constant) when the centred kernel is zero or not finite (a
    network whose output does not depend on its input, or overflowed) or the labels are constant.
    """
    m = theta.shape[0]
    worst = torch.tensor(KCC_WORST, dtype=torch.float64, device=theta.device)
    k = centre(theta.double())
    scale = torch.trace(k) / m
    if not bool(torch.isfinite(k).all()) or not float(scale.detach()) > 0:
        return worst
    hy = label_features(y.to(theta.device), num_classes)
    q, s, _ = torch.linalg.svd(hy, full_matrices=False)
    label_eig = s**2
    keep = label_eig > 1e-10 * label_eig.max().clamp_min(1e-300)
    q, label_eig = q[:, keep], label_eig[keep]
    if labels == "balanced":
        label_eig = torch.ones_like(label_eig)
    elif labels != "linear":
        raise SearchkitError(f"kcc: labels must be 'linear' or 'balanced', got {labels!r}")
    if label_eig.numel() == 0:
        return worst
    if normalize:
        k = k / scale
        label_eig = label_eig / (label_eig.sum() / m)
    ridge = m * eps
    d = torch.sqrt(label_eig / (label_eig + ridge))
    solved = torch.linalg.solve(k + ridge * torch.eye(m, dtype=k.dtype, device=k.device), q)
    core = d[:, None] * (q.T @ q - ridge * (q.T @ solved)) * d[None, :]
    if reduce == "rms":
        return (torch.trace(core) / core.shape[0]).clamp_min(0).sqrt()
    if reduce != "max":
        raise SearchkitError(f"kcc: reduce must be 'max' or 'rms', got {reduce!r}")
    return torch.linalg.eigvalsh((core + core.T) / 2)[-1].clamp_min(0).sqrt()


def kcc(theta: torch.Tensor, y: torch.Tensor, num_classes: int | None = None, eps: float = 1e-4,
        normalize: bool = True, labels: str = "linear", reduce: str = "max") -> float:
    """:func:`kcc_tensor` as a float."""
    return float(kcc_tensor(theta, y, num_classes, eps, normalize, labels, reduce))


@metric("kcc")
class KCC(NTKMetric):
    """Kernel canonical correlation of the empirical NTK and the labels (seed 000, eq. 9).

    Options: ``eps`` (regulariser, > 0), ``normalize`` (trace-normalise both kernels, see above),
    ``labels`` ("linear" or "balanced" label kernel, see above), ``reduce`` ("max": eq. 9; "rms":
    every canonical correlation, see :func:`kcc_tensor`), and the NTK's ``bn`` / ``output``
    / ``chunk_size`` (:mod:`searchkit.metrics.ntk`). Range [0, 1]; degenerate networks score
    :data:`KCC_WORST`. Differentiable (NASI): Theta by ``torch.func`` (the batch statistics, if
    any, held constant) and the closed form above.
    """

    eps: float = 1e-4
    normalize: bool = True
    labels: Literal["linear", "balanced"] = "linear"
    reduce: Literal["max", "rms"] = "max"

    worst = KCC_WORST
    quantity = "KCC γ, NTK-label kernel canonical correlation, in [0, 1]"
    min_classes = 2

    def check(self) -> None:
        if not self.eps > 0:
            raise SearchkitError(f"metric 'kcc' option eps must be > 0, got {self.eps}")

    def from_ntk(self, theta: torch.Tensor, batch: Batch) -> float:
        return kcc(theta, batch.y, batch.num_classes, eps=self.eps, normalize=self.normalize, labels=self.labels,
                   reduce=self.reduce)

    def differentiable(self, net: nn.Module, batch: Batch) -> torch.Tensor:
        # the vmap(jacrev) reference keeps the graph to whatever the forward depends on; the fast
        # path's per-layer contractions do not
        theta = empirical_ntk(net, batch.x, bn=self.bn, output=self.output, chunk_size=self.chunk_size,
                              y=batch.y, method="reference")
        return kcc_tensor(theta, batch.y, batch.num_classes, eps=self.eps, normalize=self.normalize, labels=self.labels,
                          reduce=self.reduce)


@metric("kcc_crossfit")
class KCCCrossfit(NTKMetric):
    """Cross-fitted KCC (issue 15; seed 000 section 4 items 1-2): eq. (9) solved on ``folds`` - 1
    class-stratified folds of the batch, its witness functions correlated on the held-out fold,
    averaged over the folds (:func:`searchkit.metrics.kcc_variants.crossfit_kcc`). ``posterior``:
    judge samples of the NTK-GP posterior (eq. 5 and 7) instead of its mean
    (:func:`~searchkit.metrics.kcc_variants.posterior_kcc`). ``eps``, ``normalize``, ``labels`` as
    for :class:`KCC`. Range [-1, 1]; degenerate networks score -1.

    Defaults (folds 4, eps 1e-4) are the best on the even half of the NB201 study, but no setting
    ranks architectures usefully: on the held-out odd half it scores Spearman 0.10 with CIFAR-10 test
    accuracy, against KCC's 0.71 (results/correlation/README.md, issue 15). The held-out
    correlation of the fitted witness functions is near 0 for every architecture: at m = 64 the
    NTK at initialisation does not generalise the labels, so KCC's in-sample value measures
    capacity, not generalisation.
    """

    folds: int = 4
    eps: float = 1e-4
    normalize: bool = True
    labels: Literal["linear", "balanced"] = "linear"
    posterior: bool = False

    worst = -1.0
    quantity = "cross-fitted KCC, in [-1, 1]"
    min_classes = 2

    def check(self) -> None:
        if not self.eps > 0:
            raise SearchkitError(f"metric 'kcc_crossfit' option eps must be > 0, got {self.eps}")
        if self.folds < 2:
            raise SearchkitError(f"metric 'kcc_crossfit' option folds must be at least 2, got {self.folds}")

    def minimum_batch(self) -> int:
        return 2 * self.folds

    def from_ntk(self, theta: torch.Tensor, batch: Batch) -> float:
        score = posterior_kcc if self.posterior else crossfit_kcc
        return score(theta, batch.y, batch.num_classes, folds=self.folds, eps=self.eps, normalize=self.normalize,
                     labels=self.labels)
