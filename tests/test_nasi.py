"""NASI: supernet shapes, straight-through gradients, the trace approximation, differentiable KCC,
eq. 40/41 nu, and a full (tiny) search through the engine."""
import json

import numpy as np
import pytest
import torch

from searchkit import run_search
from searchkit.data import get_dataset, scoring_batch
from searchkit.errors import SearchkitError
from searchkit.metrics import parse_metric
from searchkit.metrics.loss_gradient import NTKTraceApprox, loss_gradient_sq_norm
from searchkit.spaces import get_space
from searchkit.spaces.nb201 import OPS, NB201Arch
from searchkit.rundir import RunDir
from searchkit.strategies import NASI, SearchContext
from searchkit.strategies.nasi import _Objective, adaptive_nu, gumbel_straight_through
from searchkit.spaces.nb201_supernet import NB201MixedCell, NB201SuperNet
from searchkit.spaces.supernet import SuperNet

SPACE = get_space("nb201")
SPLITS = get_dataset("synthetic", shape=[3, 8, 8], n_train=64, n_valid=0, n_test=16)
BATCH = scoring_batch(SPLITS, 16, 0)


pytestmark = pytest.mark.usefixtures("one_thread")


def supernet(seed=0):
    torch.manual_seed(seed)
    return NB201SuperNet(10, C=4, N=1)


def test_supernet_forward_backward_shapes():
    net = supernet()
    alpha = torch.zeros(6, 5, requires_grad=True)
    net.weights = gumbel_straight_through(alpha, torch.Generator().manual_seed(0))
    logits = net(BATCH.x)
    assert logits.shape == (16, 10)
    logits.sum().backward()
    assert alpha.grad.shape == (6, 5) and torch.isfinite(alpha.grad).all()
    assert all(p.grad is not None for p in net.stem.parameters())


def test_straight_through_sample_is_one_hot_and_gradient_reaches_the_logits():
    alpha = torch.zeros(6, 5, requires_grad=True)
    weights = gumbel_straight_through(alpha, torch.Generator().manual_seed(1))
    assert torch.allclose(weights.detach().sum(1), torch.ones(6))
    assert ((weights.detach() > 0.5).sum(1) == 1).all() and torch.allclose(weights.detach().max(1).values, torch.ones(6))
    net = supernet()
    net.weights = weights
    (grad,) = torch.autograd.grad(parse_metric("ntk_trace").differentiable(net, BATCH), alpha)
    assert grad.abs().sum() > 0  # the trace is differentiable w.r.t. the architecture logits


def test_the_trace_objective_is_nasis_trace_approximation_of_the_sampled_network():
    net = supernet()
    arch = NB201Arch(("nor_conv_3x3", "skip_connect", "nor_conv_1x1", "avg_pool_3x3", "none", "nor_conv_3x3"))
    net.weights = NB201SuperNet.weights_of(arch, torch.zeros(1))
    expected = NTKTraceApprox()(net, BATCH)  # eq. 11-12 on the same fixed network
    assert float(loss_gradient_sq_norm(net, BATCH, frozen_stats=False, create_graph=True).detach()) == pytest.approx(
        expected, rel=1e-5)
    assert float(parse_metric("ntk_trace").differentiable(net, BATCH).detach()) == pytest.approx(expected, rel=1e-5)


def test_nu_eq_40_is_the_mean_trace_of_sampled_archs_and_eq_41_the_running_mean():
    values = iter(np.arange(1.0, 51.0))
    objective = _Objective(lambda net, batch: torch.tensor(next(values)), True)
    strategy = NASI(SPACE, np.random.default_rng(0), nu_samples=50)
    nu = strategy.fixed_nu(supernet(), torch.zeros(6, 5), lambda: BATCH, torch.Generator().manual_seed(0), objective)
    assert nu == pytest.approx(25.5)  # eq. 40: (1 + ... + 50) / 50
    # eq. 41: nu_t = (nu_0 + sum_{tau < t} trace_tau) / t
    assert adaptive_nu(10.0, []) == 10.0
    assert adaptive_nu(10.0, [2.0, 4.0]) == pytest.approx(16.0 / 3)


def context(metric, options=None, build=None):
    return SearchContext(SPLITS, BATCH, torch.device("cpu"), parse_metric(metric, options), build or {})


def test_supernet_is_the_runs_network_unless_sized_explicitly():
    """Regression: the supernet was C=8, N=1 whatever the run scored and evaluated (C=16, N=5), and
    at that size the trace approximation ranks NB201 cells differently (pooling-heavy picks)."""
    strategy = NASI(SPACE, np.random.default_rng(0))
    assert strategy.supernet_size(context("ntk_trace")) == {"C": 16, "N": 5}  # the benchmark network
    assert strategy.supernet_size(context("ntk_trace", build={"C": 4, "N": 2})) == {"C": 4, "N": 2}
    assert NASI(SPACE, np.random.default_rng(0), C=2).supernet_size(context("ntk_trace", build={"C": 4, "N": 2})) == {
        "C": 2, "N": 2}
    net = strategy.supernet(context("ntk_trace", build={"C": 4, "N": 2}), seed=0)
    assert sum(isinstance(layer, NB201MixedCell) for layer in net.cells) == 3 * 2
    assert net.stem[0].out_channels == 4


