"""Parallel scoring: flags, worker processes and Ray give the serial values, a shared store serves
other runs, and a missing Ray is a one-line error."""
import sys
import types
from unittest import mock

import pytest

from searchkit import scoring, workers
from searchkit.cli import main
from searchkit.correlate import run_correlate
from searchkit.engine import run_search
from searchkit.errors import SearchkitError
from searchkit.paths import find_data
from searchkit.store import ScoreStore
from searchkit.workers import Parallel

needs_table = pytest.mark.skipif(find_data("nb201/nb201_table.csv") is None, reason="needs the NB201 table")
METRICS = ["kcc", "naswot", "params"]
SMALL = dict(dataset="synthetic", batch_size=8, build={"C": 4, "N": 1}, progress=False)
INDICES = [5, 100, 2024, 7777, 15000, 9, 3333, 12, 606, 10101]


def values(out):
    """scores.csv without the seconds columns (the row order included), and the store's values."""
    lines = (out / "scores.csv").read_text().splitlines()
    with ScoreStore(out / "scores.db") as store:
        stored = {(r["metric"], r["options"], r["arch"]): r["value"] for r in store.rows()}
    return [line.split(",")[:2 + len(METRICS)] for line in lines], stored


def test_parallel_flags_are_checked(capsys):
    assert Parallel.resolve() == Parallel("serial", 1)
    assert Parallel.resolve(workers=3) == Parallel("process", 3)
    assert Parallel.resolve("ray", None, "10.0.0.1:6379", 2) == Parallel("ray", 1, "10.0.0.1:6379", 2)
    for args, fragment in [(("serial", 2), "drop --workers"), ((None, 0), "--workers must be at least 1"),
                           (("process", 2, "h:1"), "use it with --backend ray"), (("gpu",), "unknown backend 'gpu'"),
                           ((None, 2, None, 0), "--threads must be at least 1")]:
        with pytest.raises(SearchkitError, match=fragment):
            Parallel.resolve(*args)
    assert main(["search", "--workers", "2", "--backend", "serial"]) == 2
    assert capsys.readouterr().err.startswith("searchkit: error: --backend serial scores in this process")


@needs_table
def test_missing_ray_is_one_line_with_the_install_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    assert main(["correlate", "--metrics", "params", "--n", "10", "--dataset", "synthetic", "--batch-size", "8",
                 "--build", "C=4", "--build", "N=1", "--out", str(tmp_path), "--backend", "ray", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err == 'searchkit: error: the ray backend needs Ray; install it with: pip install -e ".[ray]"\n'


@needs_table
def test_an_unreachable_ray_address_is_one_line(tmp_path, capsys, monkeypatch):
    """Ray itself retries an unreachable cluster for minutes; searchkit checks the port first."""
    fake = types.SimpleNamespace(is_initialized=lambda: False, init=lambda **kw: pytest.fail("ray.init was called"))
    monkeypatch.setitem(sys.modules, "ray", fake)
    assert main(["correlate", "--metrics", "params", "--n", "10", "--dataset", "synthetic", "--batch-size", "8",
                 "--out", str(tmp_path), "--backend", "ray", "--address", "127.0.0.1:1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("searchkit: error: cannot reach the Ray cluster at 127.0.0.1:1 (") and err.count("\n") == 1


@needs_table
def test_worker_processes_give_the_serial_scores(tmp_path):
    serial = run_correlate(METRICS, INDICES, tmp_path / "serial", parallel=Parallel(threads=1), **SMALL)
    spawned = run_correlate(METRICS, INDICES, tmp_path / "process", parallel=Parallel("process", 2, threads=1), **SMALL)
    rows, stored = values(serial)
    assert (rows, stored) == values(spawned)
    assert [int(row[0]) for row in rows[1:]] == INDICES and len(stored) == len(METRICS) * len(INDICES)


@needs_table
def test_a_shared_store_serves_other_runs(tmp_path):
    store = tmp_path / "shared.db"
    run_correlate(METRICS, INDICES[:5] + [1, 2, 3, 4, 6], tmp_path / "a", store=store, **SMALL)
    with mock.patch.object(scoring, "score_metrics", wraps=scoring.score_metrics) as spy:
        out = run_correlate(METRICS, INDICES, tmp_path / "b", store=store, **SMALL)
    assert spy.call_count == len(INDICES) - 5  # only the architectures the first run did not score
    assert not (out / "scores.db").exists()
    with ScoreStore(store) as db:
        assert len(db) == len(METRICS) * (len(INDICES) + 5)
    # everything is stored: no worker process is started
    with mock.patch.object(workers, "_ProcessBackend", side_effect=AssertionError("workers started")):
        run_correlate(METRICS, INDICES, tmp_path / "c", store=store, parallel=Parallel("process", 2), **SMALL)


def test_a_search_with_worker_processes_equals_the_serial_search(tmp_path):
    config = {"data": {"name": "synthetic", "batch_size": 8, "options": {"shape": [3, 8, 8], "n_train": 32}},
              "space": {"build": {"C": 4, "N": 1}}, "metric": {"name": "naswot"}, "budget": {"archs": 12},
              "strategy": {"name": "evolution", "options": {"population": 4, "sample_size": 2}},
              "evaluate": {"method": "none"}}
    serial = run_search(config, out=tmp_path / "serial", progress=False, parallel=Parallel(threads=1))
    spawned = run_search(config, out=tmp_path / "process", progress=False, parallel=Parallel("process", 2, threads=1))
    assert [(r.arch, r.score, r.cached) for r in serial.history] == [(r.arch, r.score, r.cached) for r in spawned.history]
    assert (serial.arch, serial.score) == (spawned.arch, spawned.score)


@needs_table
def test_ray_gives_the_serial_scores(tmp_path):
    pytest.importorskip("ray")
    serial = run_correlate(METRICS, INDICES, tmp_path / "serial", parallel=Parallel(threads=1), **SMALL)
    on_ray = run_correlate(METRICS, INDICES, tmp_path / "ray", parallel=Parallel("ray", 2, threads=1), **SMALL)
    assert values(serial) == values(on_ray)
