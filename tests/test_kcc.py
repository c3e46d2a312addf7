"""Empirical NTK and KCC (seed 000, eq. 9): known answers, references and invariances."""
import math

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from searchkit.data.base import Batch
from searchkit.errors import SearchkitError
from searchkit.metrics import get_metric
from searchkit.metrics.kcc import KCC_WORST, centre, kcc, label_features
from searchkit.metrics.ntk import empirical_ntk


def small_convnet(classes: int = 5) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, classes),
    )


def loop_ntk(net: nn.Module, x: torch.Tensor, per_class: bool = False) -> torch.Tensor:
    """The slow reference: one backward per sample (and per class), on the batch forward."""
    out = net(x)
    outputs = out.T.reshape(-1) if per_class else out.sum(1)
    rows = [torch.cat([g.flatten() for g in torch.autograd.grad(o, list(net.parameters()), retain_graph=True)])
            for o in outputs]
    j = torch.stack(rows).double()
    if per_class:  # rows are (class, sample); Theta_ij = sum_k <J_ki, J_kj>
        j = j.reshape(out.shape[1], x.shape[0], -1).transpose(0, 1).reshape(x.shape[0], -1)
    return j @ j.T


def test_linear_model_ntk_is_the_input_gram():
    torch.manual_seed(0)
    lin = nn.Linear(5, 3)
    x = torch.randn(7, 5)
    expected = 3 * (x.double() @ x.double().T + 1)  # sum of 3 logits: weights and bias, each class
    assert torch.allclose(empirical_ntk(lin, x, output="sum"), expected, atol=1e-4)
    # per-class trace: each logit's gradient is (x, 1) on its own row, so the same total here
    assert torch.allclose(empirical_ntk(lin, x, output="trace"), expected, atol=1e-4)


def test_train_mode_matches_per_sample_backward_loop():
    net = small_convnet()
    x = torch.randn(10, 3, 8, 8)
    fast = empirical_ntk(net, x, bn="train")
    net.train()
    assert torch.allclose(fast, loop_ntk(net, x), rtol=1e-4, atol=1e-6)


def test_trace_output_matches_per_class_loop():
    net = small_convnet(classes=3)
    x = torch.randn(6, 3, 8, 8)
    fast = empirical_ntk(net, x, bn="train", output="trace")
    net.train()
    assert torch.allclose(fast, loop_ntk(net, x, per_class=True), rtol=1e-4, atol=1e-6)


def test_eval_mode_matches_loop_in_eval():
    net = small_convnet()
    x = torch.randn(8, 3, 8, 8)
    fast = empirical_ntk(net, x, bn="eval")
    net.eval()
    assert torch.allclose(fast, loop_ntk(net, x), rtol=1e-4, atol=1e-6)


def test_batchstats_mode_freezes_the_batch_statistics():
    net = small_convnet()
    x = torch.randn(12, 3, 8, 8)
    fast = empirical_ntk(net, x, bn="batchstats")
    # Reference: BN layers whose running stats are the batch's (biased) statistics, in eval mode.
    frozen = small_convnet()
    h = x
    for layer in frozen:
        if isinstance(layer, nn.BatchNorm2d):
            layer.running_mean.copy_(h.mean((0, 2, 3)))
            layer.running_var.copy_(h.var((0, 2, 3), unbiased=False))
            layer.eval()
        h = layer(h).detach()
    frozen.eval()
    net.train()
    assert torch.allclose(frozen(x), net(x), atol=1e-5)  # same forward as train mode
    assert torch.allclose(fast, loop_ntk(frozen, x), rtol=1e-4, atol=1e-6)
    assert not torch.allclose(fast, empirical_ntk(net, x, bn="train"), rtol=1e-3)


def test_ntk_leaves_the_network_untouched_and_chunking_is_exact():
    net = small_convnet()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(9, 3, 8, 8)
    for bn in ("train", "batchstats", "eval"):
        whole = empirical_ntk(net, x, bn=bn)
        assert torch.allclose(whole, empirical_ntk(net, x, bn=bn, chunk_size=2), rtol=1e-6, atol=1e-8)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def restricted_eq9(k_raw: torch.Tensor, y: torch.Tensor, c: int, eps: float) -> float:
    """Eq. (9) literally, with alpha and beta restricted to range(K) and range(L) where B is definite."""
    k = centre(k_raw.double()).numpy()
    hy = label_features(y, c).numpy()
    ell = hy @ hy.T
    m = k.shape[0]
    kv, ku = np.linalg.eigh(k)
    u = ku[:, kv > 1e-9 * kv.max()]
    q = np.linalg.svd(hy, full_matrices=False)[0][:, : np.linalg.matrix_rank(hy)]
    ru, rq = u.shape[1], q.shape[1]
    a = np.zeros((ru + rq, ru + rq))
    a[:ru, ru:] = u.T @ k @ ell @ q
    a[ru:, :ru] = a[:ru, ru:].T
    b = scipy.linalg.block_diag(u.T @ (k @ k + m * eps * k) @ u, q.T @ (ell @ ell + m * eps * ell) @ q)
    return float(scipy.linalg.eigh(a, b, eigvals_only=True).max())


@pytest.mark.parametrize("eps", [1e-3, 0.1, 1.0])
def test_closed_form_equals_eq9_on_the_ranges(eps):
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(30, 12, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (30,), generator=g)
    theta = feats @ feats.T + 0.5 * label_features(y, 4) @ label_features(y, 4).T
    assert kcc(theta, y, 4, eps=eps, normalize=False) == pytest.approx(restricted_eq9(theta, y, 4, eps), rel=1e-8)


