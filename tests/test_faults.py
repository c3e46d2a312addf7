"""Faults (issue 25): a damaged run file, a full disk, two processes on one store, a diverging
training, a kill during a training, a dead scoring worker. Each gives one clear line (exit 2)
or recovers and says so, loses nothing computed before the fault, and resumes to the result of
an uninterrupted run. Unreadable images in an image folder (ask 4) are named, with the fix,
in one line before any scoring, or skipped and counted with data.options.skip_bad=true."""
from __future__ import annotations

import errno
import json
import os
import resource
import signal
import subprocess
import sys
import time
import types
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from PIL import Image

from searchkit import rundir, scoring
from searchkit.cli import main
from searchkit.data import get_dataset
from searchkit.data.problems import SkippedFilesWarning
from searchkit.engine import run_search
from searchkit.errors import SearchkitError
from searchkit.metrics import parse_metric
from searchkit.rundir import TRAIN_CHECKPOINT, VALIDATE_CHECKPOINT, RunDir
from searchkit.scoring import ScoreRunner, ScoringRecipe
from searchkit.store import ScoreStore
from searchkit.workers import Parallel

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1",
       "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
DATA = ["device=cpu", "data.name=synthetic", "data.batch_size=8",
        "data.options={shape: [3, 8, 8], n_train: 32, n_test: 16}", "space.build={C: 2, N: 1}"]
SCORED = [*DATA, "metric.name=params", "strategy.name=random", "budget.archs=6", "evaluate.method=none"]
TRAINED = [*DATA, "metric.name=params", "strategy.name=random", "budget.archs=3", "evaluate.method=train",
           "evaluate.protocol=nb201-short", "evaluate.epochs=2",
           "evaluate.overrides={batch_size: 16, min_steps_per_epoch: 0}"]
VALIDATED = [*DATA, "metric.name=validation", "strategy.name=random", "budget.archs=3", "validate.method=train",
             "validate.epochs=2", "evaluate.method=none", "evaluate.overrides={batch_size: 16, min_steps_per_epoch: 0}"]
ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
EVALUATE = ["evaluate", "--arch", ARCH, "--dataset", "synthetic", "--epochs", "8", "--quiet", "device=cpu",
            "data.options={shape: [3, 8, 8], n_train: 128, n_test: 16}", "space.build={C: 2, N: 1}",
            "evaluate.overrides={batch_size: 32, min_steps_per_epoch: 0}"]


def one_line(capsys, argv: list[str], *fragments: str, code: int = 2) -> str:
    """Run the CLI: ``code``, one stderr line holding every fragment, no traceback."""
    assert main(argv) == code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith("searchkit: warning: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], err
    return err


def files(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir()) if p.is_file()}


def result(run: Path) -> dict:
    """best.json without what a clock measured."""
    best = json.loads((run / "best.json").read_text())
    for key in ("wall_seconds", "strategy_seconds", "simulated_seconds", "elapsed_seconds"):
        best["search_cost"].pop(key, None)
    if best.get("final") and "details" in best["final"]:
        del best["final"]["details"]["seconds"]
        best["final"]["details"].pop("model", None)
    del best["out"]
    best.pop("model", None)  # model.pt / model.json paths name the run directory
    return best


def history(run: Path) -> list[tuple]:
    return [(r.step, r.arch, r.score, r.cached, r.kind, r.extras) for r in RunDir(run).read_history()]


def searchkit(argv: list[str], limit: int | None = None) -> subprocess.CompletedProcess:
    """``python -m searchkit ARGV --quiet`` in a subprocess, with a file-size limit of ``limit`` bytes."""
    def set_limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run([sys.executable, "-m", "searchkit", *argv, "--quiet"], env=ENV, cwd=ROOT, text=True,
                          capture_output=True, preexec_fn=None if limit is None else set_limit)


# --- 1. damaged run files -------------------------------------------------------------------------

def test_a_damaged_history_line_is_refused_by_name_and_nothing_is_overwritten(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["search", "--out", str(run), "--quiet", *SCORED]) == 0
    lines = (run / "history.csv").read_text().splitlines(keepends=True)
    lines[3] = "3,|garbage~0|,,not-a-number\n"
    (run / "history.csv").write_text("".join(lines))
    before = files(run)
    one_line(capsys, ["search", "--resume", str(run), "--quiet"], "history.csv line 4 is damaged",
             "delete it and every line after it")
    assert files(run) == before
    (run / "config.yaml").write_text("name: [unclosed\n")
    one_line(capsys, ["search", "--resume", str(run), "--quiet"], "config.yaml is damaged", "--overwrite")
    assert files(run) == {**before, "config.yaml": b"name: [unclosed\n"}


