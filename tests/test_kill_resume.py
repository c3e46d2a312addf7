"""Crash-safe resume: ``python -m searchkit`` killed with SIGKILL (one very early, then at seeded
random points of its progress, the last one after every row is written: during the final
report), resumed, killed again, ..., run to the end; the final result and the score store equal
those of an uninterrupted run.

A kill is triggered when the output file reaches a drawn number of rows, plus a random delay of
up to 20 ms, so it lands anywhere between writing the store and writing the row, and never only
in start-up. ``SEARCHKIT_KILL_SEED=N`` draws other points (stress-test: run with several seeds).
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import yaml

from searchkit.paths import find_data
from searchkit.rundir import RunDir
from searchkit.store import ScoreStore

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1",
       "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
SEED = int(os.environ.get("SEARCHKIT_KILL_SEED", "0"))
SEARCH = ["data.name=synthetic", "data.batch_size=8", "data.options={shape: [3, 8, 8], n_train: 32}",
          "space.build={C: 4, N: 1}", "metric.name=kcc", "strategy.name=evolution",
          "strategy.options={population: 6, sample_size: 3}", "budget.archs=30", "evaluate.method=none"]
BENCHMARK = {  # 3 seeds x 2 strategies on a pool of 10, tiny networks
    "name": "tiny", "init_seed": 0, "data": {"name": "cifar10", "batch_size": 8},
    "space": {"name": "nb201", "build": {"C": 2, "N": 1}}, "budget": {"archs": 5},
    "validate": {"method": "table", "epochs": 12}, "evaluate": {"method": "table"},
    "benchmark": {"seeds": 3, "pool": {"n": 10, "seed": 0}, "metrics": ["naswot"], "strategies": [
        {"name": "random"}, {"name": "evolution", "label": "REA", "options": {"population": 3, "sample_size": 2}}]},
}
CORRELATE = ["--metrics", "kcc,naswot,params", "--n", "20", "--seed", "3", "--dataset", "synthetic", "--batch-size", "8",
             "--build", "C=4", "--build", "N=1"]


def searchkit(argv: list[str], kill: Callable[[], bool] | None = None, delay: float = 0.0) -> bool:
    """Run ``python -m searchkit ARGV`` to the end (True), or SIGKILL it ``delay`` seconds after
    ``kill()`` first holds (False, unless it finished before)."""
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "searchkit", *argv, "--quiet"], env=ENV, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=err, text=True)
        while proc.poll() is None:
            if kill is not None and kill():
                time.sleep(delay)
                proc.send_signal(signal.SIGKILL)
                return proc.wait() == 0
            time.sleep(0.005)
        err.seek(0)
        assert proc.returncode == 0, err.read()
    return True


def rows(path: Path) -> int:
    """Complete lines of a CSV being appended to, header excluded."""
    return max(0, path.read_text().count("\n") - 1) if path.exists() else 0


def interrupted(fresh: list[str], resume: list[str], can_resume: Path, progress: Path, total: int, salt: int,
                margin: int = 5) -> int:
    """Start ``fresh`` (``resume`` once ``can_resume`` exists) and kill it 20 ms in; then again at
    two random numbers of rows in ``progress`` (at least ``margin`` before the end, so the kill
    lands before the run ends) and once all ``total`` are there; then let it finish. Returns how
    many runs were killed before finishing."""
    rng = np.random.default_rng([SEED, salt])
    targets = [0, *sorted(rng.choice(np.arange(1, total - margin + 1), size=2, replace=False)), total]
    kills = 0
    for target in targets:
        if target == 0:
            start = time.perf_counter()
            finished = searchkit(fresh, lambda: time.perf_counter() - start > 0.02)
        else:
            finished = searchkit(resume if can_resume.exists() else fresh, lambda: rows(progress) >= target,
                                 rng.uniform(0, 0.02))
        kills += not finished
    assert searchkit(resume if can_resume.exists() else fresh)
    return kills


def store_values(path: Path) -> dict:
    with ScoreStore(path) as store:
        return {(r["metric"], r["options"], r["arch"]): r["value"] for r in store.rows()}


def test_a_search_killed_and_resumed_equals_the_uninterrupted_search(tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert searchkit(["search", "--out", str(full), *SEARCH])
    kills = interrupted(["search", "--out", str(cut), *SEARCH], ["search", "--resume", str(cut)],
                        cut / "config.yaml", cut / "history.csv", 30, 1)
    assert kills >= 3

    def result(run: Path) -> dict:
        best = json.loads((run / "best.json").read_text())
        for key in ("wall_seconds", "strategy_seconds", "elapsed_seconds"):
            del best["search_cost"][key]
        del best["out"]
        return best

    assert result(cut) == result(full)
    history = [[(r.step, r.arch, r.index, r.score, r.cached, r.kind, r.extras) for r in RunDir(run).read_history()]
               for run in (full, cut)]
    assert history[0] == history[1] and len(history[0]) == 30
    values = store_values(full / "scores.db")
    assert store_values(cut / "scores.db") == values and len(values) == len({row[1] for row in history[0]})


@pytest.mark.skipif(find_data("nb201/nb201_table.csv") is None, reason="needs the NB201 table")
def test_a_correlate_killed_and_resumed_equals_the_uninterrupted_one(tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert searchkit(["correlate", *CORRELATE, "--out", str(full)])
    kills = interrupted(["correlate", *CORRELATE, "--out", str(cut)], ["correlate", "--resume", str(cut)],
                        cut / "settings.yaml", cut / "scores.csv", 20, 2)
    assert kills >= 3

    def values(out: Path) -> list[list[str]]:  # without the seconds columns
        return [line.split(",")[:5] for line in (out / "scores.csv").read_text().splitlines()]

    assert values(cut) == values(full) and len(values(full)) == 21
    assert store_values(cut / "scores.db") == store_values(full / "scores.db")


@pytest.mark.skipif(find_data("nb201/nb201_table.csv") is None or find_data("cifar10") is None,
                    reason="needs the NB201 table and CIFAR-10")
def test_a_benchmark_killed_and_resumed_equals_the_uninterrupted_one(tmp_path):
    config, full, cut = tmp_path / "bench.yaml", tmp_path / "full", tmp_path / "cut"
    config.write_text(yaml.safe_dump(BENCHMARK))
    assert searchkit(["benchmark", "--config", str(config), "--out", str(full)])
    kills = interrupted(["benchmark", "--config", str(config), "--out", str(cut)], ["benchmark", "--resume", str(cut)],
                        cut / "config.yaml", cut / "runs.csv", 6, 3, margin=1)
    assert kills >= 3

    def runs(out: Path) -> list[list[str]]:  # runs.csv without the measured seconds
        lines = [line.split(",") for line in (out / "runs.csv").read_text().splitlines()]
        return [[v for k, v in enumerate(line) if lines[0][k] not in ("wall_seconds", "strategy_seconds")]
                for line in lines]

    assert runs(cut) == runs(full) and len(runs(full)) == 7
    assert store_values(cut / "scores.db") == store_values(full / "scores.db")