@pytest.mark.parametrize("c,eps", [(2, 0.1), (4, 0.1), (10, 0.01), (10, 1.0)])
def test_label_kernel_gives_the_analytic_value(c, eps):
    # Theta = Y Y^T with balanced classes: both normalised kernels have c-1 eigenvalues m/(c-1)
    # on the same eigenspace, so gamma = (m/(c-1)) / (m/(c-1) + m eps) = 1 / (1 + eps (c-1)).
    y = torch.arange(10 * c) % c
    onehot = torch.nn.functional.one_hot(y).double()
    assert kcc(onehot @ onehot.T, y, c, eps=eps) == pytest.approx(1 / (1 + eps * (c - 1)), rel=1e-10)


def test_balanced_label_kernel_is_the_class_projector():
    # Imbalanced classes: the projector P onto range(H Y) has c-1 equal eigenvalues, so with
    # labels="balanced" both normalised kernels coincide and gamma = 1 / (1 + eps (c - 1));
    # the linear label kernel has unequal eigenvalues (class counts) and gives another value.
    c, eps = 4, 0.1
    y = torch.tensor([0] * 30 + [1] * 6 + [2] * 3 + [3] * 1)
    q = torch.linalg.svd(label_features(y, c), full_matrices=False)[0][:, : c - 1]
    projector = q @ q.T
    assert kcc(projector, y, c, eps=eps, labels="balanced") == pytest.approx(1 / (1 + eps * (c - 1)), rel=1e-10)
    assert abs(kcc(projector, y, c, eps=eps) - 1 / (1 + eps * (c - 1))) > 0.01
    balanced_y = torch.arange(40) % c  # equal class counts: the two label kernels are the same
    theta = torch.randn(40, 40, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    theta = theta @ theta.T
    assert kcc(theta, balanced_y, c, labels="balanced") == pytest.approx(kcc(theta, balanced_y, c), rel=1e-10)
    with pytest.raises(SearchkitError, match="labels must be"):
        kcc(theta, balanced_y, c, labels="rbf")


def test_regression_targets_use_the_linear_kernel():
    y = torch.randn(40, dtype=torch.float64)
    assert kcc(torch.outer(y, y), y, eps=0.2) == pytest.approx(1 / 1.2, rel=1e-10)


def test_label_kernel_scores_high_and_independent_noise_low():
    g = torch.Generator().manual_seed(0)
    m, c = 200, 10
    y = torch.randint(0, c, (m,), generator=g)
    noise = torch.randn(m, 20, generator=g, dtype=torch.float64)
    informative = torch.cat([10 * label_features(y, c), noise], 1)
    high = kcc(informative @ informative.T, y, c, eps=0.1)
    low = kcc(noise @ noise.T, y, c, eps=0.1)
    # With normalised kernels the label side alone caps gamma at sqrt(1 / (1 + eps (c - 1))).
    ceiling = math.sqrt(1 / (1 + 0.1 * (c - 1)))
    assert high > 0.7 * ceiling
    assert low < 0.4 * ceiling
    assert high > 2 * low


def test_invariances():
    g = torch.Generator().manual_seed(3)
    feats = torch.randn(40, 8, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (40,), generator=g)
    theta = feats @ feats.T + label_features(y, 5) @ label_features(y, 5).T
    base = kcc(theta, y, 5)
    assert kcc(37.0 * theta, y, 5) == pytest.approx(base, rel=1e-9)  # scale (normalize=True)
    perm = torch.randperm(40, generator=g)
    assert kcc(theta[perm][:, perm], y[perm], 5) == pytest.approx(base, rel=1e-9)  # sample order
    relabel = torch.tensor([3, 0, 4, 1, 2])
    assert kcc(theta, relabel[y], 5) == pytest.approx(base, rel=1e-9)  # class names
    assert kcc(theta + 5.0, y, 5) == pytest.approx(base, rel=1e-9)  # constant offset: centring
    assert 0.0 <= base <= 1.0
    assert kcc(37.0 * theta, y, 5, normalize=False) != pytest.approx(kcc(theta, y, 5, normalize=False))


def test_degenerate_kernels_score_worst():
    y = torch.arange(8) % 2
    assert kcc(torch.ones(8, 8, dtype=torch.float64), y, 2) == KCC_WORST
    bad = torch.eye(8, dtype=torch.float64)
    bad[0, 0] = math.nan
    assert kcc(bad, y, 2) == KCC_WORST


def test_kcc_metric_on_a_network_is_seeded_and_bounded():
    net = small_convnet()
    g = torch.Generator().manual_seed(0)
    batch = Batch(torch.randn(16, 3, 8, 8, generator=g), torch.arange(16) % 5, 5)
    metric = get_metric("kcc", eps=0.1)
    value = metric(net, batch)
    assert 0.0 < value < 1.0
    assert metric(net, batch) == value


def test_constant_network_scores_worst():
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    with torch.no_grad():
        net[1].weight.zero_()
    net[1].weight.requires_grad_(False)  # only the bias learns: Theta is constant, centred to 0
    batch = Batch(torch.randn(8, 3, 2, 2), torch.arange(8) % 3, 3)
    assert get_metric("kcc")(net, batch) == KCC_WORST
