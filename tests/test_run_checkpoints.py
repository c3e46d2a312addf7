"""Training checkpoints live in the run directory: an interrupted final training of
``searchkit search`` or ``searchkit evaluate`` resumes from there and ends as an uninterrupted one."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import searchkit.train.trainer as trainer
from searchkit.cli import main
from searchkit.engine import run_search
from searchkit.paths import find_data
from searchkit.rundir import TRAIN_CHECKPOINT

SEARCH = {
    "name": "ckpt", "device": "cpu",
    "data": {"name": "synthetic", "batch_size": 8, "options": {"shape": [3, 8, 8], "n_train": 32, "n_test": 16}},
    "space": {"name": "nb201", "build": {"C": 2, "N": 1}},
    "strategy": {"name": "random"}, "metric": {"name": "synflow"},
    "budget": {"archs": 2},
    "evaluate": {"method": "train", "protocol": "nb201-short", "epochs": 3, "overrides": {"batch_size": 16}},
}
DARTS_ARGS = ["--space", "darts", "--dataset", "synthetic", "--preset", "darts-tiny", "--epochs", "2", "--quiet",
              "device=cpu", "data.options={shape: [3, 8, 8], n_train: 24, n_test: 8, num_classes: 3}",
              "evaluate.overrides={batch_size: 8, network: {C: 2, layers: 3, auxiliary: false}}"]
V2 = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
      "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], "
      "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
      "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def interrupt_once(monkeypatch: pytest.MonkeyPatch):
    """The next checkpoint write (after the first epoch) is followed by a KeyboardInterrupt."""
    real = trainer._save_checkpoint
    calls = []

    def save(path: Path, state: dict) -> None:
        real(path, state)
        calls.append(path)
        if len(calls) == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "_save_checkpoint", save)
    return calls


def test_search_resumes_its_interrupted_final_training_from_the_run_directory(tmp_path, interrupt_once):
    with pytest.raises(KeyboardInterrupt):
        run_search(SEARCH, out=tmp_path / "run", progress=False)
    checkpoint = tmp_path / "run" / TRAIN_CHECKPOINT
    assert torch.load(checkpoint)["epoch"] == 1 and not (tmp_path / "run" / "best.json").exists()
    resumed = run_search(resume=tmp_path / "run", progress=False)
    assert torch.load(checkpoint)["epoch"] == 3 and len(interrupt_once) == 3  # epochs 2 and 3 only
    reference = run_search(SEARCH, out=tmp_path / "reference", progress=False)
    assert resumed.arch == reference.arch
    assert resumed.evaluation.test_accuracy == reference.evaluation.test_accuracy
    assert resumed.evaluation.details["train_loss"] == reference.evaluation.details["train_loss"]


def test_evaluate_writes_its_run_directory_and_resumes(tmp_path, capsys, interrupt_once):
    out = tmp_path / "eval"
    assert main(["evaluate", "--arch", V2, "--out", str(out), *DARTS_ARGS]) == 130
    assert f"continue with 'searchkit evaluate --resume {out}'" in capsys.readouterr().err  # the run's, not RUN_DIR
    assert torch.load(out / TRAIN_CHECKPOINT)["epoch"] == 1 and (out / "config.yaml").is_file()
    assert main(["evaluate", "--resume", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "evaluation.json").read_text())
    assert torch.load(out / TRAIN_CHECKPOINT)["epoch"] == 2 and len(interrupt_once) == 2
    assert result["source"] == "trained" and result["details"]["epochs"] == 2
    assert f"{result['details']['inference_params']:,} parameters" in printed and f"run directory: {out}" in printed
    assert main(["evaluate", "--resume", str(out), "--arch", V2]) == 2
    assert "drop --arch" in capsys.readouterr().err
    assert main(["evaluate", "--resume", str(tmp_path / "nothing")]) == 2
    assert "no config.yaml" in capsys.readouterr().err


@pytest.mark.skipif(find_data("darts/genotypes.json") is None, reason="needs ../shared/data/darts/genotypes.json")
def test_evaluate_takes_a_published_darts_name_and_a_preset(tmp_path, capsys):
    assert main(["evaluate", "--arch", "DARTS_V2", "--out", str(tmp_path / "v2"), *DARTS_ARGS]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"architecture: {V2}") and "protocol darts-tiny" in printed
    config = (tmp_path / "v2" / "config.yaml").read_text()
    assert "protocol: darts-tiny" in config and "arch: Genotype(" in config


def test_evaluate_trainings_get_a_default_run_directory_and_lookups_none(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    arch = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"
    assert main(["evaluate", "--arch", arch, "--dataset", "synthetic", "--epochs", "1", "--quiet", "device=cpu",
                 "data.options={shape: [3, 8, 8], n_train: 16, n_test: 8}", "space.build={C: 2, N: 1}"]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.endswith("-evaluate-nb201") and (run / TRAIN_CHECKPOINT).is_file()
    assert json.loads((run / "evaluation.json").read_text())["arch"] == arch
    if find_data("nb201/nb201_table.csv") is not None:  # a table lookup trains nothing and writes nothing
        assert main(["evaluate", "--arch", arch, "--dataset", "cifar10", "--method", "table"]) == 0
        assert len(list((tmp_path / "runs").iterdir())) == 1
    assert f"run directory: {Path('runs') / run.name}" in capsys.readouterr().out
