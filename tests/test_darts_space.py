"""DARTS space: codec (text, JSON, names), validation messages, sampling, mutation, networks."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from searchkit.data.base import Batch
from searchkit.errors import SearchkitError
from searchkit.metrics import METRICS, get_metric
from searchkit.paths import find_data
from searchkit.spaces import get_space
from searchkit.spaces.darts import CONCAT, DECODE_OPS, OPS, DartsGenotype, DartsNetwork, DartsSpace
from searchkit.spaces.darts_network import AuxiliaryHeadCIFAR, DartsCell
from searchkit.spaces.darts_ops import FactorizedReduce, drop_path

GENOTYPES = find_data("darts/genotypes.json")
needs_file = pytest.mark.skipif(GENOTYPES is None, reason="../shared/data/darts/genotypes.json not found")

DARTS_V2_TEXT = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)


@pytest.fixture(scope="module")
def space() -> DartsSpace:
    return get_space("darts")


@pytest.fixture(scope="module")
def v2(space: DartsSpace) -> DartsGenotype:
    return space.decode(DARTS_V2_TEXT)


# ---------------------------------------------------------------- codec
def test_text_round_trip_is_exact(space: DartsSpace, v2: DartsGenotype) -> None:
    assert space.encode(v2) == DARTS_V2_TEXT
    assert space.decode(space.encode(v2)) == v2
    assert v2.normal[7] == ("dil_conv_3x3", 2) and v2.reduce_concat == CONCAT
    assert hash(v2) == hash(space.decode(DARTS_V2_TEXT))


def test_text_variants_parse_to_the_same_genotype(space: DartsSpace, v2: DartsGenotype) -> None:
    double_quotes = DARTS_V2_TEXT.replace("'", '"')
    search_log = DARTS_V2_TEXT.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=range(2, 6)")
    spaced = "\n  " + DARTS_V2_TEXT.replace(", ", " ,\n\t").replace("=", " = ") + "  \n"
    tuples = DARTS_V2_TEXT.replace("=[(", "=((").replace(")], ", "),), ").replace("[2, 3, 4, 5]", "(2, 3, 4, 5,)")
    for text in (double_quotes, search_log, spaced, tuples):
        assert space.decode(text) == v2


@needs_file
def test_every_published_genotype_round_trips(space: DartsSpace) -> None:
    entries = json.loads(GENOTYPES.read_text())
    published = space.published()
    assert list(published) == list(entries)
    assert {"DARTS_V1", "DARTS_V2", "TENAS_cifar10", "PC_DARTS_cifar"} <= set(entries)
    for name, entry in entries.items():
        arch = space.decode(name)
        assert arch == published[name]
        fields = {k: v for k, v in entry.items() if k != "source"}
        assert arch.to_dict() == fields
        assert space.decode(json.dumps(fields)) == arch == space.decode(json.dumps(entry))
        assert DartsGenotype.from_dict(arch.to_dict()) == arch
        text = space.encode(arch)
        assert space.decode(text) == arch and space.encode(space.decode(text)) == text


@needs_file
def test_names_and_text_agree(space: DartsSpace, v2: DartsGenotype) -> None:
    assert space.decode("DARTS_V2") == v2 and space.decode("  DARTS_V2\n") == v2


def _with(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize(
    "text, fragment",
    [
        (_with(DARTS_V2_TEXT, "'dil_conv_3x3', 2", "'conv_7x1_1x7', 2"),
         "normal cell pair 7 \\(node 5\\) has unknown op 'conv_7x1_1x7'; DARTS ops are max_pool_3x3"),
        (_with(DARTS_V2_TEXT, "('sep_conv_3x3', 1), ('sep_conv_3x3', 0)", "('sep_conv_3x3', 1), ('sep_conv_3x3', 3)"),
         "pair 2 has input 3 out of range for node 3, which reads nodes 0..2"),
        (_with(DARTS_V2_TEXT, "('max_pool_3x3', 0), ('max_pool_3x3', 1)", "('max_pool_3x3', 0), ('max_pool_3x3', 5)"),
         "reduce cell pair 1 has input 5 out of range for node 2, which reads nodes 0..1"),
        (_with(DARTS_V2_TEXT, "('max_pool_3x3', 0), ('max_pool_3x3', 1)", "('max_pool_3x3', -1), ('max_pool_3x3', 1)"),
         "input -1 out of range for node 2"),
        (_with(DARTS_V2_TEXT, "('skip_connect', 0), ('dil_conv_3x3', 2)", "('skip_connect', 0)"),
         "normal cell has 7 \\(op, input\\) pairs, expected 8"),
        (_with(DARTS_V2_TEXT, "normal_concat=[2, 3, 4, 5]", "normal_concat=[]"), "normal cell has concat \\(\\)"),
        (_with(DARTS_V2_TEXT, "normal_concat=[2, 3, 4, 5]", "normal_concat=[1, 2, 3]"), "expected increasing distinct"),
        (_with(DARTS_V2_TEXT, "reduce_concat=[2, 3, 4, 5]", "reduce_concat=[2, 3, 4, 6]"), "reduce cell has concat"),
        (_with(DARTS_V2_TEXT, "reduce_concat=[2, 3, 4, 5]", "reduce_concat=[3, 2]"), "reduce cell has concat"),
        (_with(DARTS_V2_TEXT, "('sep_conv_3x3', 0)", "'sep_conv_3x3'"), "pair 0 \\(node 2\\) is 'sep_conv_3x3'"),
        (_with(DARTS_V2_TEXT, ", reduce_concat=[2, 3, 4, 5]", ""), "needs exactly the fields"),
        (_with(DARTS_V2_TEXT, "reduce_concat", "reduce_concat=[2], reduce_concat"),
         "field 'reduce_concat' is given twice"),
        (_with(DARTS_V2_TEXT, "Genotype(", "Genotype(["), "expected 'name' at position 9"),
        (DARTS_V2_TEXT[:-1], "expected ',' at position .*found the end"),
        (DARTS_V2_TEXT + ")", "expected 'end'"),
        (_with(DARTS_V2_TEXT, "('sep_conv_3x3', 0)", "__import__('os')"), "unexpected '__import__' at position 17"),
        ("Genotype(normal=[1 + 2])", "unexpected character '\\+'"),
        ("Genotype_V2(normal=[])", "unknown DARTS genotype name|expected 'Genotype'"),
        ("{\"normal\": [}", "DARTS genotype JSON is invalid"),
        ("{\"normal\": [], \"normal_concat\": [2]}", "needs exactly the fields"),
        ("   ", "is empty"),
    ],
)
def test_decode_errors_are_one_line(space: DartsSpace, text: str, fragment: str) -> None:
    with pytest.raises(SearchkitError, match=fragment) as info:
        space.decode(text)
    assert "\n" not in str(info.value)


@needs_file
def test_unknown_name_lists_the_known_ones(space: DartsSpace) -> None:
    with pytest.raises(SearchkitError, match="unknown DARTS genotype name 'DARTS_V9'; known names: DARTS_V1, DARTS_V2"):
        space.decode("DARTS_V9")


def test_names_need_the_file_but_text_does_not(tmp_path: Path, v2: DartsGenotype) -> None:
    offline = DartsSpace(genotypes=tmp_path / "missing.json")
    with pytest.raises(SearchkitError, match="need darts/genotypes.json, not found at .*SEARCHKIT_DATA"):
        offline.decode("DARTS_V2")
    assert offline.decode(DARTS_V2_TEXT) == v2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"MINE": {**v2.to_dict(), "normal_concat": [9]}}))
    with pytest.raises(SearchkitError, match="entry 'MINE': .*normal cell has concat"):
        DartsSpace(genotypes=bad).decode("MINE")


def test_none_is_decoded_but_other_types_are_rejected(space: DartsSpace, v2: DartsGenotype) -> None:
    with_none = space.decode(_with(DARTS_V2_TEXT, "'dil_conv_3x3', 2", "'none', 2"))
    assert with_none.normal[7] == ("none", 2) and "none" in DECODE_OPS and "none" not in OPS
    with pytest.raises(SearchkitError, match="must be given as a str"):
        space.decode(v2)  # type: ignore[arg-type]
    with pytest.raises(SearchkitError, match="not an \\(op, input\\) pair"):
        replace(v2, normal=(("sep_conv_3x3", True),) + v2.normal[1:])


def test_none_builds_zeros_in_normal_and_reduction_cells(space: DartsSpace, v2: DartsGenotype) -> None:
    # node 2 of both cells reads node 0 through `none` (stride 2 in the reduction cell): a network
    # whose node-2 other op is also `none` has node 2 identically zero
    zero_node = (("none", 0), ("none", 1)) + v2.normal[2:]
    arch = replace(v2, normal=zero_node, reduce=(("none", 0), ("none", 1)) + v2.reduce[2:])
    torch.manual_seed(0)
    net = space.build(arch, 10, C=4, layers=3).eval()
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 10)
    cell = net.cells[0]
    states = cell.preprocess0(net.stem(torch.randn(2, 3, 16, 16))), None
    assert torch.equal(cell.ops[0](states[0]), torch.zeros_like(states[0]))
    reduce_op = net.cells[1].ops[0]
    assert reduce_op(torch.ones(1, 8, 6, 6)).shape == (1, 8, 3, 3) and not reduce_op(torch.ones(1, 8, 6, 6)).any()


# ---------------------------------------------------------------- sampling and mutation
def _valid(arch: DartsGenotype) -> None:
    DartsGenotype.from_dict(arch.to_dict())  # re-validates
    assert arch.normal_concat == arch.reduce_concat == CONCAT
    for cell in (arch.normal, arch.reduce):
        assert all(op in OPS for op, _ in cell)
        assert all(cell[k][1] != cell[k + 1][1] for k in range(0, 8, 2))  # two distinct inputs per node


def test_a_node_reading_one_input_twice_is_decoded_as_written(space: DartsSpace) -> None:
    """811 of the 1,000 trained cells of the DARTS ranking table read a node twice (issue 27)."""
    text = _with(DARTS_V2_TEXT, "('skip_connect', 0), ('dil_conv_3x3', 2)", "('skip_connect', 0), ('dil_conv_3x3', 0)")
    arch = space.decode(text)
    assert arch.normal[6:] == (("skip_connect", 0), ("dil_conv_3x3", 0)) and space.encode(arch) == text
    torch.manual_seed(0)
    assert space.build(arch, 10, C=4, layers=2).eval()(torch.randn(2, 3, 16, 16)).shape == (2, 10)
    for child in space.neighbours(arch):  # mutation keeps it (or moves one input) but never introduces another
        twice = [k for cell in (child.normal, child.reduce) for k in range(0, 8, 2) if cell[k][1] == cell[k + 1][1]]
        assert twice in ([], [6])


def test_sample_is_valid_seeded_and_covers_the_space(space: DartsSpace) -> None:
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(300)]
    for arch in archs:
        _valid(arch)
    again = np.random.default_rng(0)
    assert archs[:5] == [space.sample(again) for _ in range(5)]
    assert len(set(archs)) == len(archs)
    ops = {op for a in archs for cell in (a.normal, a.reduce) for op, _ in cell}
    assert ops == set(OPS)
    for k in range(8):  # every allowed input of every pair occurs
        assert {a.normal[k][1] for a in archs} == set(range(2 + k // 2))


def _differences(a: DartsGenotype, b: DartsGenotype) -> list[tuple[str, int, int]]:
    """(cell, pair, component) triples where a and b differ."""
    return [(cell, k, c) for cell in ("normal", "reduce") for k in range(8) for c in range(2)
            if getattr(a, cell)[k][c] != getattr(b, cell)[k][c]]


def test_mutate_changes_exactly_one_op_or_input(space: DartsSpace) -> None:
    rng = np.random.default_rng(1)
    parent = space.sample(rng)
    kinds = set()
    for _ in range(300):
        child = space.mutate(parent, rng)
        _valid(child)
        (diff,) = _differences(parent, child)
        kinds.add(diff[2])
        parent = child
    assert kinds == {0, 1}  # both ops and inputs get mutated
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    assert space.mutate(parent, a) == space.mutate(parent, b)


def test_neighbours(space: DartsSpace, v2: DartsGenotype) -> None:
    neighbours = space.neighbours(v2)
    assert len(neighbours) == len(set(neighbours)) == 2 * (8 * 6 + 2 * (0 + 1 + 2 + 3))
    assert all(len(_differences(v2, n)) == 1 for n in neighbours)
    rng = np.random.default_rng(0)
    assert all(space.mutate(v2, rng) in set(neighbours) for _ in range(20))
    # node 2's inputs are {0, 1}: they can only change op
    assert all(_differences(v2, n)[0][2] == 0 for n in neighbours if _differences(v2, n)[0][1] < 2)


# ---------------------------------------------------------------- networks
def test_proxy_and_eval_shapes(space: DartsSpace, v2: DartsGenotype) -> None:
    torch.manual_seed(0)
    proxy = space.build(v2, 10).eval()
    assert isinstance(proxy, DartsNetwork) and len(proxy.cells) == 5 and proxy.auxiliary_head is None
    assert proxy(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert proxy(torch.randn(2, 3, 15, 17)).shape == (2, 10)  # odd sizes (FactorizedReduce pads)
    digits = space.build(space.sample(np.random.default_rng(0)), 10, in_channels=1, C=4, layers=3)
    assert digits(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    full = space.build(v2, 10, C=36, layers=20, auxiliary=True).eval()
    assert full(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    reductions = [i for i, cell in enumerate(full.cells) if isinstance(cell.preprocess0, FactorizedReduce)]
    assert reductions == [7, 14] and full.aux_index == 13  # cells after the reductions at 6 and 13


def test_published_parameter_count(space: DartsSpace, v2: DartsGenotype) -> None:
    """DARTS (2nd order) on CIFAR-10: 3.3M parameters (Liu et al. 2019, Table 1). The DARTS code
    logs 3.349342 MB, counting every parameter except the auxiliary head's."""
    net = space.build(v2, 10, C=36, layers=20, auxiliary=True)
    total = sum(p.numel() for p in net.parameters())
    aux = sum(p.numel() for p in net.auxiliary_head.parameters())
    assert total - aux == 3_349_342
    assert aux == 576 * 128 + 2 * 128 + 128 * 768 * 4 + 2 * 768 + 768 * 10 + 10


