"""KCC variants (issue 15): pure functions of NTK Gram matrices Theta: (m, m) and class labels y: (m,).

Seed 000 (Singh 2025) scores an architecture by the regularised kernel canonical correlation of
eq. (9) between the NTK and a label kernel (:func:`searchkit.metrics.kcc.kcc`), and names in
section 4 why that score should be over-confident. The functions here answer those points; all
are float64, vectorised over samples (Python loops run only over the k folds of the batch) and
deterministic.

* :func:`canonical_pair` solves eq. (9) on some points and returns its witness functions in a form
  that can be evaluated elsewhere: f(x) = Theta(x, X_fit) alpha and g(y) = y . w (up to constants).
  The f-side solution of (9) is alpha = (K + m eps I)^-1 g on the fit points, so f on new points
  is the NTK-GP posterior mean of eq. (5), with ridge m eps, of the fitted label direction.
* :func:`crossfit_kcc` (section 4 item 2, over-fitting of the witness function): eq. (9) solved on
  k - 1 folds of the batch, the correlation of f and g measured on the held-out fold, averaged over
  the folds: a generalisation estimate rather than a capacity estimate.
* :func:`posterior_kcc` (section 4 item 1, prior vs posterior support): the same, judging samples of
  the NTK-GP posterior given the fit folds (mean eq. 5, covariance eq. 7) rather than its mean.
* :func:`ridge_accuracy` (issue 28): NTK kernel-regression accuracy on held-out folds (seed 001
  section 5.3.1), the posterior mean of eq. (5) judged by classification accuracy.
* :func:`ce_kernel` (section 4 item 3, classification): the Gram matrix of the per-sample
  cross-entropy gradients at initialisation, from the NTKs of the summed and the true-class logit.
"""
from __future__ import annotations

from typing import Callable, Iterator

import torch

from searchkit.errors import SearchkitError

#: Score of a network whose fit-fold kernel is zero or not finite (the bottom of [-1, 1]).
CROSSFIT_WORST = -1.0
#: Relative singular value below which a label direction counts as null.
REL_TOL = 1e-10
LABEL_KERNELS = ("linear", "balanced")


def centre(kernel: torch.Tensor) -> torch.Tensor:
    """H K H for K: (m, m), H = I - 11^T / m (double-centring)."""
    return kernel - kernel.mean(0, keepdim=True) - kernel.mean(1, keepdim=True) + kernel.mean()


def ce_kernel(theta_sum: torch.Tensor, theta_label: torch.Tensor, cross: torch.Tensor,
              num_classes: int) -> torch.Tensor:
    """Gram matrix of the per-sample cross-entropy gradients at uniform softmax: (m, m) float64.

    With p = 1/c, d L_i / d w = (1/c) d s_i - d t_i (s_i = sum_k f_k(x_i), t_i = f_{y_i}(x_i)), so
    <d L_i, d L_j> = S_ij / c^2 - (C_ij + C_ji) / c + T_ij with S = ``theta_sum``, T = ``theta_label``
    and C_ij = <d s_i, d t_j> = ``cross``: (m, m).
    """
    c = float(num_classes)
    cross = cross.double()
    return theta_sum.double() / c**2 - (cross + cross.T) / c + theta_label.double()


def stratified_folds(y: torch.Tensor, k: int) -> torch.Tensor:
    """Fold of each sample, (m,) int64 in [0, k): samples sorted by class (stably) are dealt
    round-robin, so each fold gets every class's samples as evenly as possible. Deterministic."""
    m = y.shape[0]
    if not 2 <= k <= m // 2:
        raise SearchkitError(f"folds must be between 2 and half the batch size ({m // 2}), got {k}")
    order = torch.sort(y, stable=True).indices
    folds = torch.empty(m, dtype=torch.int64, device=y.device)
    folds[order] = torch.arange(m, device=y.device) % k
    return folds


