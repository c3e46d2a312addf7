"""NASI on DARTS: the supernet's choice rows, its factorised nodes against the full mixture, B.2's
top-2 retention, and a search through the engine."""
import numpy as np
import pytest
import torch

from searchkit import run_search
from searchkit.data import scoring_batch
from searchkit.errors import SearchkitError
from searchkit.spaces import get_space
from searchkit.spaces.darts import OPS, DartsGenotype
from searchkit.strategies import NASI, SearchContext
from searchkit.metrics import parse_metric
from searchkit.strategies.nasi import _Objective, gumbel_straight_through
from searchkit.spaces.darts_supernet import DARTS_ROWS, DartsMixedNode, DartsSuperNet
from test_nasi import SPLITS, toy_value

SPACE = get_space("darts")
BATCH = scoring_batch(SPLITS, 8, 0)
pytestmark = pytest.mark.usefixtures("one_thread")


def supernet(seed=0):
    torch.manual_seed(seed)
    return DartsSuperNet(10, C=2, layers=3)


def sample(net, seed=0):
    alpha = torch.zeros(net.mask.shape, requires_grad=True)
    return alpha, gumbel_straight_through(alpha, torch.Generator().manual_seed(seed), mask=net.mask)


def test_choice_rows_are_an_op_and_an_input_per_node_and_cell_type():
    net = supernet()
    assert net.mask.shape == (2 * DARTS_ROWS, len(OPS)) and len(OPS) == 7 and "none" not in OPS
    counts = net.mask.sum(1).tolist()
    assert counts == [7, 2, 7, 3, 7, 4, 7, 5] * 2  # node i: 7 ops, inputs 0..i-1
    _, weights = sample(net)
    assert torch.equal(weights.detach().sum(1), torch.ones(16))
    assert not (weights.detach() * ~net.mask).any()  # a masked option is never drawn
    net.weights = weights
    assert net(BATCH.x).shape == (8, 10)


def full_mixture(node, states, w_op, w_in):
    """Node i as the plain double sum over every (input, op) pair."""
    return sum(w_in[j] * edge(states[j], w_op) for j, edge in enumerate(node.edges))


@pytest.mark.parametrize("seed", [0, 1])
def test_factorised_nodes_give_the_full_mixtures_trace_and_gradient(seed, monkeypatch):
    results = []
    for forward in (DartsMixedNode.forward, full_mixture):
        monkeypatch.setattr(DartsMixedNode, "forward", forward)
        net = supernet(seed)
        alpha, net.weights = sample(net, seed)
        value = parse_metric("ntk_trace").differentiable(net, BATCH)
        results.append((value.detach(), torch.autograd.grad(value, alpha)[0]))
    (value, grad), (full_value, full_grad) = results
    assert torch.allclose(value, full_value, rtol=1e-6) and torch.allclose(grad, full_grad, rtol=1e-5, atol=1e-9)
    assert grad.abs().sum() > 0 and (grad * ~supernet().mask).abs().sum() == 0


def test_soft_weights_are_refused():
    net = supernet()
    net.weights = torch.softmax(torch.zeros(16, 7), dim=1)
    with pytest.raises(ValueError, match="one-hot"):
        net(BATCH.x)


def test_derive_keeps_the_top_two_ops_and_inputs_of_every_node():
    scores = torch.zeros(16, 7)
    for c in range(2):
        for n in range(4):
            scores[c * DARTS_ROWS + 2 * n, (c + n) % 7] = 3.0  # best op
            scores[c * DARTS_ROWS + 2 * n, (c + n + 2) % 7] = 2.0  # second op
            scores[c * DARTS_ROWS + 2 * n + 1, n + 1] = 1.0  # best input: the latest node
            scores[c * DARTS_ROWS + 2 * n + 1, n + 2:] = 9.0  # masked options are ignored
    genotype = supernet().derive(scores)
    assert isinstance(genotype, DartsGenotype) and genotype.normal_concat == genotype.reduce_concat == (2, 3, 4, 5)
    for c, cell in enumerate((genotype.normal, genotype.reduce)):
        for n in range(4):
            (op1, in1), (op2, in2) = cell[2 * n], cell[2 * n + 1]
            assert (op1, op2) == (OPS[(c + n) % 7], OPS[(c + n + 2) % 7])
            assert in1 == n + 1 and in2 == 0  # ties go to the lower index


