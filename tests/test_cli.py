"""The searchkit command: outputs, and one-line errors with exit code 2 for bad input."""
import subprocess
import sys
from pathlib import Path

import pytest

from searchkit.cli import main
from searchkit.paths import find_data
from searchkit.tabular import NB201Table

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
SMALL = ["data.name=synthetic", "data.batch_size=8", "data.options={shape: [3, 8, 8], n_train: 32}",
         "space.build={C: 4, N: 1}"]


def one_line_error(capsys, argv, fragment):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("searchkit: error: ")
    assert fragment in err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv,fragment", [
    (["score", "--arch", "|nor_conv_3x3~0|+|nor_conv_3x3~0|"], "has 2 node groups, expected 3"),
    (["score", "--arch", ARCH.replace("avg_pool_3x3", "max_pool_3x3")], "unknown op 'max_pool_3x3'"),
    (["score", "--arch", "|nor_conv_3x3~1|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"],
     "has edge 'nor_conv_3x3~1' into node 1 reading from node '1', expected 0"),
    (["search", "--config", "no/such.yaml"], "config file not found: no/such.yaml"),
    (["search", "budget.archz=3"], "unknown config key 'budget.archz'"),
    (["search", "metric.name=accuracy"], "unknown metric 'accuracy'"),
    (["score", "--arch", ARCH, "--dataset", "cifar10", "--data-root", "/no/such/dir"], "/no/such/dir"),
    (["evaluate", "--arch", ARCH, "--method", "table", "--table", "/no/table.csv"], "/no/table.csv"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["score"], "the following arguments are required: --arch"),
    (["correlate", "--resume", "/no/such/run"], "cannot resume /no/such/run: no settings.yaml there"),
    (["correlate", "--resume", "/no/such/run", "--n", "3", "--batch-size", "8"], "drop --n, --batch-size"),
    (["correlate", "--n", "3"], "correlate needs --metrics and --out (or --resume DIR)"),
    (["benchmark", "--resume", "/no/such/run"], "cannot resume /no/such/run: no config.yaml there"),
    (["benchmark", "--resume", "/no/such/run", "--seeds", "2"], "drop --config, --out, --seeds and --store"),
    (["benchmark", "--out", "x"], "benchmark needs --config FILE and --out DIR"),
    (["search", "--resume", "/no/such/run", "--store", "s.db"], "drop --config, --store, --overwrite and overrides"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, fragment):
    one_line_error(capsys, argv, fragment)


def test_console_script_exit_code_and_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "searchkit.cli", "score", "--arch", "|bad|"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("searchkit: error: ") and "Traceback" not in proc.stderr


def test_score_prints_each_metric_with_its_quantity(capsys):
    assert main(["score", "--arch", ARCH, "--dataset", "synthetic", "--quiet", *SMALL[1:]]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(ARCH + "  (synthetic, scoring batch of 8, init seed 0)")
    assert lines[1].startswith("kcc: ") and "[KCC γ, NTK-label kernel canonical correlation, in [0, 1];" in lines[1] and 0 < float(lines[1].split()[1]) < 1
    # the one metric syntax: options in the spec, several metrics sharing one NTK (regression: "unknown metric")
    assert main(["score", "--arch", ARCH, "--metric", "kcc:eps=0.01,ntk_cond,params", "--dataset", "synthetic",
                 "--quiet", *SMALL[1:]]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines[1:]] == ["kcc", "ntk_cond", "params"]
    assert lines[1].startswith("kcc:eps=0.01: ") and "−κ, negated NTK condition number" in lines[2]
    assert "parameters (millions)" in lines[3]


def test_search_prints_selection_and_accuracy(capsys, tmp_path):
    argv = ["search", "--quiet", "--out", str(tmp_path / "r"), *SMALL, "budget.archs=3",
            "evaluate.method=train", "evaluate.epochs=1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "selected architecture: |" in out and "final accuracy: " in out and "test accuracy on synthetic" in out
    assert (tmp_path / "r" / "best.json").is_file()
    assert main(["search", "--resume", str(tmp_path / "r"), "budget.archs=4"]) == 2
    assert "drop --config, --store, --overwrite and overrides" in capsys.readouterr().err


@pytest.mark.skipif(find_data("nb201/nb201_table.csv") is None, reason="needs ../shared/data/nb201")
def test_evaluate_looks_up_the_table(capsys):
    assert main(["evaluate", "--arch", ARCH, "--dataset", "cifar10", "--method", "table"]) == 0
    out = capsys.readouterr().out
    expected = NB201Table.load().accuracy(NB201Table.load().index_of(ARCH), "cifar10")
    assert f"{expected:.2f}% test accuracy on cifar10 (NAS-Bench-201 table, 200 epochs)" in out


@pytest.mark.parametrize("argv,dataset", [
    (["evaluate", "--space", "darts", "--arch", "DARTS_V2"], "cifar10"),   # DARTS networks need 32x32 inputs
    (["evaluate", "--arch", ARCH], "digits"),                               # NB201: the embedded dataset
    (["evaluate", "--space", "darts", "--arch", "DARTS_V2", "--dataset", "svhn"], "svhn"),
    (["evaluate", "--config", str(CONFIGS / "nb201-cifar10.yaml"), "--arch", ARCH], "cifar10"),  # the config's stands
])
def test_single_arch_commands_default_to_the_space_dataset(argv, dataset):
    from searchkit.cli import _single_arch_config, build_parser

    assert _single_arch_config(build_parser().parse_args(argv), {}).data.name == dataset


def test_an_interrupt_names_the_run_directory_to_resume(monkeypatch, capsys, tmp_path):
    """Issue 29: the Ctrl-C message printed the literal RUN_DIR."""
    import searchkit.engine
    from searchkit.rundir import RunDir

    def interrupted(*args, out=None, **kwargs):
        if out is not None:
            RunDir.fresh(out).start()
        raise KeyboardInterrupt

    monkeypatch.setattr(searchkit.engine, "run_search", interrupted)
    assert main(["search", "--out", str(tmp_path / "run")]) == 130
    assert capsys.readouterr().err == (f"searchkit: interrupted; continue with 'searchkit search --resume "
                                       f"{tmp_path / 'run'}'\n")
    assert main(["search"]) == 130  # interrupted before its directory existed
    assert capsys.readouterr().err == "searchkit: interrupted; nothing was written yet: rerun the same command\n"
