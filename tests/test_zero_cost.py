"""Zero-cost proxies, NASWOT and cost metrics: closed-form answers on tiny models, no side effects,
degenerate networks."""
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from searchkit.data.base import Batch
from searchkit.metrics import DegenerateNetworkWarning, Metric, get_metric, parse_metric
from searchkit.metrics.base import score_metrics
from searchkit.metrics.cost import count_macs
from searchkit.metrics.naswot import NASWOT_WORST, hamming_kernel
from searchkit.metrics import zero_cost
from searchkit.metrics.zero_cost import NONNEGATIVE_WORST, UNBOUNDED_WORST, without_batchnorm
from searchkit.spaces import get_space

ZERO_COST = ["grad_norm", "snip", "grasp", "fisher", "synflow", "jacob_cov", "naswot"]
ALL = ZERO_COST + ["params", "flops"]


def linear_batch(m: int = 6, d: int = 4, classes: int = 3, seed: int = 0) -> tuple[nn.Linear, Batch]:
    g = torch.Generator().manual_seed(seed)
    lin = nn.Linear(d, classes, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(classes, d, generator=g))
    x = torch.randn(m, d, generator=g)
    y = torch.randint(classes, (m,), generator=g)
    return lin, Batch(x, y, classes)


def softmax_regression(lin: nn.Linear, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """W: (c, d), p: (m, c) softmax outputs, G = dL/dW for L = mean CE, all by hand (float64)."""
    w = lin.weight.detach().double()
    x = batch.x.double()
    p = torch.softmax(x @ w.T, dim=1)
    r = p - nn.functional.one_hot(batch.y, w.shape[0]).double()
    return w, p, r.T @ x / x.shape[0]


def small_convnet() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 5),
    )


def image_batch(m: int = 8, size: int = 8, classes: int = 5) -> Batch:
    g = torch.Generator().manual_seed(1)
    return Batch(torch.randn(m, 3, size, size, generator=g), torch.randint(classes, (m,), generator=g), classes)


# --- known answers --------------------------------------------------------------------------


def test_params_of_a_linear_layer():
    assert get_metric("params")(nn.Linear(5, 3), Batch(torch.zeros(2, 5), torch.zeros(2, dtype=torch.long), 3)) \
        == pytest.approx(18e-6)


def test_flops_of_a_single_conv_and_linear():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    assert count_macs(conv, (3, 10, 10)) == 8 * 10 * 10 * 3 * 9
    strided = nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2)
    assert count_macs(strided, (4, 10, 10)) == 8 * 5 * 5 * 2 * 9
    batch = Batch(torch.zeros(4, 3, 10, 10), torch.zeros(4, dtype=torch.long), 2)
    net = nn.Sequential(conv, nn.Flatten(), nn.Linear(800, 2))
    assert get_metric("flops")(net, batch) == pytest.approx((21600 + 1600) / 1e6)


def test_grad_norm_and_snip_of_softmax_regression():
    lin, batch = linear_batch()
    w, _, grad = softmax_regression(lin, batch)
    assert get_metric("grad_norm")(lin, batch) == pytest.approx(float(grad.norm()), rel=1e-5)
    assert get_metric("snip")(lin, batch) == pytest.approx(float((w * grad).abs().sum()), rel=1e-5)


def test_grasp_of_softmax_regression():
    """H g = 1/m sum_n (diag(p_n) - p_n p_n^T) G x_n x_n^T for L = mean CE of softmax(W x)."""
    lin, batch = linear_batch()
    w, p, grad = softmax_regression(lin, batch)
    x = batch.x.double()
    hg = sum((torch.diag(p[n]) - torch.outer(p[n], p[n])) @ grad @ torch.outer(x[n], x[n]) for n in range(len(x)))
    hg = hg / len(x)
    assert get_metric("grasp")(lin, batch) == pytest.approx(float(-(w * hg).sum()), rel=1e-4)


