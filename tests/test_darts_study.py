"""benchmarks/darts_study.py end to end on a tiny synthetic setting: every strategy searches, every
genotype trains under the one protocol, the README has the table, and a rerun resumes."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from searchkit.paths import find_data

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import darts_study  # noqa: E402

CONFIG = {
    "name": "darts-study-test", "device": "cpu",
    "data": {"name": "synthetic", "batch_size": 8,
             "options": {"shape": [3, 8, 8], "num_classes": 3, "n_train": 48, "n_valid": 0, "n_test": 24}},
    "space": {"name": "darts", "build": {"C": 2, "layers": 3}},
    "metric": {"name": "kcc", "options": {}},
    "evaluate": {"overrides": {"batch_size": 16, "network": {"C": 2, "layers": 3, "auxiliary": False}}},
}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.skipif(find_data("darts/genotypes.json") is None, reason="needs ../shared/data/darts/genotypes.json")
def test_study_runs_end_to_end_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "darts"
    readme = darts_study.run_study(out, "darts-tiny", epochs=1, small=True, config=CONFIG,
                                   command="python benchmarks/darts_study.py --out X", progress=False)
    text = readme.read_text()
    for label in [*darts_study.STRATEGIES, *darts_study.REFERENCES]:
        result = json.loads((out / "runs" / f"train__{label}" / "evaluation.json").read_text())
        assert result["source"] == "trained" and result["details"]["epochs"] == 1
        assert (out / "runs" / f"train__{label}" / "train.ckpt").is_file()
    for label in darts_study.STRATEGIES:
        assert (out / "runs" / f"search__{label}" / "best.json").is_file()
    protocols = {json.dumps(json.loads((out / "runs" / f"train__{n}" / "evaluation.json").read_text())["details"]["overrides"])
                 for n in [*darts_study.STRATEGIES, *darts_study.REFERENCES]}
    recorded = (out / "runs.csv").read_text().splitlines()
    assert len(recorded) == 1 + 2 * len(darts_study.STRATEGIES) + len(darts_study.REFERENCES)  # searches, trainings
    assert len(protocols) == 1  # one identical protocol for every genotype
    assert "2.76 +- 0.09" in text and "NOT comparable" in text and "python benchmarks/darts_study.py --out X" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "<" in line][1:]  # after the header
    assert [row.split(" | ")[0] for row in rows] == ["| random", "| REA", "| NASI", "| DARTS_V2 (published)",
                                                      "| TENAS_cifar10 (published)"]
    assert "| DARTS_V2 (published) | sep3<0 sep3<1 sep3<0 sep3<1 sep3<1 skip<0 skip<0 dil3<2 / mp3<0 " in text

    def refuse(*args, **kwargs):
        raise AssertionError("a finished item was recomputed")

    monkeypatch.setattr("searchkit.study.runs.run_search", refuse)
    monkeypatch.setattr("searchkit.study.runs.run_evaluation", refuse)
    (out / "README.md").unlink()
    assert darts_study.run_study(out, "darts-tiny", epochs=1, small=True, config=CONFIG, progress=False).read_text() \
        .splitlines()[4:] == text.splitlines()[4:]


def test_study_cli_reports_user_errors_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert darts_study.main(["--out", str(tmp_path / "x"), "--preset", "no-such-preset", "--config",
                             str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("darts_study: error: ") and len(err.strip().splitlines()) == 1
