"""The fast NTK (one batched forward + backward, per-layer contractions) against the reference
``vmap(jacrev)`` Jacobian, in float64 to 1e-8 relative; fallbacks for what it cannot do exactly."""
from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from searchkit.data.base import Batch
from searchkit.errors import SearchkitError
from searchkit.metrics import get_metric
from searchkit.metrics import ntk as ntk_module
from searchkit.metrics import ntk_fast
from searchkit.metrics.kcc import kcc
from searchkit.metrics.ntk import empirical_ntk, robust_ntk
from searchkit.metrics.ntk_contractions import per_sample_conv_weight_grad
from searchkit.metrics.base import score_metrics
from searchkit.spaces import get_space

pytestmark = pytest.mark.usefixtures("one_thread")

MODES = [(bn, output) for bn in ("batchstats", "eval") for output in ("sum", "trace", "label", "centred")]
MIXED_GENOTYPE = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('dil_conv_5x5', 1), ('skip_connect', 0), ('avg_pool_3x3', 2), "
    "('max_pool_3x3', 1), ('sep_conv_5x5', 3), ('dil_conv_3x3', 4), ('max_pool_3x3', 0)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('skip_connect', 0), ('sep_conv_3x3', 1), ('dil_conv_3x3', 0), ('skip_connect', 2), "
    "('avg_pool_3x3', 1), ('skip_connect', 3), ('sep_conv_5x5', 4), ('max_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])"
)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def mixed_convnet(classes: int = 5) -> nn.Module:
    """Every conv flavour: BN-fused with and without bias, groups + dilation, stride, 1x1 with bias
    and no BN, a BN after a non-conv, a non-affine BN, BatchNorm1d after a Linear."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, 6, 3, padding=2, dilation=2, groups=3, bias=False), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, 4, 1, stride=2), nn.ReLU(), nn.AvgPool2d(2), nn.BatchNorm2d(4),
        nn.Conv2d(4, 4, (2, 1), stride=(1, 2), padding=(1, 0)), nn.BatchNorm2d(4, affine=False), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 7), nn.BatchNorm1d(7), nn.ReLU(), nn.Linear(7, classes),
    ).double()


def data(m: int = 9, classes: int = 5, shape=(3, 8, 8)) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(m, *shape, generator=g, dtype=torch.float64), torch.arange(m) % classes


@pytest.mark.parametrize("bn,output", MODES)
def test_fast_equals_reference_on_every_layer_kind(bn, output):
    net, (x, y) = mixed_convnet(), data()
    ref = empirical_ntk(net, x, bn=bn, output=output, y=y, method="reference")
    assert rel(empirical_ntk(net, x, bn=bn, output=output, y=y, method="fast"), ref) < 1e-8


def test_centred_logit_ntk_is_the_trace_minus_the_summed_logit_ntk_over_c():
    """sum_k <d(Pf)_k, d(Pf)_k> = tr(J^T P J) with P = I - 11^T / c: the trace NTK minus the NTK of
    the summed logits over c, by both paths (the fast path uses c - 1 orthonormal directions)."""
    net, (x, _) = mixed_convnet(), data()
    for method in ("fast", "reference"):
        trace, total = (empirical_ntk(net, x, output=o, method=method) for o in ("trace", "sum"))
        assert rel(empirical_ntk(net, x, output="centred", method=method), trace - total / 5) < 1e-10
    basis = torch.stack([u[0] for u in ntk_fast.centred_basis(5, torch.float64, torch.device("cpu"))], 1)
    assert torch.allclose(basis.T @ basis, torch.eye(4, dtype=torch.float64))
    assert torch.allclose(basis.sum(0), torch.zeros(4, dtype=torch.float64), atol=1e-12)


def test_large_batch_fast_ntk_equals_the_reference():
    """m = 256 (issue 28: large batches), whole and in chunks."""
    net = mixed_convnet()
    x, y = data(256, shape=(3, 6, 6))
    ref = empirical_ntk(net, x, method="reference")
    assert rel(empirical_ntk(net, x, method="fast"), ref) < 1e-8
    assert rel(empirical_ntk(net, x, method="fast", chunk_size=128), ref) < 1e-8


@pytest.mark.parametrize("contraction", ["explicit", "gram"])
def test_both_contractions_give_the_same_theta(contraction):
    torch.manual_seed(0)  # no BN after the convs, so every conv takes the forced contraction
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 1, stride=2, groups=2, bias=False),
                        nn.ReLU(), nn.Conv2d(6, 4, 3, stride=2, padding=2, dilation=2, groups=2), nn.ReLU(),
                        nn.Flatten(), nn.Linear(16, 3)).double()
    x, _ = data(m=6)
    ref = empirical_ntk(net, x, method="reference")
    assert rel(ntk_fast.fast_ntk(net, x, contraction=contraction), ref) < 1e-8


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("method", ["grouped", "shifted", "auto"])
@pytest.mark.parametrize("c_in,c_out,kernel,padding,dilation,groups,stride", [
    (4, 6, 3, 1, 1, 1, 1), (4, 4, 3, 2, 2, 4, 1), (6, 4, 5, 2, 1, 2, 1), (3, 5, (3, 1), (1, 0), 1, 1, 1),
    (4, 4, 3, 0, 1, 1, 1), (4, 6, 3, 1, 1, 2, 2), (4, 4, 1, 0, 1, 2, 2)])
def test_per_sample_conv_gradients_equal_autograd_per_sample(layout, method, c_in, c_out, kernel, padding, dilation,
                                                            groups, stride):
    torch.manual_seed(0)
    conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups).double()
    a = torch.randn(3, c_in, 6, 7, dtype=torch.float64).contiguous(memory_format=layout)
    delta = torch.randn_like(conv(a)).contiguous(memory_format=layout)
    expected = torch.stack([torch.autograd.grad((conv(a[i:i + 1]) * delta[i:i + 1]).sum(), conv.weight)[0]
                            for i in range(3)]).reshape(3, c_out, -1)
    assert torch.allclose(per_sample_conv_weight_grad(conv, a, delta, method), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("contraction", ["explicit", "gram"])
def test_linear_on_sequences_sums_over_positions(contraction):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2), nn.Flatten(), nn.Linear(10, 3)).double()
    x, y = data(m=7, classes=3, shape=(5, 4))
    ref = empirical_ntk(net, x, output="label", y=y, method="reference")
    assert rel(ntk_fast.fast_ntk(net, x, output="label", y=y, contraction=contraction), ref) < 1e-8


@pytest.mark.parametrize("space_name,text,build", [
    ("nb201", "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
     {"C": 4, "N": 1}),
    ("darts", MIXED_GENOTYPE, {"C": 4, "layers": 3}),
])
@pytest.mark.parametrize("bn", ["batchstats", "eval"])
def test_fast_equals_reference_on_search_space_cells(space_name, text, build, bn):
    space = get_space(space_name)
    torch.manual_seed(0)
    net = space.build(space.decode(text), 10, **build).double()
    x, y = data(m=6, classes=10)
    for output in ("sum", "label"):
        ref = empirical_ntk(net, x, bn=bn, output=output, y=y, method="reference")
        assert rel(empirical_ntk(net, x, bn=bn, output=output, y=y, method="fast"), ref) < 1e-8


def test_channels_last_batches_give_the_same_theta():
    net, (x, y) = mixed_convnet(), data()
    ref = empirical_ntk(net, x, output="label", y=y, method="reference")
    assert rel(empirical_ntk(net, x.contiguous(memory_format=torch.channels_last), output="label", y=y,
                             method="fast"), ref) < 1e-8


class Doubled(nn.Module):
    def __init__(self, in_place: bool) -> None:
        super().__init__()
        self.in_place = in_place

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul_(2.0) if self.in_place else x * 2.0


def test_a_relu_output_changed_in_place_is_held_as_it_is():
    # the conv's input is relu(x) * 2, not relu(x): the pass must keep it rather than recompute relu
    # (plain autograd refuses the in-place version, so the reference runs the out-of-place twin)
    def net(in_place: bool) -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), Doubled(in_place), nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).double()

    x, _ = data(m=6)
    ref = empirical_ntk(net(False), x, method="reference")
    assert rel(empirical_ntk(net(True), x, method="fast"), ref) < 1e-8


def test_chunks_change_memory_not_theta():
    net, (x, y) = mixed_convnet(), data(m=10)
    for bn, output in (("batchstats", "label"), ("eval", "sum")):
        whole = empirical_ntk(net, x, bn=bn, output=output, y=y, method="fast")
        for chunk in (1, 4, 7):
            chunked = empirical_ntk(net, x, bn=bn, output=output, y=y, chunk_size=chunk, method="fast")
            assert rel(chunked, whole) < 1e-10


def test_fast_path_leaves_the_network_as_it_was():
    net, (x, _) = mixed_convnet(), data()
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    empirical_ntk(net, x, method="fast")
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(m.training for m in net.modules())
    assert not any("forward" in m.__dict__ or m._forward_hooks for m in net.modules())
    assert all(p.grad is None for p in net.parameters())


class Scale(nn.Module):
    """A parametrised module the fast path does not know."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.linspace(0.5, 1.5, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.alpha.view(1, -1, 1, 1)


