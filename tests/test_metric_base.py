"""The metric base class: one spec syntax, typed options checked at construction, the store key,
the batch check, the degenerate-network guard, the out-of-memory fallback, differentiable forms."""
import math
from unittest import mock

import pytest
import torch
from torch import nn

from searchkit.data.base import Batch
from searchkit.errors import SearchkitError
from searchkit.metrics import METRICS, DegenerateNetworkWarning, get_metric, parse_metric
from searchkit.metrics.kcc import kcc


def batch(m=8, classes=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return Batch(torch.randn(m, 3, 8, 8, generator=generator), torch.arange(m) % classes, classes)


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 2))


def test_specs_carry_typed_options():
    metric = parse_metric("kcc:eps=0.5:bn=eval:normalize=false")
    assert (metric.eps, metric.bn, metric.normalize) == (0.5, "eval", False)
    assert parse_metric("kcc:eps=1").eps == 1.0 and isinstance(parse_metric("kcc:eps=1").eps, float)
    assert parse_metric("kcc", {"eps": 0.5}) == get_metric("kcc", eps=0.5)


@pytest.mark.parametrize("spec,fragment", [
    ("kcc:eps", "options are written name:key=value"),
    ("kcc:colour=1", "metric 'kcc' has no option 'colour'; its options are: bn, output, chunk_size, eps"),
    ("kcc:eps=abc", "metric 'kcc' option eps must be a number, got 'abc'"),
    ("kcc:bn=bogus", "metric 'kcc' option bn must be one of 'train', 'batchstats', 'eval', got 'bogus'"),
    ("kcc:eps=-1", "eps must be > 0"),
    ("kcc:normalize=3", "option normalize must be true/false"),
    ("snip:worst=5.0", "metric 'snip' has no option 'worst'"),   # worst is the metric's, not an option
    ("fisher:name=x", "has no option 'name'"),
    ("linear_regions:n_pairs=0", "n_pairs >= 1"),
    ("accuracy", "unknown metric 'accuracy'"),
    ("", "a metric is written name[:key=value...]"),
])
def test_bad_specs_are_one_line_errors(spec, fragment):
    with pytest.raises(SearchkitError) as err:
        parse_metric(spec)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_an_option_given_twice_is_refused():
    with pytest.raises(SearchkitError, match="given twice"):
        parse_metric("kcc:eps=0.1", {"eps": 0.2})


def test_store_key_holds_every_value_option_and_no_memory_option():
    assert get_metric("kcc").key() == get_metric("kcc", eps=0.0001).key() == get_metric("kcc", chunk_size=3).key()
    assert get_metric("kcc", eps=0.5).key() != get_metric("kcc").key()
    assert get_metric("params").key() == ("params", "{}")
    name, options = get_metric("kcc").key()
    assert name == "kcc" and "chunk_size" not in options and '"eps":0.0001' in options


def test_every_metric_declares_its_quantity_and_worst():
    for name in METRICS.names():
        cls = METRICS.get(name)
        assert cls.name == name and cls.quantity, name
        assert not math.isnan(cls.worst), name


def test_batches_a_metric_cannot_use_are_refused():
    with pytest.raises(SearchkitError, match="metric 'kcc' needs a scoring batch of at least 1 examples from at "
                                             "least 2 classes; this one has 4 from 1"):
        get_metric("kcc").check_batch(batch(4, classes=1))
    with pytest.raises(SearchkitError, match="at least 2 examples .* this one has 1 from 1"):
        get_metric("jacob_cov").check_batch(batch(1, classes=1))
    with pytest.raises(SearchkitError, match="at least 8 examples"):
        get_metric("linear_regions").check_batch(batch(4))
    get_metric("kcc").check_batch(batch(4))
    get_metric("synflow").check_batch(batch(1, classes=1))


def test_non_finite_scores_become_the_worst_with_a_warning():
    metric = get_metric("kcc")
    with mock.patch.object(type(metric), "compute", return_value=math.nan), pytest.warns(DegenerateNetworkWarning):
        assert metric(small_net(), batch()) == metric.worst


def test_cpu_out_of_memory_is_a_clear_error():
    metric = get_metric("synflow")
    with mock.patch.object(type(metric), "compute", side_effect=RuntimeError("DefaultCPUAllocator: can't allocate memory")):
        with pytest.raises(SearchkitError, match="out of memory computing synflow on a batch of 8; lower data.batch_size"):
            metric(small_net(), batch())
    with mock.patch.object(type(metric), "compute", side_effect=RuntimeError("some other bug")):
        with pytest.raises(RuntimeError, match="some other bug"):
            metric(small_net(), batch())


def test_differentiable_kcc_is_the_metric_and_has_a_gradient():
    net, b = small_net(), batch(8, classes=2)
    metric = get_metric("kcc", eps=0.01)
    scale = torch.ones((), requires_grad=True)

    class Scaled(nn.Module):  # the output depends on `scale` like a supernet's on its weights
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x * scale)

    value = metric.differentiable(Scaled(), b)
    assert float(value.detach()) == pytest.approx(metric(net, b), rel=1e-6)
    (grad,) = torch.autograd.grad(value, scale)
    assert torch.isfinite(grad)
    assert get_metric("ntk_trace").offers_gradient() and not get_metric("synflow").offers_gradient()
    with pytest.raises(SearchkitError, match="'synflow' has no differentiable form; NASI can optimise kcc, ntk_trace"):
        get_metric("synflow").differentiable(net, b)


def test_kcc_closed_form_is_unchanged_for_the_default_options():
    """The committed scores were made by the eigendecomposition form: the solve form equals it."""
    generator = torch.Generator().manual_seed(3)
    j = torch.randn(16, 40, generator=generator, dtype=torch.float64)
    y = torch.arange(16) % 4
    theta = j @ j.T
    k = theta - theta.mean(0) - theta.mean(1, keepdim=True) + theta.mean()
    k = k / (torch.trace(k) / 16)
    values, vectors = torch.linalg.eigh(k)
    keep = values > 1e-10 * values.max()
    hy = torch.nn.functional.one_hot(y, 4).double()
    hy = hy - hy.mean(0)
    q, s, _ = torch.linalg.svd(hy, full_matrices=False)
    q, s2 = q[:, s > 1e-5], s[s > 1e-5] ** 2
    s2 = s2 / (s2.sum() / 16)
    r = 16 * 1e-4
    core = torch.sqrt(values[keep] / (values[keep] + r))[:, None] * (vectors[:, keep].T @ q) * torch.sqrt(s2 / (s2 + r))
    assert kcc(theta, y, 4) == pytest.approx(float(torch.linalg.matrix_norm(core, ord=2)), rel=1e-12)