@pytest.mark.parametrize("by_fan_in", [True, False])
def test_fisher_of_a_linear_layer(by_fan_in):
    """a = W x + b, dL/da = (p - onehot) / m, Delta_k = 1/(2m) sum_n (a_nk dL/da_nk)^2."""
    lin, batch = linear_batch()
    lin.bias = nn.Parameter(torch.linspace(-1, 1, 3))
    a = (batch.x @ lin.weight.T + lin.bias).detach().double()
    p = torch.softmax(a, dim=1)
    grad = (p - nn.functional.one_hot(batch.y, 3).double()) / len(a)
    delta = 0.5 * (a * grad).pow(2).mean(0)
    expected = float(delta.sum()) * (4 if by_fan_in else 1)
    assert get_metric("fisher", weight_by_fan_in=by_fan_in)(lin, batch) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("with_bn", [False, True])
def test_synflow_of_a_linear_chain_is_depth_times_path_sum(with_bn):
    """With |W| and a ones input, every weight layer's sum of theta dR/dtheta equals R itself, so
    synflow = L * 1^T |W_L| ... |W_1| 1 (BN is removed, ReLU passes the positive signal)."""
    torch.manual_seed(0)
    layers = [nn.Linear(5, 4, bias=False), nn.ReLU(), nn.Linear(4, 3, bias=False), nn.ReLU(), nn.Linear(3, 2)]
    if with_bn:
        layers.insert(1, nn.BatchNorm1d(4))
    net = nn.Sequential(*layers)
    weights = [m.weight.detach().double().abs() for m in net if isinstance(m, nn.Linear)]
    ones = torch.ones(5, dtype=torch.float64)
    path_sum = float(ones[:2] @ weights[2] @ weights[1] @ weights[0] @ ones)
    batch = Batch(torch.randn(7, 5), torch.zeros(7, dtype=torch.long), 2)
    assert get_metric("synflow")(net, batch) == pytest.approx(3 * path_sum, rel=1e-12)