def linear_objective(preferred: list[int], penalised: bool) -> _Objective:
    """A toy R(A) = sum_e c_e . w_e with c_e = 1 + 4 one_hot(preferred[e]): positive, like a trace,
    and largest for the preferred op of every edge."""
    c = 1.0 + 4.0 * torch.nn.functional.one_hot(torch.tensor(preferred), len(OPS)).double()
    return _Objective(lambda net, batch: toy_value(net, c), penalised)


def toy_value(net, c):
    """sum(c * weights) on the supernet; 0 on the selected architecture's own network."""
    return (net.weights.double() * c).sum() if isinstance(net, SuperNet) else torch.zeros((), dtype=torch.float64)


def toy_search(preferred, **options):
    strategy = NASI(SPACE, np.random.default_rng(0), steps=8, C=1, N=1, batch_size=4, exclude_ops=[], **options)
    strategy._objective = lambda ctx: linear_objective(preferred, penalised=True)
    arch, _ = strategy.search(context("ntk_trace"))
    return [OPS.index(op) for op in arch.ops]


def test_update_ascends_r_and_the_penalty_reverses_it_above_nu():
    """Eq. 13-18 on a toy objective: alpha moves up the gradient of R (NASI maximises R), so every
    edge selects the op with the larger objective; with mu = 2 and every sample above nu,
    R = 2 nu - trace and the preferred ops are avoided instead."""
    preferred = [4, 0, 3, 1, 2, 3]
    assert toy_search(preferred, nu0=1e9) == preferred
    assert toy_search(preferred, nu0=1e9, tau=5.0) == preferred
    avoided = toy_search(preferred, nu0=1e-9, mu=2.0)
    assert all(a != p for a, p in zip(avoided, preferred))


@pytest.mark.parametrize("metric,options", [("ntk_trace", {"nu": "fixed"}), ("ntk_trace", {"nu": "adaptive"}), ("kcc", {})])
def test_search_returns_a_valid_seeded_genotype(metric, options):
    def search(seed):
        strategy = NASI(SPACE, np.random.default_rng(seed), steps=3, nu_samples=2, C=2, N=1, batch_size=8, **options)
        return strategy.search(context(metric))

    arch, value = search(0)
    assert isinstance(arch, NB201Arch) and all(op in OPS for op in arch.ops) and np.isfinite(value)
    assert SPACE.decode(SPACE.encode(arch)) == arch
    assert search(0) == (arch, value)


def test_unsupported_objective_and_options_are_refused():
    strategy = NASI(SPACE, np.random.default_rng(0), steps=1)
    with pytest.raises(SearchkitError, match="'synflow' has no differentiable form"):
        strategy.search(context("synflow"))
    with pytest.raises(SearchkitError, match="nu must be one of"):
        NASI(SPACE, np.random.default_rng(0), nu="sometimes")


def test_engine_times_the_one_shot_search_and_resumes_from_its_row(tmp_path):
    config = {
        "name": "nasi", "data": {"name": "synthetic", "batch_size": 8, "options": {"shape": [3, 8, 8], "n_train": 64}},
        "metric": {"name": "ntk_trace"}, "space": {"name": "nb201", "build": {"C": 2, "N": 1}},
        "strategy": {"name": "nasi", "options": {"steps": 2, "nu_samples": 2, "C": 2, "N": 1}},
        "evaluate": {"method": "none"},
    }
    result = run_search(config, out=tmp_path / "run", progress=False)
    rows = RunDir(tmp_path / "run").read_history()
    assert len(rows) == 1 and rows[0].kind == "oneshot" and rows[0].arch == result.arch
    assert result.search_seconds == pytest.approx(rows[0].seconds, abs=1e-3) and result.search_seconds > 0
    assert result.simulated_seconds == 0.0
    (tmp_path / "run" / "best.json").unlink()
    resumed = run_search(resume=tmp_path / "run", progress=False)
    assert resumed.arch == result.arch and resumed.search_seconds == pytest.approx(rows[0].seconds)
    assert json.loads((tmp_path / "run" / "best.json").read_text())["arch"] == result.arch


def test_excluded_ops_are_never_sampled_nor_selected():
    """On NB201 none is excluded by default (B.2's treatment of DARTS' zero op): even an objective that
    prefers none everywhere selects another op; exclude_ops=[] brings it back."""
    strategy = NASI(SPACE, np.random.default_rng(0), steps=4, C=1, N=1, batch_size=4, nu0=1e9)
    strategy._objective = lambda ctx: linear_objective([0] * 6, penalised=True)
    net = strategy.supernet(context("ntk_trace"), seed=0)
    assert not net.mask[:, OPS.index("none")].any() and net.mask[:, 1:].all()
    arch, _ = strategy.search(context("ntk_trace"))
    assert "none" not in arch.ops
    included = NASI(SPACE, np.random.default_rng(0), steps=4, C=1, N=1, batch_size=4, nu0=1e9, exclude_ops=[])
    included._objective = lambda ctx: linear_objective([0] * 6, penalised=True)
    assert included.search(context("ntk_trace"))[0].ops == ("none",) * 6
    for bad in (["max_pool_3x3"], list(OPS)):
        with pytest.raises(SearchkitError, match="exclude_ops"):
            NASI(SPACE, np.random.default_rng(0), exclude_ops=bad)