def one_hot(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(m, c) float64 one-hot labels."""
    return torch.nn.functional.one_hot(y.long(), num_classes).double()


def canonical_pair(theta: torch.Tensor, features: torch.Tensor, eps: float, normalize: bool = True,
                   labels: str = "linear") -> tuple[torch.Tensor, torch.Tensor, float] | None:
    """The top canonical pair of eq. (9) on n points, as witness functions for other points.

    theta: (n, n) NTK on the fit points; features: (n, c) label features (one-hot or targets); both
    are centred here. Returns (alpha (n,), w (c,), gamma) with f(x) = Theta(x, X) alpha + const,
    g(y) = y . w + const (alpha sums to 0) and gamma the regularised canonical correlation
    (:func:`searchkit.metrics.kcc.kcc`); signs make f and g covary positively on the fit points.
    None when either kernel is zero or not finite.

    As in :mod:`searchkit.metrics.kcc` (K = H theta H and H Y = Q diag(s) V^T, both normalised,
    r = n eps, D = diag(sqrt(e / (e + r))) with e the label kernel's eigenvalues), gamma^2 is the top
    eigenvalue of D Q^T K (K + r I)^-1 Q D, with eigenvector b. The label witness is then
    g = L beta = Q D b on the fit points, i.e. w = V (D b / s), and the f-side of (9),
    (K^2 + r K) alpha = gamma K L beta, gives f = K alpha with alpha = (K + r I)^-1 g (up to the
    common scale, which a correlation ignores): the NTK-GP posterior mean (eq. 5, ridge r) of g.
    """
    n = theta.shape[0]
    k = centre(theta.double())
    scale = torch.trace(k) / n
    if not bool(torch.isfinite(k).all()) or not float(scale) > 0:
        return None
    hy = features.double() - features.double().mean(0, keepdim=True)
    q, s, vh = torch.linalg.svd(hy, full_matrices=False)
    keep = s > REL_TOL * s.max().clamp_min(1e-300)
    q, s, v = q[:, keep], s[keep], vh[keep].T
    if s.numel() == 0:
        return None
    if labels not in LABEL_KERNELS:
        raise SearchkitError(f"labels must be one of {LABEL_KERNELS}, got {labels!r}")
    e = s**2 if labels == "linear" else torch.ones_like(s)
    if normalize:
        k, e = k / scale, e / (e.sum() / n)
    r = n * eps
    d = torch.sqrt(e / (e + r))
    system = k + r * torch.eye(n, dtype=k.dtype)
    core = d[:, None] * (q.T @ q - r * (q.T @ torch.linalg.solve(system, q))) * d[None, :]
    values, vectors = torch.linalg.eigh((core + core.T) / 2)
    b = vectors[:, -1]
    g = q @ (d * b)
    return torch.linalg.solve(system, g), v @ (d * b / s), float(values[-1].clamp_min(0).sqrt())


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two vectors (n,); 0 when either is constant."""
    a, b = a - a.mean(), b - b.mean()
    scale = torch.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / scale) if scale > 0 else 0.0


def fold_pairs(theta: torch.Tensor, y: torch.Tensor, num_classes: int, folds: int | torch.Tensor, eps: float,
               normalize: bool, labels: str) -> Iterator[tuple[torch.Tensor, torch.Tensor, tuple | None]]:
    """For each fold B: (fit mask (m,), held-out mask (m,), the :func:`canonical_pair` of eq. (9)
    solved on the other folds, or None). ``folds``: a number of :func:`stratified_folds`, or each
    sample's fold as (m,) int64 in [0, k)."""
    assignment = stratified_folds(y, folds) if isinstance(folds, int) else folds.to(y.device)
    features = one_hot(y, num_classes)
    for fold in range(int(assignment.max()) + 1):
        held = assignment == fold
        fit = ~held
        yield fit, held, canonical_pair(theta[fit][:, fit], features[fit], eps, normalize, labels)


FoldScore = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, tuple], float]


def mean_over_folds(score: FoldScore, theta: torch.Tensor, y: torch.Tensor, num_classes: int,
                    folds: int | torch.Tensor, eps: float, normalize: bool, labels: str) -> float:
    """Mean of ``score(theta, one_hot(y), fit, held, canonical_pair)`` over :func:`fold_pairs`, in
    float64; :data:`CROSSFIT_WORST` as soon as a fold's fit kernel has no canonical pair."""
    theta = theta.double()
    features = one_hot(y, num_classes)
    scores = []
    for fit, held, pair in fold_pairs(theta, y, num_classes, folds, eps, normalize, labels):
        if pair is None:
            return CROSSFIT_WORST
        scores.append(score(theta, features, fit, held, pair))
    return sum(scores) / len(scores)


def crossfit_kcc(theta: torch.Tensor, y: torch.Tensor, num_classes: int, folds: int | torch.Tensor = 4,
                 eps: float = 1e-4, normalize: bool = True, labels: str = "linear") -> float:
    """Cross-fitted KCC: the mean over ``folds`` stratified folds B of corr(f(X_B), g(Y_B)), with the
    witness functions of eq. (9) fitted on the other folds (:func:`canonical_pair`).
    theta: (m, m), y: (m,) int; ``folds`` as for :func:`fold_pairs`.

    In [-1, 1]: 1 for a kernel that is an exact function of the labels, near 0 for a kernel
    independent of them, negative when the fitted direction anti-generalises.
    :data:`CROSSFIT_WORST` when a fit kernel is zero or not finite.
    """
    def held_out_correlation(theta, features, fit, held, pair) -> float:
        alpha, w, _ = pair
        return pearson(theta[held][:, fit] @ alpha, features[held] @ w)

    return mean_over_folds(held_out_correlation, theta, y, num_classes, folds, eps, normalize, labels)