def test_aux_logits_only_in_training_when_asked(space: DartsSpace, v2: DartsGenotype) -> None:
    net = space.build(v2, 10, C=4, layers=5, auxiliary=True)
    x = torch.randn(2, 3, 32, 32)
    assert isinstance(net.train()(x), torch.Tensor)  # return_aux is off by default
    net.return_aux = True
    logits, aux = net(x)
    assert logits.shape == aux.shape == (2, 10)
    assert isinstance(net.eval()(x), torch.Tensor)
    plain = space.build(v2, 10, C=4, layers=5)
    plain.return_aux = True
    assert isinstance(plain.train()(x), torch.Tensor)
    with pytest.raises(SearchkitError, match="auxiliary head needs 8x8 features .* got 4x4; .* auxiliary=False"):
        net.train()(torch.randn(2, 3, 16, 16))
    assert AuxiliaryHeadCIFAR(12, 3)(torch.randn(2, 12, 10, 10)).shape == (2, 3)


def test_drop_path(space: DartsSpace, v2: DartsGenotype) -> None:
    x = torch.ones(1000, 2, 3, 3)
    torch.manual_seed(0)
    out = drop_path(x, 0.25)
    kept = out.flatten(1).amax(1) > 0
    assert torch.equal(out[kept], torch.full_like(out[kept], 1 / 0.75)) and torch.all(out[~kept] == 0)
    assert 0.7 < kept.float().mean() < 0.8
    assert torch.equal(drop_path(x, 1.0), torch.zeros_like(x))

    torch.manual_seed(0)
    net = space.build(v2, 10, C=4, layers=5, drop_path=1.0)
    x = torch.randn(4, 3, 32, 32)
    net.eval()
    with torch.no_grad():
        dropped = net(x)
        net.drop_path_prob = 0.0
        assert torch.equal(dropped, net(x))  # identity in eval
    cell = net.cells[0].train()
    s = torch.randn(4, 12, 32, 32)
    out = cell(s, s, drop_prob=1.0).detach()  # DARTS_V2 normal: nodes 2, 3 are sep convs only
    assert torch.all(out[:, :8] == 0)
    assert torch.all(out[:, 8:].abs().sum((0, 2, 3)) > 0)  # nodes 4, 5 keep their skip_connect input
    assert isinstance(cell, DartsCell)