def test_update_direction_on_darts():
    """Eq. 18 on a toy R = sum(c * w): the derived cells read each node's preferred input
    through its preferred op."""
    preferred_ops = [3, 4, 5, 6, 0, 1, 2, 3]
    preferred_inputs = [1, 2, 0, 3, 0, 1, 2, 4]
    c = torch.ones(16, 7, dtype=torch.float64)
    for k in range(8):
        cell, n = divmod(k, 4)
        c[cell * DARTS_ROWS + 2 * n, preferred_ops[k]] = 5.0
        c[cell * DARTS_ROWS + 2 * n + 1, preferred_inputs[k]] = 5.0
    strategy = NASI(SPACE, np.random.default_rng(0), steps=6, C=2, layers=3, nu0=1e9)
    strategy._objective = lambda ctx: _Objective(lambda net, batch: toy_value(net, c), True)
    genotype, _ = strategy.search(SearchContext(SPLITS, BATCH, torch.device("cpu"), parse_metric("ntk_trace")))
    pairs = genotype.normal + genotype.reduce
    assert [OPS.index(pairs[2 * k][0]) for k in range(8)] == preferred_ops
    assert [pairs[2 * k][1] for k in range(8)] == preferred_inputs


def test_nasi_searches_darts_through_the_engine(tmp_path):
    config = {
        "name": "nasi-darts", "device": "cpu",
        "data": {"name": "synthetic", "batch_size": 8, "options": {"shape": [3, 8, 8], "n_train": 64, "n_valid": 0}},
        "metric": {"name": "ntk_trace"}, "space": {"name": "darts", "build": {"C": 2, "layers": 3}},
        "strategy": {"name": "nasi", "options": {"steps": 2, "nu_samples": 2, "mu": 2.0}},
        "evaluate": {"method": "none"},
    }
    first = run_search(config, out=tmp_path / "a", progress=False)
    again = run_search(config, out=tmp_path / "b", progress=False)
    genotype = SPACE.decode(first.arch)
    assert isinstance(genotype, DartsGenotype) and first.arch == again.arch and first.score == again.score
    assert all(op != "none" for op, _ in genotype.normal + genotype.reduce) and np.isfinite(first.score)
    assert first.search_seconds > 0


def test_supernet_size_follows_the_darts_build_and_rejects_nb201_options():
    strategy = NASI(SPACE, np.random.default_rng(0))
    context = SearchContext(SPLITS, BATCH, torch.device("cpu"), parse_metric("ntk_trace"), build={"C": 4, "layers": 4, "auxiliary": True})
    assert strategy.supernet_size(context) == {"C": 4, "layers": 4, "stem_multiplier": 3}
    net = strategy.supernet(context, seed=0)
    assert len(net.cells) == 4 and net.stem[0].out_channels == 12 and sum(cell.reduction for cell in net.cells) == 2
    with pytest.raises(SearchkitError, match="option N does not apply to the darts supernet"):
        NASI(SPACE, np.random.default_rng(0), N=2)


def test_excluding_an_op_masks_only_the_op_rows():
    net = supernet()
    net.exclude_ops(["skip_connect"])
    skip = OPS.index("skip_connect")
    assert not net.mask[0::2, skip].any() and net.mask[1::2].sum(1).tolist() == [2, 3, 4, 5] * 2
    scores = torch.zeros(16, 7)
    scores[0::2, skip] = 9.0  # the best score, but excluded
    genotype = net.derive(scores)
    assert all(op != "skip_connect" for op, _ in genotype.normal + genotype.reduce)
    with pytest.raises(SearchkitError, match="fewer than 2 ops"):
        supernet().exclude_ops([op for op in OPS if op != "sep_conv_3x3"])