class Tied(nn.Module):
    """The classifier's weight is read a second time outside its module."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        return self.head(h) + F.linear(h.tanh(), self.head.weight)


class Reused(nn.Module):
    """One convolution called twice (its parameters get two uses)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(torch.relu(self.conv(x))))


class ConvOutputTwice(nn.Module):
    """A convolution's output feeds its BN and a skip connection."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        return self.head(self.bn(h) + h)


class Gated(nn.Module):
    """Features scaled by a tensor that requires grad but is not a parameter (as NASI's supernet
    mixes ops with weights derived from its architecture parameters)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 4))
        self.gate = torch.linspace(0.5, 1.0, 4).requires_grad_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x) * self.gate.view(1, -1, 1, 1).to(x.dtype))


def unsupported_nets() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    head = [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 4)]
    return {
        "unknown parametrised module": nn.Sequential(nn.Conv2d(3, 4, 3), Scale(4), nn.ReLU(), *head),
        "GroupNorm": nn.Sequential(nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4), *head),
        "BN without running statistics": nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, track_running_stats=False), *head),
        "reflect padding": nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), *head),
        "tied weight": Tied(),
        "module called twice": Reused(),
        "conv output used twice": ConvOutputTwice(),
        "tensor requiring grad besides x": Gated(),
    }


