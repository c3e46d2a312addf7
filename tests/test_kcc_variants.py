"""KCC variants of issue 15 (searchkit/metrics/kcc_variants.py, kcc's ``reduce``): known answers,
invariances, and agreement with literal implementations of eq. (5), (7) and (9)."""
import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from searchkit.data.base import Batch
from searchkit.errors import SearchkitError
from searchkit.metrics import get_metric
from searchkit.metrics.kcc import kcc
from searchkit.metrics.kcc_variants import (CROSSFIT_WORST, canonical_pair, ce_kernel, crossfit_kcc, fold_pairs,
                                            posterior_kcc, ridge_accuracy, stratified_folds)
from searchkit.metrics.ntk import empirical_ntk

C = 5


def labelled(m: int = 60, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Labels (m,), their one-hot (m, C) and an independent Gaussian feature matrix (m, 30)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, C, (m,), generator=g)
    return y, torch.nn.functional.one_hot(y, C).double(), torch.randn(m, 30, generator=g, dtype=torch.float64)


def mixed(m: int = 60, seed: int = 0, signal: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    y, onehot, noise = labelled(m, seed)
    features = torch.cat([signal * onehot, noise / 6], 1)
    return features @ features.T, y


# ---------------------------------------------------------------- literal references (numpy, loops)
def literal_pair(theta: np.ndarray, onehot: np.ndarray, eps: float, labels: str):
    """Eq. (9) solved as the generalised eigenproblem on the ranges of K and L (both normalised to
    mean eigenvalue 1): (alpha, beta) as coefficients of the centred kernels, and the label
    kernel's centred feature map matrix M (l(y, y') = (y - ybar) M (y' - ybar))."""
    n = theta.shape[0]
    h = np.eye(n) - 1.0 / n
    k = h @ theta @ h
    k = k * n / np.trace(k)
    hy = h @ onehot
    metric = np.eye(onehot.shape[1]) if labels == "linear" else np.linalg.pinv(hy.T @ hy)
    ell = hy @ metric @ hy.T
    scale = n / np.trace(ell)
    ell, metric = ell * scale, metric * scale
    kv, kvec = np.linalg.eigh(k)
    u = kvec[:, kv > 1e-10 * kv.max()]
    lv, lvec = np.linalg.eigh(ell)
    q = lvec[:, lv > 1e-10 * lv.max()]
    ru, rq = u.shape[1], q.shape[1]
    a = np.zeros((ru + rq, ru + rq))
    a[:ru, ru:] = u.T @ k @ ell @ q
    a[ru:, :ru] = a[:ru, ru:].T
    b = scipy.linalg.block_diag(u.T @ (k @ k + n * eps * k) @ u, q.T @ (ell @ ell + n * eps * ell) @ q)
    values, vectors = scipy.linalg.eigh(a, b)
    top = vectors[:, np.argmax(values)]
    return u @ top[:ru], q @ top[ru:], metric, values


def literal_folds(theta, y, folds, eps, labels):
    """Per fold: (fit indices, held indices, alpha, beta, label metric), eq. (9) on the fit points."""
    onehot = np.eye(C)[y]
    for fold in sorted(set(folds.tolist())):
        fit = [i for i in range(len(y)) if folds[i] != fold]
        held = [i for i in range(len(y)) if folds[i] == fold]
        alpha, beta, metric, _ = literal_pair(theta[np.ix_(fit, fit)], onehot[fit], eps, labels)
        yield fit, held, alpha, beta, metric, onehot


def centred_entry(theta, fit, x, z):
    """<phi(x) - mean_A phi, phi(z) - mean_A phi> for sample indices x, z, one entry at a time."""
    row_x = sum(theta[x, a] for a in fit) / len(fit)
    row_z = sum(theta[a, z] for a in fit) / len(fit)
    total = sum(theta[a, b] for a in fit for b in fit) / len(fit) ** 2
    return theta[x, z] - row_x - row_z + total


def literal_witnesses(theta, fit, held, alpha, beta, metric, onehot):
    """f(x_B) = sum_j alpha_j k~(x_B, x_j) and g(y_B) = sum_j beta_j l~(y_B, y_j), sample by sample."""
    ybar = onehot[fit].mean(0)
    f = [sum(alpha[j] * centred_entry(theta, fit, b, a) for j, a in enumerate(fit)) for b in held]
    g = [sum(beta[j] * (onehot[b] - ybar) @ metric @ (onehot[a] - ybar) for j, a in enumerate(fit)) for b in held]
    return np.array(f), np.array(g)


def literal_crossfit(theta, y, folds, eps, labels="linear") -> float:
    theta, y, folds = theta.numpy(), y.numpy(), folds.numpy()
    scores = []
    for fit, held, alpha, beta, metric, onehot in literal_folds(theta, y, folds, eps, labels):
        f, g = literal_witnesses(theta, fit, held, alpha, beta, metric, onehot)
        scores.append(np.corrcoef(f, g)[0, 1])
    return float(np.mean(scores))


def literal_posterior(theta, y, folds, eps, labels="linear") -> float:
    """Eq. (5) and (7) with the ridge, written out with explicit inverses and centring matrices."""
    theta, y, folds = theta.numpy(), y.numpy(), folds.numpy()
    scores = []
    for fit, held, alpha, beta, metric, onehot in literal_folds(theta, y, folds, eps, labels):
        n, nb = len(fit), len(held)
        both = fit + held
        kc = np.array([[centred_entry(theta, fit, x, z) for z in both] for x in both])
        k_aa, k_ba, k_bb = kc[:n, :n], kc[n:, :n], kc[n:, n:]
        tau = np.trace(k_aa) / n
        ybar = onehot[fit].mean(0)
        ell_aa = np.array([[(onehot[x] - ybar) @ metric @ (onehot[z] - ybar) for z in fit] for x in fit])
        g_fit = ell_aa @ beta
        g_fit = (g_fit - g_fit.mean()) / np.sqrt(((g_fit - g_fit.mean()) ** 2).mean())
        inv = np.linalg.inv(k_aa / tau + n * eps * np.eye(n))
        mu = k_ba / tau @ inv @ g_fit
        sigma = k_bb / tau - k_ba / tau @ inv @ k_ba.T / tau
        _, g_held = literal_witnesses(theta, fit, held, alpha, beta, metric, onehot)
        hb = np.eye(nb) - 1.0 / nb
        mu_c, g_c = hb @ mu, hb @ g_held
        scores.append(mu_c @ g_c / np.sqrt((g_c @ g_c) * (mu_c @ mu_c + np.trace(hb @ sigma @ hb))))
    return float(np.mean(scores))


# ---------------------------------------------------------------- folds
def test_stratified_folds_are_balanced_and_deterministic():
    y = torch.tensor([0] * 13 + [1] * 7 + [2] * 4 + [3])
    folds = stratified_folds(y, 4)
    sizes = torch.bincount(folds, minlength=4)
    assert sizes.max() - sizes.min() <= 1
    for c in range(4):
        per_fold = torch.bincount(folds[y == c], minlength=4)
        assert per_fold.max() - per_fold.min() <= 1
    assert torch.equal(folds, stratified_folds(y, 4))
    with pytest.raises(SearchkitError, match="folds must be between 2"):
        stratified_folds(y, 1)
    with pytest.raises(SearchkitError, match="folds must be between 2"):
        stratified_folds(y, 20)


# ---------------------------------------------------------------- agreement with the literal equations
@pytest.mark.parametrize("labels", ["linear", "balanced"])
def test_canonical_pair_gamma_is_kcc(labels):
    theta, y = mixed(40)
    pair = canonical_pair(theta, torch.nn.functional.one_hot(y, C).double(), eps=0.01, labels=labels)
    assert pair[2] == pytest.approx(kcc(theta, y, C, eps=0.01, labels=labels), rel=1e-10)
    _, _, _, values = literal_pair(theta.numpy(), np.eye(C)[y.numpy()], 0.01, labels)
    assert pair[2] == pytest.approx(values.max(), rel=1e-8)


@pytest.mark.parametrize("labels,eps", [("linear", 1e-3), ("linear", 0.1), ("balanced", 0.01)])
def test_crossfit_matches_the_literal_cross_fit(labels, eps):
    theta, y = mixed(32, seed=1, signal=0.4)
    folds = stratified_folds(y, 4)
    fast = crossfit_kcc(theta, y, C, folds=folds, eps=eps, labels=labels)
    assert fast == pytest.approx(literal_crossfit(theta, y, folds, eps, labels), abs=1e-7)
    assert fast == crossfit_kcc(theta, y, C, folds=4, eps=eps, labels=labels)


@pytest.mark.parametrize("labels,eps", [("linear", 1e-3), ("balanced", 0.1)])
def test_posterior_matches_eq5_and_eq7_written_out(labels, eps):
    theta, y = mixed(24, seed=2, signal=0.4)
    folds = stratified_folds(y, 3)
    fast = posterior_kcc(theta, y, C, folds=folds, eps=eps, labels=labels)
    assert fast == pytest.approx(literal_posterior(theta, y, folds, eps, labels), abs=1e-7)


def test_rms_reduction_is_the_mean_square_of_all_canonical_correlations():
    theta, y = mixed(40, seed=3, signal=0.5)
    _, _, _, values = literal_pair(theta.numpy(), np.eye(C)[y.numpy()], 0.01, "linear")
    top = np.sort(values)[::-1][: C - 1]  # the c - 1 positive eigenvalues of eq. (9)
    assert kcc(theta, y, C, eps=0.01, reduce="rms") == pytest.approx(np.sqrt((top**2).mean()), rel=1e-8)
    assert kcc(theta, y, C, eps=0.01, reduce="rms") < kcc(theta, y, C, eps=0.01)
    with pytest.raises(SearchkitError, match="reduce must be .max. or .rms."):
        kcc(theta, y, C, reduce="min")


def test_rms_equals_max_when_every_label_direction_is_fitted_alike():
    c, eps = 4, 0.1
    y = torch.arange(10 * c) % c
    onehot = torch.nn.functional.one_hot(y).double()
    expected = 1 / (1 + eps * (c - 1))  # test_kcc: c - 1 equal canonical correlations
    assert kcc(onehot @ onehot.T, y, c, eps=eps, reduce="rms") == pytest.approx(expected, rel=1e-10)


# ---------------------------------------------------------------- known answers
@pytest.mark.parametrize("labels", ["linear", "balanced"])
@pytest.mark.parametrize("folds", [2, 4])
def test_a_kernel_that_is_a_function_of_the_labels_cross_fits_to_one(labels, folds):
    y, onehot, _ = labelled(60)
    gaussian = torch.exp(-torch.cdist(onehot, onehot) ** 2)  # affine in the linear label kernel
    for theta in (onehot @ onehot.T, gaussian, 3.0 * onehot @ onehot.T + 2.0):
        assert crossfit_kcc(theta, y, C, folds=folds, eps=0.01, labels=labels) == pytest.approx(1.0, abs=1e-9)
    # the posterior variance on a seen class vanishes with the ridge
    assert posterior_kcc(onehot @ onehot.T, y, C, folds=folds, eps=1e-9, labels=labels) == pytest.approx(1.0, abs=1e-6)


def test_independent_noise_cross_fits_near_zero_while_in_sample_kcc_is_high():
    scores, posteriors = [], []
    for seed in range(6):
        y, _, _ = labelled(300, seed)
        noise = torch.randn(300, 300, generator=torch.Generator().manual_seed(100 + seed), dtype=torch.float64)
        theta = noise @ noise.T
        scores.append(crossfit_kcc(theta, y, C, eps=1e-3))
        posteriors.append(posterior_kcc(theta, y, C, eps=1e-3))
        assert kcc(theta, y, C, eps=1e-3) > 0.5  # the over-confidence the cross-fit removes
    assert max(abs(s) for s in scores) < 0.15 and abs(np.mean(scores)) < 0.06
    assert max(abs(s) for s in posteriors) < 0.15


def test_posterior_shrinks_the_cross_fitted_correlation():
    theta, y = mixed(60, seed=4, signal=0.5)
    folds = stratified_folds(y, 4)
    per_fold = [crossfit_kcc(theta, y, C, folds=torch.where(folds == f, 0, 1), eps=0.01) for f in range(4)]
    assert min(per_fold) > 0
    assert 0 < posterior_kcc(theta, y, C, folds=folds, eps=0.01) < crossfit_kcc(theta, y, C, folds=folds, eps=0.01)


def test_degenerate_fit_kernels_score_worst():
    y = torch.arange(16) % 4
    flat = torch.ones(16, 16, dtype=torch.float64)
    assert crossfit_kcc(flat, y, 4) == CROSSFIT_WORST
    assert posterior_kcc(flat, y, 4) == CROSSFIT_WORST
    assert [pair for _, _, pair in fold_pairs(flat, y, 4, 2, 0.01, True, "linear")] == [None, None]


# ---------------------------------------------------------------- invariances
@pytest.mark.parametrize("score", [crossfit_kcc, posterior_kcc])
def test_invariances(score):
    theta, y = mixed(40, seed=5, signal=0.5)
    folds = stratified_folds(y, 4)
    base = score(theta, y, C, folds=folds, eps=0.01)
    assert score(37.0 * theta, y, C, folds=folds, eps=0.01) == pytest.approx(base, rel=1e-9)  # kernel scale
    assert score(theta + 5.0, y, C, folds=folds, eps=0.01) == pytest.approx(base, rel=1e-9)  # constant: centring
    perm = torch.randperm(40, generator=torch.Generator().manual_seed(0))
    assert score(theta[perm][:, perm], y[perm], C, folds=folds[perm], eps=0.01) == pytest.approx(base, rel=1e-9)
    relabel = torch.tensor([3, 0, 4, 1, 2])
    assert score(theta, relabel[y], C, folds=folds, eps=0.01) == pytest.approx(base, rel=1e-9)
    assert -1.0 <= base <= 1.0


# ---------------------------------------------------------------- the cross-entropy kernel
def test_ce_kernel_is_the_gram_of_per_sample_cross_entropy_gradients_at_uniform_softmax():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 4))
    with torch.no_grad():
        net[2].weight.zero_()
        net[2].bias.zero_()  # uniform softmax, where ce_kernel is exact
    x, y = torch.randn(7, 6), torch.tensor([0, 1, 2, 3, 0, 1, 2])

    def grads(scalar) -> torch.Tensor:
        return torch.stack([torch.cat([g.flatten() for g in torch.autograd.grad(scalar(i), list(net.parameters()))])
                            for i in range(7)]).double()

    s = grads(lambda i: net(x[i:i + 1]).sum())
    t = grads(lambda i: net(x[i:i + 1])[0, y[i]])
    ce = grads(lambda i: nn.functional.cross_entropy(net(x[i:i + 1]), y[i:i + 1]))
    assert torch.allclose(ce_kernel(s @ s.T, t @ t.T, s @ t.T, 4), ce @ ce.T, atol=1e-6)