def test_a_torn_last_history_line_is_recovered_and_nothing_is_scored_again(tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert main(["search", "--out", str(full), "--quiet", *SCORED]) == 0
    assert main(["search", "--out", str(cut), "--quiet", *SCORED]) == 0
    text = (cut / "history.csv").read_text()
    (cut / "history.csv").write_text(text[:text.rindex("\n", 0, len(text) - 1) + 8])  # the last row cut short
    (cut / "best.json").write_text('{"arch": "|nor_conv')  # and best.json torn
    with mock.patch.object(scoring, "score_metrics", wraps=scoring.score_metrics) as spy, \
            pytest.warns(UserWarning) as warned:
        assert main(["search", "--resume", str(cut), "--quiet"]) == 0
    said = " | ".join(str(w.message) for w in warned)
    assert "dropped a damaged last line" in said and "the 5 rows before it are replayed" in said
    assert "best.json is damaged" in said and "written again" in said
    assert spy.call_count == 0  # the dropped row's score came back from the store
    assert history(cut) == history(full) and result(cut) == result(full)


def test_a_damaged_checkpoint_or_store_is_refused_before_any_work(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["search", "--out", str(run), "--quiet", *TRAINED]) == 0
    checkpoint = (run / TRAIN_CHECKPOINT).read_bytes()
    (run / TRAIN_CHECKPOINT).write_bytes(checkpoint[:len(checkpoint) // 2])
    before = files(run)
    one_line(capsys, ["search", "--resume", str(run), "--quiet"], f"cannot read checkpoint {run / TRAIN_CHECKPOINT}",
             "delete it to train from epoch 0")
    assert files(run) == before
    (run / TRAIN_CHECKPOINT).write_bytes(checkpoint)
    store = (run / "scores.db").read_bytes()
    (run / "scores.db").write_bytes(store[:4096] + bytes(len(store) - 4096))  # pages after the first zeroed
    one_line(capsys, ["search", "--resume", str(run), "--quiet"], f"score store {run / 'scores.db'} is damaged",
             "move it aside and rerun", ".recover")
    assert (run / "scores.db").read_bytes() == store[:4096] + bytes(len(store) - 4096)


def test_a_validation_checkpoint_older_than_the_history_is_removed_and_said(tmp_path, monkeypatch):
    run, reference = tmp_path / "run", tmp_path / "reference"
    assert main(["search", "--out", str(reference), "--quiet", *VALIDATED]) == 0
    save, saved = rundir.write_atomic, []

    def interrupt_after_first_checkpoint(path: Path, data) -> None:
        save(path, data)
        if path.name == VALIDATE_CHECKPOINT and not saved:
            saved.append(path.read_bytes())
            raise KeyboardInterrupt

    monkeypatch.setattr("searchkit.train.trainer.write_atomic", interrupt_after_first_checkpoint)
    assert main(["search", "--out", str(run), "--quiet", *VALIDATED]) == 130
    assert main(["search", "--resume", str(run), "--quiet"]) == 0  # the interrupted validation continues
    assert result(run) == result(reference) and not (run / VALIDATE_CHECKPOINT).exists()
    (run / VALIDATE_CHECKPOINT).write_bytes(saved[0])  # e.g. a directory restored from an older backup
    with pytest.warns(UserWarning, match="validate.ckpt was older than the history"):
        assert main(["search", "--resume", str(run), "--quiet"]) == 0
    assert result(run) == result(reference) and not (run / VALIDATE_CHECKPOINT).exists()


def test_a_damaged_correlate_settings_file_is_one_line(tmp_path, capsys):
    from searchkit.paths import find_data

    if find_data("nb201/nb201_table.csv") is None:
        pytest.skip("needs the NB201 table")
    out = tmp_path / "corr"
    argv = ["correlate", "--metrics", "params", "--n", "10", "--dataset", "synthetic", "--batch-size", "8",
            "--build", "C=2", "--build", "N=1", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    (out / "settings.yaml").write_text("space: nb201\nmetrics: [params\n")
    before = files(out)
    one_line(capsys, ["correlate", "--resume", str(out), "--quiet"], "settings.yaml is damaged",
             "rerun the original command with --out")
    assert files(out) == before


# --- 2. a full disk or a file-size limit ------------------------------------------------------------

def test_a_file_size_limit_at_the_checkpoint_is_one_line_and_the_run_resumes(tmp_path):
    """Before: a torch serialisation traceback. The training checkpoint (88 kB) is over the limit,
    the history and the store are under it."""
    run, reference = tmp_path / "run", tmp_path / "reference"
    limited = searchkit(["search", "--out", str(run), *TRAINED], limit=60_000)
    assert limited.returncode == 2 and limited.stderr.count("\n") == 1, limited.stderr
    assert limited.stderr.startswith(f"searchkit: error: cannot write {run / TRAIN_CHECKPOINT} (File too large): "
                                     "free disk space (or raise the file-size limit), then resume")
    assert len(RunDir(run).read_history()) == 3 and not (run / TRAIN_CHECKPOINT).exists()
    assert not (run / (TRAIN_CHECKPOINT + ".tmp")).exists()
    with ScoreStore(run / "scores.db") as store:
        assert len(store) == 3  # every score computed before the fault
    assert main(["search", "--resume", str(run), "--quiet"]) == 0
    assert main(["search", "--out", str(reference), "--quiet", *TRAINED]) == 0
    assert result(run) == result(reference)


def test_a_full_disk_while_writing_the_history_or_the_store_loses_nothing(tmp_path, capsys, monkeypatch):
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert main(["search", "--out", str(full), "--quiet", *SCORED]) == 0
    append, calls = rundir.HistoryWriter.append, []

    def no_space(line: list) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def full_disk(self, row) -> None:  # the fourth row's write finds the disk full
        calls.append(row)
        if len(calls) == 4:
            self._writer = types.SimpleNamespace(writerow=no_space)
        append(self, row)

    monkeypatch.setattr(rundir.HistoryWriter, "append", full_disk)
    one_line(capsys, ["search", "--out", str(cut), "--quiet", *SCORED],
             f"cannot write {cut / 'history.csv'} (No space left on device)", "then resume")
    monkeypatch.setattr(rundir.HistoryWriter, "append", append)
    assert len(RunDir(cut).read_history()) == 3
    with ScoreStore(cut / "scores.db") as store:
        assert len(store) == 4  # the fourth score was stored before its row failed
    with mock.patch.object(scoring, "score_metrics", wraps=scoring.score_metrics) as spy:
        assert main(["search", "--resume", str(cut), "--quiet"]) == 0
    assert spy.call_count == 2 and history(cut) == history(full) and result(cut) == result(full)

    # the store full (SQLite's page limit stands in for the disk): the transaction rolls back
    store = ScoreStore(tmp_path / "small.db")
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages + 1}")
    with pytest.raises(SearchkitError, match=r"cannot write score store .*small.db \(database or disk is full\): "
                                             r"free disk space .* every score written before is kept"):
        run_search(None, [*SCORED, "budget.archs=60"], out=tmp_path / "small", progress=False, store=store)
    held = len(store)
    assert held >= 1 and len({row.arch for row in RunDir(tmp_path / "small").read_history()}) == held
    store.close()


# --- 3. two processes on one store ----------------------------------------------------------------

def test_two_searches_sharing_a_store_both_finish_with_the_scores_of_one_alone(tmp_path):
    shared, alone = tmp_path / "shared.db", tmp_path / "alone"
    argv = [*DATA, "metric.name=synflow", "strategy.name=random", "budget.archs=60", "evaluate.method=none"]
    other = subprocess.Popen([sys.executable, "-m", "searchkit", "search", "--out", str(tmp_path / "run0"), "--store",
                              str(shared), "--quiet", *argv], env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    while not shared.exists() and other.poll() is None:  # this process starts once the other one writes
        time.sleep(0.005)
    assert main(["search", "--out", str(tmp_path / "run1"), "--store", str(shared), "--quiet", *argv]) == 0
    err = other.communicate()[1]
    assert other.returncode == 0 and "locked" not in err and "Traceback" not in err, err
    assert main(["search", "--out", str(alone), "--quiet", *argv]) == 0
    with ScoreStore(shared) as store:
        rows = {row["arch"]: row["value"] for row in store.rows()}
        assert len(rows) == len(store)  # one row per architecture: none duplicated
    runs = [history(tmp_path / f"run{k}") for k in range(2)]
    assert runs[0] == runs[1] == history(alone)  # the same search, the same scores as one process alone
    assert {row[1] for run in runs for row in run} == set(rows)  # none lost
    assert all(rows[arch] == score for run in runs for _, arch, score, *_ in run)


# --- 5. a training that diverges ------------------------------------------------------------------

DIVERGE = "evaluate.overrides={batch_size: 16, lr: 1.0e+12, schedule: constant, min_steps_per_epoch: 0}"


def test_a_diverging_final_training_is_recorded_without_an_accuracy(tmp_path, capsys):
    run = tmp_path / "run"
    one_line(capsys, ["search", "--out", str(run), "--quiet", *TRAINED[:-1], DIVERGE],
             "the final training of the selected architecture", "diverged", "records the search without an accuracy",
             "lower the protocol's learning rate")
    best = json.loads((run / "best.json").read_text())
    assert best["final"]["diverged"] is True and best["final"]["train_loss"] == "nan"
    assert "test_accuracy" not in json.dumps(best["final"]) and best["search_cost"]["archs_scored"] == 3
    out = tmp_path / "eval"
    one_line(capsys, [*EVALUATE[:-1], DIVERGE, "--out", str(out)],
             "training diverged: the mean loss of epoch 1 of 8 is nan")
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert evaluation["diverged"] is True and "test_accuracy" not in evaluation and evaluation["arch"] == ARCH


def test_diverging_validations_are_recorded_in_the_history_and_never_selected(tmp_path, capsys):
    run = tmp_path / "run"
    with pytest.warns(UserWarning, match=r"the validation training of \|.* diverged \(mean loss nan in epoch 1\); "
                                         r"recorded as diverged \(-inf\), not as an accuracy"):
        one_line(capsys, ["search", "--out", str(run), "--quiet", *VALIDATED[:-1], DIVERGE],
                 "every validation training diverged (3)")
    rows = RunDir(run).read_history()
    assert [(r.kind, r.score, r.extras) for r in rows] == [("validate", float("-inf"), {"diverged_epoch": 1.0})] * 3
    assert not (run / "best.json").exists() and not (run / VALIDATE_CHECKPOINT).exists()


# --- 6. a training interrupted by SIGTERM or SIGINT -----------------------------------------------

def test_sigterm_during_a_training_keeps_the_last_epoch_and_resumes_to_the_same_accuracy(tmp_path):
    """SIGINT is Ctrl-C, a KeyboardInterrupt: test_run_checkpoints.py and the validation test above."""
    out, reference = tmp_path / "cut", tmp_path / "reference"
    proc = subprocess.Popen([sys.executable, "-m", "searchkit", *EVALUATE, "--out", str(out)], env=ENV, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while not (out / TRAIN_CHECKPOINT).exists() and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate()[1]
    assert proc.returncode == 128 + signal.SIGTERM and err == (
        f"searchkit: terminated (SIGTERM); continue with 'searchkit evaluate --resume {out}'\n"), err
    epoch = torch.load(out / TRAIN_CHECKPOINT)["epoch"]
    assert 1 <= epoch < 8 and not (out / "evaluation.json").exists()
    assert main(["evaluate", "--resume", str(out), "--quiet"]) == 0
    assert main([*EVALUATE, "--out", str(reference)]) == 0
    resumed, whole = (json.loads((run / "evaluation.json").read_text()) for run in (out, reference))
    assert (resumed["test_accuracy"], resumed["details"]["train_loss"]) == (
        whole["test_accuracy"], whole["details"]["train_loss"])


# --- 7. a scoring worker killed mid-run -----------------------------------------------------------

def scoring_recipe() -> ScoringRecipe:
    return ScoringRecipe("nb201", "synthetic", None, {"shape": [3, 8, 8], "n_train": 32}, 8, 0, "train",
                         {"params": parse_metric("params"), "synflow": parse_metric("synflow")}, 0, {"C": 2, "N": 1},
                         "cpu")


ARCHS = [f"|nor_conv_3x3~0|+|{a}~0|{b}~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
         for a in ("none", "skip_connect", "nor_conv_1x1") for b in ("nor_conv_3x3", "avg_pool_3x3", "skip_connect")]


def values(results: dict) -> dict:
    """arch -> metric -> value of ScoreRunner results (the measured seconds left out)."""
    return {text: {label: value for label, (value, _) in result.items()} for text, result in results.items()}


def test_a_killed_worker_process_is_replaced_and_its_architectures_scored_again(tmp_path):
    context = scoring_recipe().open()
    with ScoreStore(tmp_path / "alone.db") as store, ScoreRunner(context, store) as runner:
        alone = {text: result for text, result, _ in runner.scores(ARCHS)}
    with ScoreStore(tmp_path / "killed.db") as store, \
            ScoreRunner(context, store, Parallel("process", 1, threads=1)) as runner:
        got = {}
        with pytest.warns(UserWarning, match="a scoring worker process died"):
            for text, result, _ in runner.scores(ARCHS):
                if not got:  # one answer in, the next in flight: kill the worker
                    os.kill(next(iter(runner._backend._pool._processes)), signal.SIGKILL)
                got[text] = result
        assert runner._backend.restarts == 1 and len(store) == 2 * len(ARCHS)
    assert values(got) == values(alone) and len(got) == len(ARCHS)


def test_a_killed_ray_actor_is_restarted_and_the_scores_complete(tmp_path):
    """Runs only where Ray is installed (it is not on the machine this was written on)."""
    ray = pytest.importorskip("ray")
    context = scoring_recipe().open()
    with ScoreStore(tmp_path / "alone.db") as store, ScoreRunner(context, store) as runner:
        alone = {text: result for text, result, _ in runner.scores(ARCHS)}
    with ScoreStore(tmp_path / "ray.db") as store, ScoreRunner(context, store, Parallel("ray", 2, threads=1)) as runner:
        got = {}
        for text, result, _ in runner.scores(ARCHS):
            if not got:  # a crash of the actor's process: Ray restarts it and retries its calls
                ray.kill(runner._backend._actors[0], no_restart=False)
            got[text] = result
        assert len(store) == 2 * len(ARCHS)
    assert values(got) == values(alone) and len(got) == len(ARCHS)


# Ask 4: unreadable images in an image folder.

FOLDER_RUN = ["data.name=imagefolder", "data.batch_size=8", "space.build={C: 2, N: 1}",
              "evaluate.method=none", "budget.archs=2"]


def write_folder_faults_fixture(root: Path, n_train: int = 10) -> None:
    """2 classes of 8x8 noise PNGs: n_train per class in train/, 3 in test/."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", 3)):
        for cls in ("ant", "bee"):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / split / cls / f"{i}.png")


def folder_search_fails(capsys, root: Path, out: Path, *fragments: str) -> str:
    assert main(["search", "--quiet", "--out", str(out), f"data.root={root}", *FOLDER_RUN]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("searchkit: error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    assert not out.exists()  # refused before the run directory, so before any scoring
    return err


def test_folder_a_corrupt_image_is_one_line_before_any_scoring(capsys, tmp_path):
    write_folder_faults_fixture(tmp_path / "f")
    (tmp_path / "f" / "test" / "bee" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\ntorn")
    folder_search_fails(capsys, tmp_path / "f", tmp_path / "run", "1 problem found before any work",
                        "test/bee/1.png: unreadable image (", "replace or remove it",
                        "or set data.options.skip_bad=true to leave these files out")


def test_folder_an_empty_class_folder_is_one_line(capsys, tmp_path):
    write_folder_faults_fixture(tmp_path / "f")
    (tmp_path / "f" / "train" / "cow").mkdir()
    folder_search_fails(capsys, tmp_path / "f", tmp_path / "run",
                        "train/cow/: empty class folder (no images); add images or remove it")


def test_folder_stray_files_are_one_line(capsys, tmp_path):
    write_folder_faults_fixture(tmp_path / "f")
    (tmp_path / "f" / "train" / "ant" / "labels.csv").write_text("a,b\n")
    (tmp_path / "f" / "train" / "ant" / ".DS_Store").write_bytes(b"hidden files are ignored")
    folder_search_fails(capsys, tmp_path / "f", tmp_path / "run", "1 problem found",
                        "train/ant/labels.csv: not an image (.jpg, .jpeg, .png", "move it out of the folder")


def test_folder_skip_bad_skips_and_counts(tmp_path):
    root = tmp_path / "f"
    write_folder_faults_fixture(root)
    (root / "train" / "ant" / "0.png").write_bytes(b"")
    (root / "test" / "bee" / "2.png").write_bytes(Image.open(root / "test" / "bee" / "1.png").tobytes())
    (root / "train" / "notes.txt").write_text("")
    (root / "train" / "cow").mkdir()
    with pytest.warns(SkippedFilesWarning, match=r"skipped 4 file\(s\) or folder\(s\) with problems \(data.options."
                                                 r"skip_bad=true\): test/bee/2.png: unreadable image .*; and 1 more, "
                                                 r"all listed in "):
        d = get_dataset("imagefolder", root=root, skip_bad=True)
    assert d.info["skipped"] == 4 and d.describe()["skipped"] == 4 and d.info["classes"] == ["ant", "bee"]
    assert len(d.train) + len(d.valid) == 19 and len(d.test) == 5
    with pytest.warns(SkippedFilesWarning, match="skipped 4"):  # said again when read back from the cache
        assert get_dataset("imagefolder", root=root, skip_bad=True).info["decoded_from"] == "cache"
    out = tmp_path / "run"
    with pytest.warns(SkippedFilesWarning, match="skipped 4 file"):  # the CLI prints it as one warning line
        assert main(["search", "--quiet", "--out", str(out), f"data.root={root}", "data.options.skip_bad=true",
                     *FOLDER_RUN]) == 0
    assert json.loads((out / "best.json").read_text())["arch"]
