"""benchmarks/topk_precision.py: within-draw ranks, stable top k of a rank ensemble, and the
thresholds matched by share of cells."""
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "topk_precision.py"


@pytest.fixture(scope="module")
def topk():
    spec = importlib.util.spec_from_file_location("topk_precision", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["topk_precision"] = module
    spec.loader.exec_module(module)
    return module


def test_draws_rank_within_the_draw_and_the_ensemble_top_k_is_stable(topk):
    global_ranks = np.array([[1.0, 5.0], [2.0, 4.0], [3.0, 3.0], [4.0, 2.0], [5.0, 1.0]])
    cells, ranks = topk.draw_ranks(global_ranks, 3, 4, np.random.default_rng(0))
    assert cells.shape == (4, 3) and all(len(set(row)) == 3 for row in cells)
    assert np.array_equal(ranks[0], np.argsort(np.argsort(cells, axis=1), axis=1) + 1.0)  # metric 0 = cell order
    assert np.array_equal(ranks[0] + ranks[1], np.full((4, 3), 4.0))  # metric 1 ranks the reverse
    assert np.array_equal(topk.top_k(ranks, (0,), 2), np.argsort(-cells, axis=1)[:, :2])
    # the two metrics tie everywhere in their mean rank: the draw's order decides (stable)
    assert np.array_equal(topk.top_k(ranks, (0, 1), 2), np.tile([0, 1], (4, 1)))
    assert topk.screens(["a", "b", "c"]) == [(0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2), (0, 1, 2)]


def test_thresholds_are_reached_by_the_same_share_on_every_dataset(topk):
    c10 = np.concatenate([np.full(990, 90.0), np.full(7, 94.2), np.full(3, 94.35)])
    other = np.linspace(10.0, 60.0, 1000)
    limits = topk.thresholds({"cifar10": c10, "cifar100": other, "ImageNet16-120": other[::-1]})
    assert limits["cifar10"] == topk.C10_THRESHOLDS
    for dataset in ("cifar100", "ImageNet16-120"):
        assert [int(np.sum(other >= t)) for t in limits[dataset]] == [10, 3]


def test_scores_of_several_directories_join_on_the_cells_all_hold(topk, tmp_path):
    for name, text in {"a": "index,arch_str,x,x_s\n0,c0,1.0,0.1\n1,c1,2.0,0.1\n2,c2,,0.1\n",
                       "b": "index,arch_str,y,y_s\n2,c2,7.0,0.1\n0,c0,5.0,0.1\n",
                       "c": "index,arch_str,x\n0,c0,3.0\n"}.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "scores.csv").write_text(text)
    texts, values, names = topk.join_scores([tmp_path / "a", tmp_path / "b"])
    assert texts == ["c0", "c2"] and names == ["x", "y"]
    assert np.array_equal(values, np.array([[1.0, 5.0], [np.nan, 7.0]]), equal_nan=True)
    with pytest.raises(SystemExit, match="a metric is in two of"):
        topk.join_scores([tmp_path / "a", tmp_path / "c"])