@pytest.mark.parametrize("case", list(unsupported_nets()))
def test_what_the_fast_path_cannot_do_falls_back_to_the_reference(case):
    net = unsupported_nets()[case].double()
    x, y = data(m=6, classes=4)
    ref = empirical_ntk(net, x, output="label", y=y, method="reference")
    with pytest.raises(SearchkitError, match="the fast NTK cannot"):
        empirical_ntk(net, x, output="label", y=y, method="fast")
    assert torch.equal(empirical_ntk(net, x, output="label", y=y), ref)  # auto: the reference, exactly
    assert not any("forward" in m.__dict__ or m._forward_hooks for m in net.modules())


def test_train_mode_bn_and_bad_options_are_refused():
    net, (x, _) = mixed_convnet(), data()
    with pytest.raises(SearchkitError, match="couples the samples"):
        empirical_ntk(net, x, bn="train", method="fast")
    with pytest.raises(SearchkitError, match="output='label' needs"):
        empirical_ntk(net, x, output="label")
    with pytest.raises(SearchkitError, match="method must be one of"):
        empirical_ntk(net, x, method="jacobian")


def test_out_of_memory_halves_the_chunk_and_keeps_theta():
    net, (x, _) = mixed_convnet(), data(m=12)
    real = ntk_fast._theta_pass
    sizes = []

    def small_only(net, x, *args):
        sizes.append(x.shape[0])
        if x.shape[0] > 4:
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")
        return real(net, x, *args)

    whole = empirical_ntk(net, x, method="fast")
    with mock.patch.object(ntk_fast, "_theta_pass", small_only):
        theta = robust_ntk(net, x, "batchstats", "sum")
    assert sizes[:2] == [12, 6] and set(sizes[2:]) == {2}  # chunks 12, 6 (blocks of 3), 3 (blocks of 1)
    assert rel(theta, whole) < 1e-10


def test_label_ntk_metric_shares_one_theta_and_matches_kcc_of_the_reference():
    net = mixed_convnet().float()
    x, y = data(m=12)
    b = Batch(x.float(), y, 5)
    metric = get_metric("kcc", output="label")
    with mock.patch.object(ntk_module, "empirical_ntk", wraps=ntk_module.empirical_ntk) as spy:
        shared = score_metrics(net, b, {"kcc": metric, "trace": get_metric("ntk_trace", output="label")})
    assert spy.call_count == 1
    expected = kcc(empirical_ntk(net.double(), x, output="label", y=y, method="reference"), y, 5)
    assert shared["kcc"][0] == pytest.approx(expected, rel=1e-4)
    assert metric(net.float(), b) == pytest.approx(shared["kcc"][0], rel=1e-12)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("bn,output", [("batchstats", "sum"), ("eval", "label"), ("batchstats", "trace")])
def test_fast_ntk_on_cuda_equals_the_cpu_reference(bn, output):
    net, (x, y) = mixed_convnet(), data()
    ref = empirical_ntk(net, x, bn=bn, output=output, y=y, method="reference")
    theta = empirical_ntk(net.cuda(), x.cuda(), bn=bn, output=output, y=y.cuda(), method="fast")
    assert theta.device.type == "cuda" and rel(theta.cpu(), ref) < 1e-8
