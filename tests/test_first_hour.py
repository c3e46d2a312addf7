"""A new user's first hour, through the CLI: an image folder of their own (3 classes, 100 images
per split, no valid/), searched with REA and with HNAS (a validation split carved from train/ and
reported), and evaluated, each to well above chance (issue 18)."""
import json
from pathlib import Path

import pytest

from searchkit.cli import main
from test_small_data_training import write_tints

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL_NET = ["space.build={C: 4, N: 1}", "data.batch_size=16", "evaluate.epochs=5"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("images")
    write_tints(root, n_train=100, n_test=100, size=16)
    return root


def run(capsys, argv) -> str:
    assert main(argv) == 0
    return capsys.readouterr().out


def accuracy(out: str) -> float:
    line = next(line for line in out.splitlines() if line.startswith("final accuracy: "))
    return float(line.split()[2].rstrip("%"))


def test_rea_search_on_an_own_image_folder_beats_chance(capsys, tmp_path, folder):
    out = run(capsys, ["search", "--quiet", "--out", str(tmp_path / "rea"), "data.name=imagefolder",
                       f"data.root={folder}", "budget.archs=6", "strategy.options={population: 3, sample_size: 2}",
                       *SMALL_NET])
    assert "selected by kcc = " in out and "steps of batch" in out
    assert accuracy(out) > 70.0  # chance: 33 %


def test_hnas_on_an_own_image_folder_carves_and_reports_a_validation_split(capsys, tmp_path, folder):
    out = run(capsys, ["search", "--quiet", "--out", str(tmp_path / "hnas"), "data.name=imagefolder",
                       f"data.root={folder}", "strategy.name=hnas",
                       "strategy.options={pool: 4, growth: 0, iterations: 2, init: 1, grid: 4}",
                       "budget={archs: null, simulated_seconds: 100000}", "validate.epochs=2", *SMALL_NET])
    assert "validation split: 30 images carved from train/ (stratified, 10/10/10 per class" in out
    assert "selected by 2-epoch validation accuracy (%, trained) = " in out and "training charged, measured" in out
    assert accuracy(out) > 70.0
    best = json.loads((tmp_path / "hnas" / "best.json").read_text())
    assert best["quantity"] == "2-epoch validation accuracy (%, trained)" and best["selected_by"] == "validation"
    assert best["search_cost"]["training_charged"].startswith("measured")
    assert best["final"]["details"]["validation_split"]["source"] == "carved"


def test_evaluate_an_architecture_on_an_own_image_folder(capsys, tmp_path, folder):
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    out = run(capsys, ["evaluate", "--quiet", "--arch", arch, "--dataset", "imagefolder", "--out", str(tmp_path / "e"),
                       "--epochs", "5", f"data.root={folder}", "space.build={C: 4, N: 1}"])
    assert accuracy(out) > 70.0 and (tmp_path / "e" / "evaluation.json").is_file()