def test_build_errors(space: DartsSpace, v2: DartsGenotype) -> None:
    with pytest.raises(SearchkitError, match="option C must be a positive integer, got 0"):
        space.build(v2, 10, C=0)
    with pytest.raises(SearchkitError, match="drop_path must be in \\[0, 1\\]"):
        space.build(v2, 10, drop_path=1.5)


def test_kcc_scores_the_proxy(space: DartsSpace) -> None:
    g = torch.Generator().manual_seed(0)
    batch = Batch(torch.randn(8, 3, 16, 16, generator=g), torch.arange(8) % 4, 4)
    torch.manual_seed(0)
    net = space.build(space.sample(np.random.default_rng(0)), 4, C=4, layers=5)
    score = get_metric("kcc")(net, batch)
    assert 0.0 < score <= 1.0


@pytest.mark.parametrize("name", METRICS.names())
def test_every_metric_scores_the_proxy(space: DartsSpace, name: str) -> None:
    """Every registered training-free metric gives a finite score on a (tiny) DARTS proxy network."""
    g = torch.Generator().manual_seed(1)
    batch = Batch(torch.randn(8, 3, 8, 8, generator=g), torch.arange(8) % 4, 4)
    torch.manual_seed(0)
    net = space.build(space.sample(np.random.default_rng(1)), 4, C=2, layers=3)
    assert np.isfinite(get_metric(name)(net, batch))