# ---------------------------------------------------------------- the metric
def test_kcc_crossfit_metric_on_a_network():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(6, 5))
    g = torch.Generator().manual_seed(0)
    batch = Batch(torch.randn(20, 3, 8, 8, generator=g), torch.arange(20) % 5, 5)
    theta = empirical_ntk(net, batch.x)
    metric = get_metric("kcc_crossfit", folds=2, eps=0.1)
    assert metric(net, batch) == pytest.approx(crossfit_kcc(theta, batch.y, 5, folds=2, eps=0.1), rel=1e-9)
    posterior = get_metric("kcc_crossfit", folds=2, eps=0.1, posterior=True)
    assert posterior(net, batch) == pytest.approx(posterior_kcc(theta, batch.y, 5, folds=2, eps=0.1), rel=1e-9)
    assert get_metric("kcc", reduce="rms")(net, batch) == pytest.approx(kcc(theta, batch.y, 5, reduce="rms"), rel=1e-9)
    with pytest.raises(SearchkitError, match="folds must be at least 2"):
        get_metric("kcc_crossfit", folds=1)
    with pytest.raises(SearchkitError, match="option reduce must be one of"):
        get_metric("kcc", reduce="min")


# ---------------------------------------------------------------- kcc reduce="rms": invariances
def test_rms_invariances():
    theta, y = mixed(40, seed=6, signal=0.5)
    base = kcc(theta, y, C, eps=0.01, reduce="rms")
    assert kcc(37.0 * theta, y, C, eps=0.01, reduce="rms") == pytest.approx(base, rel=1e-9)  # kernel scale
    assert kcc(theta + 5.0, y, C, eps=0.01, reduce="rms") == pytest.approx(base, rel=1e-9)  # constant: centring
    perm = torch.randperm(40, generator=torch.Generator().manual_seed(1))
    assert kcc(theta[perm][:, perm], y[perm], C, eps=0.01, reduce="rms") == pytest.approx(base, rel=1e-9)
    relabel = torch.tensor([3, 0, 4, 1, 2])
    assert kcc(theta, relabel[y], C, eps=0.01, reduce="rms") == pytest.approx(base, rel=1e-9)
    assert 0.0 < base < 1.0


