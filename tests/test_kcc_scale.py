"""benchmarks/kcc_scale.py (issue 28): balanced nested batches, figures of nested prefixes equal to
the metrics computed from scratch, and a resumable, extendable run."""
import copy
import csv
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from searchkit.data.base import Batch, DatasetSplits
from searchkit.data.imageset import ImageSet
from searchkit.metrics import parse_metric
from searchkit.metrics.ntk import batch_statistics, empirical_ntk

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "kcc_scale.py"
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def scale():
    sys.path.insert(0, str(SCRIPT.parent))  # it imports its sibling benchmarks, as when run as a script
    spec = importlib.util.spec_from_file_location("kcc_scale", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["kcc_scale"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def tiny_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 10)).double()


def tiny_splits(n: int = 600) -> DatasetSplits:
    g = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (n, 3, 4, 4), generator=g, dtype=torch.uint8)
    train = ImageSet(np.arange(n) % 10, [0.5] * 3, [0.25] * 3, pixels=pixels)
    return DatasetSplits("tiny", 10, (3, 4, 4), train=train, test=train, augment=False)


def test_every_prefix_of_the_batch_is_class_balanced(scale):
    labels = np.random.default_rng(1).integers(0, 10, 5000)
    order = scale.balanced_order(labels, 512, seed=3, num_classes=10)
    assert len(set(order.tolist())) == 512
    for m in range(1, 513):
        counts = np.bincount(labels[order[:m]], minlength=10)
        assert counts.max() - counts.min() <= 1
    assert np.array_equal(order, scale.balanced_order(labels, 512, seed=3, num_classes=10))
    assert not np.array_equal(order, scale.balanced_order(labels, 512, seed=4, num_classes=10))


@pytest.mark.parametrize("kernel", ["sum", "centred"])
def test_nested_prefix_figures_equal_the_metrics_from_scratch(scale, kernel):
    """The m = 64 figures read from the m = 128 Theta equal each metric computed on the 64-image
    batch itself, BN frozen at the 128-image batch's statistics (the study's documented choice)."""
    net, splits = tiny_net(), tiny_splits()
    batch = scale.study_batch(splits, 128, seed=0)
    x = batch.x.double()
    theta = empirical_ntk(net, x, output=kernel)
    nested = {(m, v): value for m, v, value, _ in scale.figures(theta, batch.y, 10, [64, 128], list(scale.VARIANTS))}
    frozen = copy.deepcopy(net)
    frozen.load_state_dict(batch_statistics(net, x), strict=False)
    small = Batch(x[:64], batch.y[:64], 10)
    for variant in scale.VARIANTS:
        metric = parse_metric(f"{variant}:bn=eval:output={kernel}")
        assert nested[(64, variant)] == pytest.approx(metric(frozen, small), rel=1e-9, abs=1e-12), variant
        assert nested[(128, variant)] == pytest.approx(parse_metric(f"{variant}:output={kernel}")(net, Batch(x, batch.y, 10)),
                                                       rel=1e-9, abs=1e-12), variant


def test_run_resumes_extends_draws_and_survives_a_torn_line(scale, tmp_path, monkeypatch):
    splits = tiny_splits()
    built = []
    monkeypatch.setattr(scale, "get_dataset", lambda name: splits)
    monkeypatch.setattr(scale.Study, "cells", lambda self: {10 * i: f"cell{i}" for i in range(3)})

    def network(self, splits, text, seed):
        built.append((text, seed))
        return tiny_net(seed).float()

    monkeypatch.setattr(scale.Study, "network", network)
    study = scale.Study.open(tmp_path, "nb201", 20, 128, 64)
    assert sorted(p[:2] for p in scale.run(study, 1, 0, None, progress=False)) == [(0, 0), (10, 0), (20, 0)]
    rows = scale.read_rows(tmp_path)
    assert len(rows) == 3 * study.rows_per_pair() == 3 * 7 * 3
    assert {(r["kernel"], r["m"]) for r in rows} == {("sum", "64"), ("sum", "128"), ("centred", "64")}
    assert scale.run(study, 1, 0, None, progress=False) == []  # all done: nothing recomputed
    path = tmp_path / "rows" / "cells0-3.csv"
    text = path.read_text().splitlines(keepends=True)
    path.write_text("".join(text[:-5]) + "20,0,sum,6")  # a pair cut short, then a torn line
    built.clear()
    assert sorted(p[:2] for p in scale.run(study, 2, 0, None, progress=False)) == [(0, 1), (10, 1), (20, 0), (20, 1)]
    assert sorted(built) == sorted([("cell2", 0), ("cell0", 1), ("cell1", 1), ("cell2", 1)])
    rows = scale.read_rows(tmp_path)
    assert len(rows) == 6 * study.rows_per_pair()
    assert len({(r["index"], r["draw"], r["kernel"], r["m"], r["variant"]) for r in rows}) == len(rows)
    with pytest.raises(SystemExit) as err:
        scale.Study.open(tmp_path, "nb201", 20, 256, 64)
    assert err.value.code == 2


def test_head_and_means(scale):
    score, accuracy = np.arange(40.0), np.arange(40.0)
    assert scale.head(score, accuracy) == (1.0, 38.5)  # top 2 of 40
    assert scale.head(-score, accuracy) == (0.0, 0.5)
    values = {1: {0: 1.0, 1: 3.0}, 2: {0: 5.0}}
    assert scale.mean_of_draws(values, range(2)) == {1: 2.0}
    assert scale.mean_of_draws(values, range(1)) == {1: 1.0, 2: 5.0}


@pytest.mark.skipif(not (Path(__file__).resolve().parents[1] / "results" / "nb201-all" / "scores.csv").is_file(),
                    reason="needs results/nb201-all")
def test_analyse_chooses_on_the_even_half_and_reports_the_odd(scale, tmp_path):
    """A variant equal to the CIFAR-10 validation accuracy has tune rho 1 and is chosen; noise is not."""
    from searchkit.tabular import NB201Table

    valid = NB201Table.load().column("cifar10", "valid")
    study = scale.Study.open(tmp_path, "nb201", 40, 64, 0)
    rng = np.random.default_rng(0)
    rows = [{"index": i, "draw": d, "kernel": "sum", "m": 64, "variant": v,
             "value": repr(float(valid[i]) + d if v == "oracle" else float(rng.normal())), "seconds": "0.01",
             "theta_seconds": "1.0", "theta_m": 64}
            for d in range(2) for i in scale.sample_indices(40, scale.SAMPLE_SEED, 15625) for v in ("oracle", "noise")]
    (tmp_path / "rows").mkdir()
    with (tmp_path / "rows" / "cells0-40.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, scale.FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    scale.analyse(study)
    text = (tmp_path / "study.md").read_text()
    assert ("**Chosen on the even half** (among the settings scored on all 20 tuning cells): kernel `sum`, m = 64, "
            "`oracle`, k = 1 (tune rho 1.000)") in text
    assert "| sum | 64 | `oracle` (chosen) | 1 | 20/20 | 1.000 |" in text
    k2 = next(line for line in text.splitlines() if line.startswith("| sum | 64 | `oracle` | 2 | 20/20 | 1.000 |"))
    assert "(k = 1: " in k2  # one draw's rho on the same cells, beside k = 2
    assert "| params + the chosen KCC | 20/20 |" in text  # the chosen score as an ensemble member
    assert "| 1.000 | n/a |" in text  # self-agreement of draws 0 vs 1 (a shift), cost unknown before `time`
