"""benchmarks/kcc_study.py: the joint NTK of the summed and true-class logits, and DARTS cells that
read one node twice."""
import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from searchkit.data.base import Batch
from searchkit.errors import SearchkitError
from searchkit.metrics.ntk import empirical_ntk

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "kcc_study.py"


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("kcc_study", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["kcc_study"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_joint_ntk_matches_per_sample_loops(study):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 3))
    batch = Batch(torch.randn(6, 3, 5, 5), torch.tensor([0, 1, 2, 2, 1, 0]), 3)
    grams = study.joint_ntk(net, batch)

    def rows(scalar) -> torch.Tensor:
        return torch.stack([torch.cat([g.flatten() for g in torch.autograd.grad(scalar(i), list(net.parameters()))])
                            for i in range(6)]).double()

    s = rows(lambda i: net(batch.x[i:i + 1]).sum())
    t = rows(lambda i: net(batch.x[i:i + 1])[0, batch.y[i]])
    for key, expected in (("sum", s @ s.T), ("label", t @ t.T), ("cross", s @ t.T)):
        assert torch.allclose(grams[key], expected, rtol=1e-5, atol=1e-7), key
    label_ntk = empirical_ntk(net, batch.x, output="label", y=batch.y)  # searchkit's own, for kcc:output=label
    assert torch.allclose(grams["label"], label_ntk, rtol=1e-5, atol=1e-7)


def test_joint_ntk_sum_is_the_default_ntk_with_batchnorm(study):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(4, 3))
    batch = Batch(torch.randn(8, 3, 5, 5), torch.arange(8) % 3, 3)
    assert torch.allclose(study.joint_ntk(net, batch)["sum"], empirical_ntk(net, batch.x), rtol=1e-5, atol=1e-7)


def test_darts_cells_that_read_a_node_twice_build(study):
    text = ("Genotype(normal=[('none', 0), ('dil_conv_5x5', 0), ('sep_conv_5x5', 0), ('sep_conv_3x3', 1), "
            "('sep_conv_3x3', 1), ('dil_conv_5x5', 2), ('sep_conv_5x5', 3), ('skip_connect', 4)], "
            "normal_concat=[2, 3, 4, 5], reduce=[('none', 0), ('dil_conv_5x5', 0), ('sep_conv_5x5', 0), "
            "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('dil_conv_5x5', 2), ('sep_conv_5x5', 3), "
            "('skip_connect', 4)], reduce_concat=[2, 3, 4, 5])")
    genotype = study.loose_genotype(text)
    assert genotype.normal[:2] == (("none", 0), ("dil_conv_5x5", 0))
    from searchkit.spaces.darts import DartsNetwork

    assert DartsNetwork(genotype, 10, C=4, layers=3)(torch.randn(2, 3, 16, 16)).shape == (2, 10)
    with pytest.raises(SearchkitError, match="unknown op"):  # every other check of the codec still runs
        study.loose_genotype(text.replace("dil_conv_5x5", "conv_9x9", 1))