# ---------------------------------------------------------------- kcc output="label": the true-class-logit NTK
@pytest.mark.parametrize("method", ["reference", "auto"])
def test_true_class_logit_ntk_of_a_linear_model_is_known(method):
    # t_i = w_{y_i} . x_i + b_{y_i}: its gradient is (x_i, 1) in class y_i's row and 0 elsewhere, so
    # Theta_ij = [y_i == y_j] (x_i . x_j + 1): the label kernel times the input kernel, whatever the weights.
    torch.manual_seed(0)
    lin = nn.Linear(6, C)
    g = torch.Generator().manual_seed(7)
    x, y = torch.randn(12, 6, generator=g), torch.randint(0, C, (12,), generator=g)
    expected = (y[:, None] == y[None, :]).double() * (x.double() @ x.double().T + 1)
    theta = empirical_ntk(lin, x, output="label", y=y, method=method)
    assert torch.allclose(theta, expected, atol=1e-5)
    assert get_metric("kcc", output="label", eps=0.01)(lin, Batch(x, y, C)) == pytest.approx(
        kcc(expected, y, C, eps=0.01), rel=1e-6)


# ---------------------------------------------------------------- NTK kernel-regression accuracy (issue 28)
def literal_ridge_accuracy(theta, y, folds, eps) -> float:
    """Eq. (5) with a ridge, written out fold by fold with numpy."""
    theta, y = theta.numpy(), y.numpy()
    targets = np.eye(C)[y] - 1.0 / C
    right = 0
    for fold in range(folds.max() + 1):
        fit, held = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
        k = theta[np.ix_(fit, fit)]
        tau = np.trace(k) / len(fit)
        alpha = np.linalg.solve(k / tau + len(fit) * eps * np.eye(len(fit)), targets[fit])
        right += int((np.argmax(theta[np.ix_(held, fit)] / tau @ alpha, 1) == y[held]).sum())
    return right / len(y)


