"""run_search end to end on small data: run directory, determinism, resume, table evaluation."""
import json
import shutil

import pytest

from searchkit import run_search
from searchkit.errors import SearchkitError
from searchkit.paths import find_data
from searchkit.rundir import RunDir
from searchkit.tabular import NB201Table

SMALL = {
    "name": "small",
    "data": {"name": "synthetic", "batch_size": 16,
             "options": {"shape": [3, 8, 8], "n_train": 64, "n_valid": 32, "n_test": 32}},
    "space": {"name": "nb201", "build": {"C": 4, "N": 1}},
    "strategy": {"name": "evolution", "options": {"population": 4, "sample_size": 2}},
    "budget": {"archs": 10},
    "evaluate": {"method": "train", "epochs": 1},
}


def run(tmp_path, name="run", **changes):
    config = {**SMALL, **changes}
    return run_search(config, out=tmp_path / name, progress=False)


def test_run_directory_is_complete_and_consistent(tmp_path):
    result = run(tmp_path)
    out = tmp_path / "run"
    rows = RunDir(out).read_history()
    assert [r.step for r in rows] == list(range(10))
    best_row = max(rows, key=lambda r: r.score)
    best = json.loads((out / "best.json").read_text())
    assert best["arch"] == best_row.arch == result.arch
    assert best["score"] == pytest.approx(best_row.score)
    assert best["final"]["source"] == "trained" and 0 <= best["final"]["test_accuracy"] <= 100
    assert best["search_cost"]["archs_scored"] == 10
    assert RunDir(out).read_config()["budget"]["archs"] == 10
    for row in rows:  # repeats are served from the cache with the first score
        first = next(r for r in rows if r.arch == row.arch)
        assert row.score == first.score and row.cached == (row is not first)


def test_same_seed_same_search_and_other_seed_differs(tmp_path):
    a = [(r.arch, r.score) for r in run(tmp_path, "a").history]
    b = [(r.arch, r.score) for r in run(tmp_path, "b").history]
    c = [(r.arch, r.score) for r in run(tmp_path, "c", seed=1).history]
    assert a == b
    assert a != c


def test_resume_after_a_kill_gives_the_uninterrupted_result(tmp_path):
    full = run(tmp_path, "full")
    partial = tmp_path / "partial"
    shutil.copytree(tmp_path / "full", partial)
    (partial / "best.json").unlink()
    lines = (partial / "history.csv").read_text().splitlines(keepends=True)
    (partial / "history.csv").write_text("".join(lines[:5]) + lines[5][:9])  # 4 rows + a torn one
    resumed = run_search(resume=partial, progress=False)
    assert [(r.arch, r.score) for r in resumed.history] == [(r.arch, r.score) for r in full.history]
    assert resumed.arch == full.arch
    assert json.loads((partial / "best.json").read_text())["arch"] == full.arch
    assert len(RunDir(partial).read_history()) == 10


def test_resume_refuses_a_history_from_another_search(tmp_path):
    run(tmp_path, "one")
    other = tmp_path / "other"
    shutil.copytree(tmp_path / "one", other)
    config = (other / "config.yaml").read_text().replace("seed: 0\n", "seed: 3\n", 1)
    (other / "config.yaml").write_text(config)
    with pytest.raises(SearchkitError, match="diverges from this search at step"):
        run_search(resume=other, progress=False)
    with pytest.raises(SearchkitError, match="no config.yaml"):
        run_search(resume=tmp_path / "missing", progress=False)


def test_seconds_budget_stops_the_search(tmp_path):
    result = run(tmp_path, budget={"archs": None, "seconds": 0.0001})
    assert result.archs_scored == 1


def test_unlimited_budget_is_refused(tmp_path):
    with pytest.raises(SearchkitError, match="budget is unlimited"):
        run(tmp_path, budget={"archs": None, "seconds": None})


@pytest.mark.skipif(find_data("nb201/nb201_table.csv") is None or find_data("cifar10") is None,
                    reason="needs ../shared/data (NB201 table and CIFAR-10)")
def test_cifar10_search_reports_the_table_accuracy(tmp_path):
    result = run(tmp_path, data={"name": "cifar10", "batch_size": 16}, evaluate={"method": "table"},
                 budget={"archs": 4})
    table = NB201Table.load()
    index = table.index_of(result.arch)
    assert result.index == index
    assert result.evaluation.test_accuracy == table.accuracy(index, "cifar10", "test", 200)
    assert result.evaluation.source == "table"
    assert all(row.index == table.index_of(row.arch) for row in result.history)


def test_a_search_scores_the_mean_over_draws_and_stores_each(tmp_path):
    from searchkit.store import ScoreStore

    run(tmp_path, "two", scoring={"draws": 2}, evaluate={"method": "none"})
    with ScoreStore(tmp_path / "two" / "scores.db") as store:
        rows = list(store.rows())
    by_draw = {}
    for row in rows:
        by_draw.setdefault(row["arch"], {})[row["seed"]] = row["value"]
    history = RunDir(tmp_path / "two").read_history()
    assert {seed for held in by_draw.values() for seed in held} == {0, 1}
    for r in history:
        assert r.score == pytest.approx((by_draw[r.arch][0] + by_draw[r.arch][1]) / 2)