def fit_centred_blocks(theta: torch.Tensor, fit: torch.Tensor, held: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Theta centred at the fit points' feature mean: (K_AA, K_BA, K_BB) for fit A and held-out B.

    <phi(x) - mean_A phi, phi(x') - mean_A phi> = Theta(x, x') - mean_a Theta(x, a) - mean_a Theta(a, x')
    + mean Theta_AA.
    """
    row_mean = theta[:, fit].mean(1)
    centred = theta - row_mean[:, None] - row_mean[None, :] + theta[fit][:, fit].mean()
    return centred[fit][:, fit], centred[held][:, fit], centred[held][:, held]


def posterior_kcc(theta: torch.Tensor, y: torch.Tensor, num_classes: int, folds: int | torch.Tensor = 4,
                  eps: float = 1e-4, normalize: bool = True, labels: str = "linear") -> float:
    """Cross-fitted KCC judged on samples of the NTK-GP posterior (mean eq. 5, covariance eq. 7)
    instead of its mean; mean over the folds (``folds`` as for :func:`fold_pairs`). theta: (m, m), y: (m,) int.

    Model on the fit folds A (n points): f ~ GP(0, Theta / tau), tau making the centred kernel on A
    mean-eigenvalue 1 (``normalize``; unit prior variance per point), observed through the fitted
    canonical label direction g_A (:func:`canonical_pair`) scaled to unit mean square, with noise
    variance r = n eps (the ridge of eq. 9). On the held-out fold B the posterior is N(mu, Sigma),
    mu = K_BA (K_AA + r I)^-1 g_A (the cross-fitted witness of :func:`crossfit_kcc`) and
    Sigma = K_BB - K_BA (K_AA + r I)^-1 K_AB (eq. 7 with the ridge), K centred at A's feature mean.
    The fold's score is the agreement of a posterior sample with g_B in expectation,
    E<Hf, Hg> / sqrt(E|Hf|^2 |Hg|^2) = <H mu, H g> / (|H g| sqrt(|H mu|^2 + tr(H Sigma H))): the
    cross-fitted correlation shrunk by the posterior's uncertainty on B. In [-1, 1].
    """
    def posterior_agreement(theta, features, fit, held, pair) -> float:
        n = int(fit.sum())
        w = pair[1]
        g_fit = features[fit] @ w
        g_fit = g_fit - g_fit.mean()
        g_fit = g_fit / torch.sqrt((g_fit * g_fit).mean())
        k_aa, k_ba, k_bb = fit_centred_blocks(theta, fit, held)
        tau = torch.trace(k_aa) / n if normalize else torch.ones((), dtype=theta.dtype)
        system = k_aa / tau + n * eps * torch.eye(n, dtype=theta.dtype)
        solved = torch.linalg.solve(system, torch.cat([g_fit[:, None], k_ba.T / tau], 1))
        mu = (k_ba / tau) @ solved[:, 0]
        sigma = k_bb / tau - (k_ba / tau) @ solved[:, 1:]
        g_held = features[held] @ w
        mu, g_held = mu - mu.mean(), g_held - g_held.mean()
        spread = torch.trace(centre(sigma)).clamp_min(0.0)
        denom = torch.sqrt((g_held * g_held).sum() * ((mu * mu).sum() + spread))
        return float((mu * g_held).sum() / denom) if denom > 0 else 0.0

    return mean_over_folds(posterior_agreement, theta, y, num_classes, folds, eps, normalize, labels)


#: Accuracy of a network whose fit-fold kernel is zero or not finite.
RIDGE_WORST = 0.0


def ridge_accuracy(theta: torch.Tensor, y: torch.Tensor, num_classes: int, folds: int | torch.Tensor = 4,
                   eps: float = 1e-4, normalize: bool = True) -> float:
    """NTK kernel-regression accuracy on held-out images (seed 001 section 5.3.1, after Arora et al.
    2019: "performance estimation of the CNTK on a validation (sub)set after computing it on a small
    training subset"); theta: (m, m), y: (m,) int; ``folds`` as for :func:`fold_pairs`.

    For each stratified fold B, with A the other folds (n points): the kernel-regression predictor of
    seed 000 eq. (5), mu(x) = Theta(x, X_A) (Theta_AA + r I)^-1 Y_A, with Y_A the one-hot labels minus
    1/c (Arora et al.'s centred targets; with classes balanced the shift does not change an argmax)
    and ridge r = n eps on Theta_AA scaled to mean eigenvalue 1 (``normalize``; trace / n = 1, so eps
    means the same for every architecture, as in :func:`searchkit.metrics.kcc.kcc`). A held-out image
    is right when argmax_k mu_k(x) is its label. Returns the share of the batch predicted right by a
    fit that did not see it (each image is held out once), in [0, 1]; :data:`RIDGE_WORST` when a fit
    kernel is zero or not finite.
    """
    theta = theta.double()
    assignment = stratified_folds(y, folds) if isinstance(folds, int) else folds.to(y.device)
    targets = one_hot(y, num_classes) - 1.0 / num_classes
    right = 0
    for fold in range(int(assignment.max()) + 1):
        held, fit = assignment == fold, assignment != fold
        k_aa = theta[fit][:, fit]
        n = k_aa.shape[0]
        scale = torch.trace(k_aa) / n if normalize else torch.ones((), dtype=theta.dtype)
        if not bool(torch.isfinite(k_aa).all()) or not float(scale) > 0:
            return RIDGE_WORST
        system = k_aa / scale + n * eps * torch.eye(n, dtype=theta.dtype)
        predicted = (theta[held][:, fit] / scale) @ torch.linalg.solve(system, targets[fit])
        right += int((predicted.argmax(1) == y[held]).sum())
    return right / y.shape[0]