@pytest.mark.parametrize("eps", [1e-4, 1e-1])
def test_ridge_accuracy_matches_eq5_written_out(eps):
    theta, y = mixed(signal=0.3)
    folds = stratified_folds(y, 4)
    assert ridge_accuracy(theta, y, C, folds=4, eps=eps) == literal_ridge_accuracy(theta, y, folds.numpy(), eps)


def test_ridge_accuracy_of_a_label_kernel_is_one_and_of_noise_near_chance():
    theta, y = mixed(m=200, signal=3.0)
    assert ridge_accuracy(theta, y, C) == 1.0
    y, _, noise = labelled(m=200)
    assert ridge_accuracy(noise @ noise.T, y, C) < 0.35  # chance 1/5
    assert ridge_accuracy(torch.zeros(200, 200, dtype=torch.float64), y, C) == 0.0  # degenerate -> worst
    scaled = ridge_accuracy(1e6 * (noise @ noise.T), y, C)
    assert scaled == ridge_accuracy(noise @ noise.T, y, C)  # trace-normalised: scale-free


def test_ntk_ridge_metric_reads_the_networks_theta():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, C)).double()
    x, y = torch.randn(40, 3, 2, 2, dtype=torch.float64), torch.arange(40) % C
    value = get_metric("ntk_ridge", folds=4)(net, Batch(x, y, C))
    assert value == ridge_accuracy(empirical_ntk(net, x), y, C)
    with pytest.raises(SearchkitError, match="folds"):
        get_metric("ntk_ridge", folds=1)
