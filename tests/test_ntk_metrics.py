"""NTK metrics (and the gradient-norm and linear-region metrics beside them): analytic values, sharing one NTK, loss-gradient identities, line crossings."""
import math
from unittest import mock

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from searchkit.data.base import Batch
from searchkit.metrics import get_metric
from searchkit.metrics import ntk as ntk_module
from searchkit.metrics.kcc import label_features
from searchkit.metrics.base import score_metrics
from searchkit.metrics.ntk_metrics import (COND_CAP, HSIC, KTA, NTKCond, NTKEigMin, NTKSpectralEntropy, NTKTrace,
                                          condition_number, spectral_entropy)


def convnet(classes: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, classes))


def batch(m: int = 12, classes: int = 4) -> Batch:
    g = torch.Generator().manual_seed(1)
    return Batch(torch.randn(m, 3, 6, 6, generator=g), torch.arange(m) % classes, classes)


def test_spectral_metrics_on_a_known_matrix():
    eig = torch.tensor([0.5, 1.0, 2.0, 8.0], dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    theta = q @ torch.diag(eig) @ q.T
    b = Batch(torch.zeros(4, 1), torch.tensor([0, 1, 0, 1]), 2)
    assert NTKTrace().from_ntk(theta, b) == pytest.approx(math.sqrt(11.5 / 4))  # seed 003 eq. 4
    assert NTKCond().from_ntk(theta, b) == pytest.approx(-16.0)
    assert NTKEigMin().from_ntk(theta, b) == pytest.approx(0.5 / 4)
    singular = torch.diag(torch.tensor([1.0, 0.0, 2.0], dtype=torch.float64))
    assert condition_number(singular) == pytest.approx(COND_CAP)


def test_spectral_entropy_on_known_spectra():
    q, _ = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    eig = torch.tensor([0.0, 1.0, 1.0, 2.0], dtype=torch.float64)  # p = 0, 1/4, 1/4, 1/2
    theta = q @ torch.diag(eig) @ q.T
    assert spectral_entropy(theta, centred=False) == pytest.approx(1.5 * math.log(2) / math.log(4))
    assert spectral_entropy(torch.eye(5, dtype=torch.float64), centred=False) == pytest.approx(1.0)
    v = torch.randn(5, 1, dtype=torch.float64)
    assert spectral_entropy(v @ v.T, centred=False) == pytest.approx(0.0, abs=1e-12)  # rank one
    centred = torch.eye(5, dtype=torch.float64) - 1 / 5  # H: m - 1 equal eigenvalues, one 0
    assert spectral_entropy(torch.eye(5, dtype=torch.float64) + 7.0) == pytest.approx(math.log(4) / math.log(5))
    assert spectral_entropy(centred, centred=False) == pytest.approx(math.log(4) / math.log(5))
    b = Batch(torch.zeros(4, 1), torch.tensor([0, 1, 0, 1]), 2)
    assert NTKSpectralEntropy(centred=False).from_ntk(3.0 * theta, b) == pytest.approx(spectral_entropy(theta, False))
    assert math.isnan(spectral_entropy(torch.zeros(3, 3, dtype=torch.float64)))


def test_alignment_metrics_on_the_label_kernel():
    y = torch.arange(20) % 4
    b = Batch(torch.zeros(20, 1), y, 4)
    hy = label_features(y, 4)
    assert KTA().from_ntk(hy @ hy.T, b) == pytest.approx(1.0)
    # K = L, both normalised to trace m with c-1 equal eigenvalues: tr(KL) = m^2 / (c-1)
    assert HSIC().from_ntk(hy @ hy.T, b) == pytest.approx(20**2 / 3 / 19**2)
    noise = torch.randn(20, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert abs(KTA().from_ntk(noise @ noise.T, b)) < 0.3
    assert KTA().from_ntk(5 * hy @ hy.T + 3, b) == pytest.approx(1.0)  # scale and offset invariant


def test_shared_ntk_is_computed_once_and_matches_single_calls():
    net, b = convnet(), batch()
    names = ["kcc", "ntk_trace", "ntk_cond", "ntk_eig_min", "hsic", "kta", "tenas"]
    metrics = {n: get_metric(n) for n in names}
    with mock.patch.object(ntk_module, "empirical_ntk", wraps=ntk_module.empirical_ntk) as spy:
        shared = score_metrics(net, b, metrics)
    assert spy.call_count == 1
    for name in names:
        assert shared[name][0] == pytest.approx(metrics[name](net, b), rel=1e-9)
        assert shared[name][1] > 0
    other = score_metrics(net, b, {"kcc": get_metric("kcc"), "eval": get_metric("kcc", bn="eval")})
    assert other["kcc"][0] != pytest.approx(other["eval"][0])


def per_sample_loss_grads(net: nn.Module, b: Batch, buffers: dict) -> torch.Tensor:
    params = {k: v.detach() for k, v in net.named_parameters()}

    def loss(p, x, y):
        return nn.functional.cross_entropy(functional_call(net, (p, buffers), (x[None],)), y[None])

    net.eval()
    g = vmap(grad(loss), in_dims=(None, 0, 0))(params, b.x, b.y)
    return torch.cat([v.reshape(b.x.shape[0], -1) for v in g.values()], 1).double()


def test_knas_is_the_mean_of_the_per_sample_gradient_gram_matrix():
    net, b = convnet(), batch()
    g = per_sample_loss_grads(net, b, ntk_module.batch_statistics(net, b.x))
    assert get_metric("knas")(net, b) == pytest.approx(float((g @ g.T).mean()), rel=1e-6)


def test_ntk_trace_approx_is_the_squared_norm_of_the_batch_gradient():
    net, b = convnet(), batch()
    net.train()
    loss = nn.functional.cross_entropy(net(b.x), b.y)
    expected = sum(float((g.double() ** 2).sum()) for g in torch.autograd.grad(loss, list(net.parameters())))
    assert get_metric("ntk_trace_approx")(net, b) == pytest.approx(expected, rel=1e-6)


def test_linear_regions_counts_boundary_crossings_of_a_known_layer():
    # One ReLU layer of unit i: sign(w_i . x). Along x0 -> x1 unit i flips iff w_i.x0 and w_i.x1
    # have opposite signs, exactly once (a line crosses a hyperplane at most once).
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 50, bias=False), nn.ReLU(), nn.Linear(50, 3))
    g = torch.Generator().manual_seed(3)
    x = torch.randn(8, 3, 2, 2, generator=g)
    b = Batch(x, torch.arange(8) % 3, 3)
    w = net[1].weight
    expected = sum(int(((w @ x[2 * k].flatten()) * (w @ x[2 * k + 1].flatten()) < 0).sum()) for k in range(4))
    metric = get_metric("linear_regions", n_points=400)
    assert metric(net, b) == pytest.approx(math.log1p(expected))


