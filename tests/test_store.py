"""The SQLite score store: keys, exact round trips, stats/export, the CLI, and a writer killed
with SIGKILL mid-stream leaving every committed row readable."""
import csv
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from searchkit.cli import main
from searchkit.data.base import Batch
from searchkit.errors import SearchkitError
from searchkit.metrics import get_metric
from searchkit.scoring import ScoringRecipe
from searchkit.store import ScoreSetting, ScoreStore

ROOT = Path(__file__).resolve().parents[1]
SETTING = ScoreSetting("nb201", '{"C":4,"N":1}', "synthetic", "abc123", 0, "cpu")
KCC = get_metric("kcc").key()


def test_metric_keys_are_canonical():
    assert get_metric("kcc").key() == get_metric("kcc", eps=0.0001).key()
    assert get_metric("kcc", eps=1).key() == get_metric("kcc", eps=1.0).key()
    assert get_metric("kcc", eps=0.5).key() != KCC
    name, options = KCC
    assert name == "kcc" and '"eps":0.0001' in options and "worst" not in options
    assert get_metric("params").key() == ("params", "{}")


def setting(build, device="cpu", **changes):
    batch = Batch(torch.zeros(2, 3, 4, 4), torch.tensor([0, 1]), 2)
    return ScoringRecipe("nb201", "synthetic", build=build, device=device, batch_fingerprint=batch.fingerprint(),
                         **changes).setting()


def test_settings_fill_in_the_space_build_defaults():
    default = setting({})
    assert default == setting({"N": 5, "C": 16}) == setting({}, device="cpu:0")
    assert default.build == '{"C":16,"N":5}' and default.device == "cpu"
    assert default != setting({"C": 8}) and default != setting({}, init_seed=1)
    assert setting({}, data_seed=3) == default  # the batch's contents (its fingerprint) decide, not how it was drawn


def test_recipes_round_trip_through_settings_yaml():
    recipe = ScoringRecipe("nb201", "synthetic", metrics={"kcc:eps=0.5": get_metric("kcc", eps=0.5)}, build={"C": 4},
                           batch_fingerprint="abc")
    again = ScoringRecipe.from_dict(recipe.to_dict())
    assert again.setting() == recipe.setting() and again.metrics["kcc:eps=0.5"] == recipe.metrics["kcc:eps=0.5"]
    legacy = {"dataset": "cifar10", "batch_size": 64, "data_seed": 0, "init_seed": 0, "build": {"C": 16, "N": 5},
              "device": "cpu", "batch_fingerprint": "3871fc12df02", "metrics": ["naswot"], "table": "t.csv"}
    with pytest.warns(DeprecationWarning, match="without 'space:' are read as NAS-Bench-201's"):
        read = ScoringRecipe.from_dict(legacy)
    assert read.setting() == ScoreSetting("nb201", '{"C":16,"N":5}', "cifar10",
                                                                     "3871fc12df02", 0, "cpu")


def test_a_version_1_store_loses_chunk_size_from_its_keys(tmp_path):
    path = tmp_path / "old.db"
    with ScoreStore(path) as store:
        store.put(SETTING, ("kcc", '{"bn":"batchstats","chunk_size":null,"eps":0.0001}'), "|a|", 0.5, 1.0)
        store.put(SETTING, ("kcc", '{"bn":"batchstats","chunk_size":4,"eps":0.0001}'), "|a|", 0.5, 2.0)
        store._db.execute("PRAGMA user_version = 1")
    with ScoreStore(path) as store:
        rows = list(store.rows())  # the two were one score computed twice: one row is kept
        assert [(r["options"], r["value"]) for r in rows] == [('{"bn":"batchstats","eps":0.0001}', 0.5)]