class HalfSquare(nn.Module):
    """f(x) = |x|^2 / 2 per sample, so the input Jacobian row of sample n is x_n."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x.pow(2).flatten(1).sum(1, keepdim=True)


def test_jacob_cov_of_a_known_jacobian():
    x = torch.randn(10, 3, 4, 4, generator=torch.Generator().manual_seed(3))
    corr = np.corrcoef(x.reshape(10, -1).double().numpy())
    lam = np.linalg.eigvalsh(corr) + 1e-5
    expected = -np.sum(np.log(lam) + 1 / lam)
    assert get_metric("jacob_cov")(HalfSquare(), Batch(x, torch.zeros(10, dtype=torch.long), 2)) \
        == pytest.approx(expected, rel=1e-6)


def test_hamming_kernel_is_units_minus_hamming_distance():
    codes = torch.rand(7, 30, generator=torch.Generator().manual_seed(0)) > 0.5
    brute = torch.tensor([[30 - (a != b).sum() for b in codes] for a in codes], dtype=torch.float64)
    assert torch.equal(hamming_kernel(codes), brute)


def test_naswot_of_distinct_codes_and_of_identical_codes():
    """One ReLU sees x directly: codes are sign patterns of the rows of x."""
    net = nn.Sequential(nn.Identity(), nn.ReLU())
    x = torch.tensor([[1.0, 1.0, 1.0], [1.0, -1.0, -1.0], [-1.0, 1.0, -1.0]])
    k = torch.tensor([[3.0, 1.0, 1.0], [1.0, 3.0, 1.0], [1.0, 1.0, 3.0]])  # N_A = 3 minus Hamming distances
    batch = Batch(x, torch.zeros(3, dtype=torch.long), 2)
    assert get_metric("naswot")(net, batch) == pytest.approx(math.log(abs(float(torch.det(k)))))
    same = Batch(torch.ones(3, 3), torch.zeros(3, dtype=torch.long), 2)  # K_H = 3 * ones: rank 1
    with pytest.warns(DegenerateNetworkWarning):
        assert get_metric("naswot")(net, same) == NASWOT_WORST


# --- no side effects, determinism ---------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("training", [True, False])
def test_metric_leaves_the_network_untouched_and_is_deterministic(name, training):
    net = small_convnet()
    net.train(training)
    net[1].eval()  # mixed flags must come back as they were
    flags = [m.training for m in net.modules()]
    state = {k: v.clone() for k, v in net.state_dict().items()}
    batch = image_batch()
    metric = get_metric(name)
    first, second = metric(net, batch), metric(net, batch)
    assert first == second and math.isfinite(first)
    assert [m.training for m in net.modules()] == flags
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())


@pytest.mark.parametrize("name", ALL)
def test_metrics_follow_the_protocol(name):
    metric = get_metric(name)
    assert isinstance(metric, Metric) and metric.name == name and math.isfinite(metric.worst)


def test_loss_gradient_proxies_share_one_pass_and_score_as_alone():
    """grad_norm, snip, grasp and fisher (both fisher options) scored together run one forward and give
    exactly what each gives alone: grasp's second backward goes through the shared pass's graph."""
    net, batch = small_convnet(), image_batch()
    specs = ["grad_norm", "snip", "grasp", "fisher", "fisher:weight_by_fan_in=false"]
    metrics = {spec: parse_metric(spec) for spec in specs}
    alone = {label: metric(net, batch) for label, metric in metrics.items()}
    forwards = []
    net.register_forward_hook(lambda *_: forwards.append(1))
    together = score_metrics(net, batch, metrics)
    assert len(forwards) == 1
    assert {label: value for label, (value, _) in together.items()} == alone
    assert len(set(alone.values())) == 5


def test_the_shared_pass_keeps_its_graph_only_for_grasp(monkeypatch):
    taken = []
    original = zero_cost.loss_gradients
    monkeypatch.setattr(zero_cost, "loss_gradients",
                        lambda net, batch, create_graph=False: (taken.append(create_graph),
                                                                original(net, batch, create_graph))[1])
    net, batch = small_convnet(), image_batch()
    score_metrics(net, batch, {spec: parse_metric(spec) for spec in ["grad_norm", "snip", "fisher"]})
    assert taken == [False]
    score_metrics(net, batch, {spec: parse_metric(spec) for spec in ["grad_norm", "grasp"]})  # grasp second
    assert taken == [False, True]


def test_without_batchnorm_copies():
    net = small_convnet()
    clone = without_batchnorm(net)
    assert isinstance(net[1], nn.BatchNorm2d) and isinstance(clone[1], nn.Identity)
    assert clone[0].weight is not net[0].weight


# --- degenerate networks ------------------------------------------------------------------------

WORST = {"grad_norm": NONNEGATIVE_WORST, "snip": NONNEGATIVE_WORST, "grasp": UNBOUNDED_WORST,
         "fisher": NONNEGATIVE_WORST, "synflow": NONNEGATIVE_WORST, "jacob_cov": UNBOUNDED_WORST,
         "naswot": NASWOT_WORST}


def tiny_nb201(arch: str) -> nn.Module:
    space = get_space("nb201")
    torch.manual_seed(0)
    return space.build(space.decode(arch), 5, C=4, N=1)


@pytest.mark.parametrize("name", [n for n in ZERO_COST if n != "fisher"])
def test_all_none_cells_score_worst_with_a_warning(name):
    net = tiny_nb201("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    with pytest.warns(DegenerateNetworkWarning):
        assert get_metric(name)(net, image_batch()) == WORST[name]


def test_fisher_of_all_none_cells_is_the_classifier_bias_term_only():
    """Only the classifier's output (its bias) carries act * grad; far below any real cell."""
    batch = image_batch()
    dead = get_metric("fisher")(tiny_nb201("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"), batch)
    conv = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|nor_conv_3x3~2|"
    live = get_metric("fisher")(tiny_nb201(conv), batch)
    assert 0 < dead < live / 10


@pytest.mark.parametrize("name", ZERO_COST)
def test_nan_weights_score_worst_with_a_warning(name):
    net = small_convnet()
    with torch.no_grad():
        net[3].weight.fill_(math.nan)
    with pytest.warns(DegenerateNetworkWarning):
        assert get_metric(name)(net, image_batch()) == WORST[name]


def test_metrics_score_a_real_cell_without_warnings():
    net = tiny_nb201("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ALL:
            assert math.isfinite(get_metric(name)(net, image_batch(m=16)))
