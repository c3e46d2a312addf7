"""Inputs people really type: each refused up front with one stderr line that names the problem and
the fix, exit code 2, no traceback, and nothing written or lost (issue 17)."""
import os
from pathlib import Path

import pytest

from searchkit.cli import main
from searchkit.paths import find_data

SMALL = ["data.name=synthetic", "data.batch_size=8", "data.options={shape: [3, 8, 8], n_train: 32}",
         "space.build={C: 2, N: 1}", "evaluate.method=none"]
ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
needs_table = pytest.mark.skipif(find_data("nb201/nb201_table.csv") is None, reason="needs ../shared/data/nb201")


def one_line_error(capsys, argv, *fragments):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("searchkit: error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


@pytest.fixture
def read_only(tmp_path) -> Path:
    """A directory nobody may write into (root ignores permission bits: then a read-only file system)."""
    directory = tmp_path / "locked"
    directory.mkdir()
    directory.chmod(0o555)
    yield directory if not os.access(directory, os.W_OK) else Path("/proc/sys/searchkit-test")
    directory.chmod(0o755)


@needs_table
def test_a_mistyped_metric_option_is_refused_when_the_metric_is_built(capsys, tmp_path):
    one_line_error(capsys, ["correlate", "--metrics", "kcc:eps=abc", "--n", "10", "--out", str(tmp_path / "c"),
                            "--quiet"], "metric 'kcc' option eps must be a number, got 'abc'")
    one_line_error(capsys, ["search", "--quiet", *SMALL, "metric.options.eps=abc"],
                   "metric 'kcc' option eps must be a number, got 'abc'")
    assert not (tmp_path / "c").exists() and not Path("runs").exists()


@pytest.mark.parametrize("command", ["search", "evaluate", "correlate", "benchmark"])
def test_an_unwritable_output_is_one_line_before_any_work(capsys, read_only, command):
    out = read_only / "out"
    argv = {"search": ["search", "--out", str(out), *SMALL],
            "evaluate": ["evaluate", "--arch", ARCH, "--dataset", "synthetic", "--epochs", "1", "--out", str(out)],
            "correlate": ["correlate", "--metrics", "params", "--n", "10", "--dataset", "synthetic", "--out", str(out)],
            "benchmark": ["benchmark", "--config", str(Path(__file__).parents[1] / "configs" / "bench-nb201.yaml"),
                          "--out", str(out)]}[command]
    if command in ("correlate", "benchmark") and find_data("nb201/nb201_table.csv") is None:
        pytest.skip("needs ../shared/data/nb201")
    one_line_error(capsys, [*argv, "--quiet"], f"cannot write to {out}", "choose another --out")
    assert not out.exists()


def test_a_dataset_with_one_class_is_refused_before_scoring(capsys):
    one_line_error(capsys, ["search", "--quiet", *SMALL, "data.options={shape: [3, 8, 8], n_train: 32, num_classes: 1}"],
                   "dataset 'synthetic' has 1 class", "need at least 2")
    assert not Path("runs").exists()


def test_a_scoring_batch_the_metric_cannot_use_names_the_minimum(capsys):
    one_line_error(capsys, ["search", "--quiet", *SMALL, "data.batch_size=1"],
                   "metric 'kcc' needs a scoring batch of at least 1 examples from at least 2 classes; this one has 1 "
                   "from 1", "raise data.batch_size")
    one_line_error(capsys, ["score", "--arch", ARCH, "--dataset", "synthetic", "--batch-size", "1", "--metric", "jacob_cov"],
                   "metric 'jacob_cov' needs a scoring batch of at least 2 examples")


@needs_table
def test_a_correlation_over_too_few_architectures_is_refused(capsys, tmp_path):
    archs = tmp_path / "archs.txt"
    archs.write_text("5\n9\n5\n")
    one_line_error(capsys, ["correlate", "--metrics", "params", "--archs", str(archs), "--out", str(tmp_path / "c")],
                   "a correlation over 2 distinct architectures is not meaningful; give at least 10")
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("budget,key", [("budget.archs=-5", "budget.archs"), ("budget.archs=0", "budget.archs"),
                                        ("budget.seconds=-1", "budget.seconds")])
def test_budgets_must_be_positive(capsys, budget, key):
    one_line_error(capsys, ["search", "--quiet", *SMALL, budget], f"{key} must be positive")


def test_a_used_run_directory_is_refused_unless_resumed_or_overwritten(capsys, tmp_path):
    out = tmp_path / "run"
    assert main(["search", "--quiet", "--out", str(out), *SMALL, "budget.archs=2"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    one_line_error(capsys, ["search", "--quiet", "--out", str(out), *SMALL, "budget.archs=3"],
                   f"{out} already holds a run", "--resume", "--overwrite")
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # nothing lost
    assert main(["search", "--quiet", "--out", str(out), "--overwrite", *SMALL, "budget.archs=3"]) == 0
    assert len((out / "history.csv").read_text().splitlines()) == 4