def test_round_trip_is_exact_and_first_write_wins(tmp_path):
    values = [0.1 + 0.2, -math.inf, 1e-300, float(np.float32(0.3))]
    with ScoreStore(tmp_path / "s.db") as store:
        store.put_many(SETTING, [(KCC, f"|a{i}|", v, 0.5 + i) for i, v in enumerate(values)])
        store.put(SETTING, KCC, "|nan|", math.nan, 1.0)
        store.put(SETTING, KCC, "|a0|", 99.0, 9.0)  # scores are deterministic: never replaced
    with ScoreStore(tmp_path / "s.db") as store:
        assert [store.get(SETTING, KCC, f"|a{i}|") for i in range(4)] == [(v, 0.5 + i) for i, v in enumerate(values)]
        assert math.isnan(store.get(SETTING, KCC, "|nan|")[0])
        other = ScoreSetting(**{**SETTING.__dict__, "device": "cuda"})
        assert store.get(other, KCC, "|a0|") is None and len(store) == 5
        keys = {"k": KCC, "p": get_metric("params").key()}
        assert store.get_all(SETTING, keys, "|a1|") is None
        store.put(SETTING, keys["p"], "|a1|", 2.0, 0.1)
        assert store.get_all(SETTING, keys, "|a1|") == {"k": (-math.inf, 1.5), "p": (2.0, 0.1)}
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_stats_and_export(tmp_path, capsys):
    path = tmp_path / "s.db"
    with ScoreStore(path) as store:
        store.put_many(SETTING, [(KCC, f"|a{i}|", i / 3, 2.0) for i in range(3)])
        store.put(SETTING, get_metric("params").key(), "|a0|", 0.25, 0.5)
        groups = store.stats()
    assert [(g["metric"], g["rows"], g["seconds"]) for g in groups] == [("kcc", 3, 6.0), ("params", 1, 0.5)]
    assert main(["store", "stats", "--store", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{path}: 4 scores, 6.5 s of scoring, 2 (setting, metric) groups")
    assert "       3         6.0 s  nb201 {\"C\":4,\"N\":1} synthetic batch=abc123 seed=0 cpu  kcc {" in out
    assert main(["store", "export", str(tmp_path / "all.csv"), "--store", str(path)]) == 0
    assert "4 rows written" in capsys.readouterr().out
    with (tmp_path / "all.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["value"]) for r in rows if r["metric"] == "kcc"] == [0 / 3, 1 / 3, 2 / 3]
    assert rows[0]["options"] == KCC[1] and rows[0]["seed"] == "0" and rows[0]["device"] == "cpu"


def test_store_errors_are_one_line(tmp_path, capsys):
    for argv, fragment in [
        (["store", "stats", "--store", str(tmp_path / "none.db")], "no score store at"),
        (["store", "export", "--store", str(tmp_path / "none.db")], "no score store at"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("searchkit: error: ") and fragment in err and err.count("\n") == 1
    (tmp_path / "junk.db").write_text("not a database, just text " * 100)
    with pytest.raises(SearchkitError, match="is not a searchkit score store"):
        ScoreStore(tmp_path / "junk.db")
    assert not (tmp_path / "none.db").exists()


WRITTEN = ScoreSetting("nb201", "{}", "synthetic", "abc123", 0, "cpu")
WRITER = """
import sys
from searchkit.store import ScoreSetting, ScoreStore
setting = ScoreSetting("nb201", "{}", "synthetic", "abc123", 0, "cpu")
store = ScoreStore(sys.argv[1])
start = int(sys.argv[2])
for i in range(start, start + 100000):
    store.put_many(setting, [(("kcc", "{}"), f"|a{i}|", i / 7, 0.001 * i), (("params", "{}"), f"|a{i}|", -i / 3, 0.0)])
    print(i, flush=True)
"""


def test_a_killed_writer_leaves_every_committed_row(tmp_path):
    """A subprocess writes two rows per transaction and prints each index once committed; it is
    killed with SIGKILL at seeded random moments, three times, each time continuing the same file.
    The file must pass SQLite's integrity check and hold every printed transaction, exact."""
    path = tmp_path / "s.db"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    rng = np.random.default_rng(0)
    start = 0
    for delay in rng.uniform(0.05, 0.4, size=3):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(start)], env=env,
                                stdout=subprocess.PIPE, text=True)
        first = proc.stdout.readline()  # wait until it is writing, then let it run a little
        assert first.strip() == str(start)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        printed = [int(line) for line in [first, *proc.stdout.read().split()] if line.strip()]
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        with ScoreStore(path) as store:
            held = sorted(int(row["arch"][2:-1]) for row in store.rows() if row["metric"] == "kcc")
            assert held == list(range(len(held))) and held[-1] >= printed[-1]  # at most the row in flight extra
            assert len(store) == 2 * len(held)
            for i in (0, printed[-1]):
                assert store.get(WRITTEN, ("kcc", "{}"), f"|a{i}|") == (i / 7, 0.001 * i)
                assert store.get(WRITTEN, ("params", "{}"), f"|a{i}|") == (-i / 3, 0.0)
        start = held[-1] + 1
    assert start > 30


def test_draws_come_from_the_config_and_each_has_its_own_setting():
    from searchkit.config import load_config

    cfg = load_config(overrides=["scoring.draws=3", "data.name=synthetic", "data.batch_size=8", "init_seed=5"])
    context = ScoringRecipe.from_config(cfg, {"params": get_metric("params")}, torch.device("cpu")).open()
    recipe = context.recipe
    assert recipe.draws == 3 and len(context.batches) == 3
    settings = [recipe.setting(d) for d in range(3)]
    assert [s.seed for s in settings] == [5, 6, 7] and len({s.batch for s in settings}) == 3
    single = ScoringRecipe.from_config(load_config(overrides=["data.name=synthetic", "data.batch_size=8", "init_seed=5"]),
                                       {}, torch.device("cpu")).open().recipe
    assert single.setting() == settings[0]  # draw 0 is the single-draw setting
    again = ScoringRecipe.from_dict(recipe.to_dict())
    assert [again.setting(d) for d in range(3)] == settings
    with pytest.raises(SearchkitError, match="scoring.draws must be a whole number >= 1"):
        ScoringRecipe.from_config(load_config(overrides=["scoring.draws=0", "data.name=synthetic"]), {},
                                  torch.device("cpu")).open()