def test_metrics_leave_the_network_untouched():
    net, b = convnet(), batch()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    for name in ["ntk_trace", "linear_regions", "tenas", "knas", "ntk_trace_approx"]:
        get_metric(name)(net, b)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_ntk_retries_with_smaller_chunks_when_memory_runs_out():
    net, b = convnet(), batch()
    real = ntk_module.empirical_ntk
    chunks = []

    def flaky(net, x, bn, output, chunk_size, **options):
        chunks.append(chunk_size)
        if chunk_size > 3:
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")
        return real(net, x, bn=bn, output=output, chunk_size=chunk_size, **options)

    with mock.patch.object(ntk_module, "empirical_ntk", flaky):
        theta = ntk_module.robust_ntk(net, b.x, "batchstats", "sum")
    assert chunks == [12, 6, 3]
    assert torch.allclose(theta, real(net, b.x))
    with mock.patch.object(ntk_module, "empirical_ntk", side_effect=RuntimeError("shape mismatch")):
        with pytest.raises(RuntimeError, match="shape mismatch"):
            ntk_module.robust_ntk(net, b.x, "batchstats", "sum")


def test_every_registered_metric_survives_a_degenerate_network():
    from searchkit.spaces import get_space

    space = get_space("nb201")
    torch.manual_seed(0)
    net = space.build(space.decode("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"), 4, C=4, N=1)
    b = Batch(torch.randn(8, 3, 8, 8), torch.arange(8) % 4, 4)
    from searchkit.metrics import METRICS

    for name in METRICS.names():
        value = get_metric(name)(net, b)
        assert np.isfinite(value) or value == get_metric(name).worst, name
