"""searchkit benchmark: pool space, score-store seeding, incumbent curves, and a tiny end-to-end
benchmark that writes summary/runs/anytime, shares scores across runs and resumes."""
import csv
import platform
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from fakes import benchmark_script
from searchkit.driver import incumbent_curve
from searchkit.scoring import import_scores
from searchkit.spaces.pool import PoolSpace
from searchkit.study import benchmark as bench
from searchkit.study.benchmark_config import load_benchmark_config
from searchkit.study.anytime import anytime_accuracy
from searchkit.study.curves import Curves, change_points
from searchkit.cli import main
from searchkit.errors import SearchkitError
from searchkit.metrics import get_metric
from searchkit.paths import find_data
from searchkit.spaces import get_space
from searchkit.rundir import HistoryRow, RunDir
from searchkit.store import ScoreSetting, ScoreStore

SPACE = get_space("nb201")
needs_data = pytest.mark.skipif(find_data("nb201/nb201_table.csv") is None or find_data("cifar10") is None,
                                reason="needs ../shared/data (NB201 table and CIFAR-10)")


pytestmark = pytest.mark.usefixtures("one_thread")


def arch(*ops):
    return SPACE.decode("|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops))


def test_pool_space_samples_members_and_projects_mutants_onto_the_pool():
    members = [arch(*["none"] * 6), arch("skip_connect", *["none"] * 5), arch(*["nor_conv_3x3"] * 6),
               arch("nor_conv_3x3", *["none"] * 5)]
    pool = PoolSpace(SPACE, members)
    rng = np.random.default_rng(0)
    assert {pool.sample(rng) for _ in range(80)} == set(members)
    children = [pool.mutate(members[0], rng) for _ in range(200)]
    assert set(children) <= set(members[1:])  # always a member, never the parent
    # a mutant that is a member is kept (1/24 of mutants of the all-none cell are members[1])
    assert children.count(members[1]) > 200 / 24 / 2
    # a mutant of the all-3x3 cell on edges 1-5 is nearest to members[3] (4 or 5 edges away)
    children = [pool.mutate(members[2], rng) for _ in range(100)]
    assert set(children) <= {members[0], members[1], members[3]} and children.count(members[3]) > 50
    assert pool.decode(pool.encode(members[2])) == members[2] and pool.name == "nb201"


def test_anytime_accuracy_is_the_incumbent_at_each_simulated_budget():
    class Table:  # index = the arch string's number
        def index_of(self, text):
            return int(text)

    rows = [HistoryRow(0, "0", None, 0.9, 5.0, False), HistoryRow(1, "1", None, 80.0, 0.0, False, "validate", 60.0),
            HistoryRow(2, "2", None, 85.0, 0.0, False, "validate", 60.0),
            HistoryRow(3, "3", None, 70.0, 0.0, False, "validate", 900.0)]
    accuracy = np.array([10.0, 11.0, 12.0, 13.0])
    # before 100 s: arch 1 validated (60 s); then arch 2 (120 s) leads; arch 3 never beats it
    curve = incumbent_curve(rows, simulated_only=True)
    assert anytime_accuracy(curve, accuracy, Table(), (50, 100, 432, 5000)) == [10.0, 11.0, 12.0, 12.0]
    assert np.isnan(anytime_accuracy(incumbent_curve(rows[1:], simulated_only=True), accuracy, Table(), (10,))[0])
    # the change points alone give the same figures at every budget
    checkpoints = tuple(range(0, 1100, 7))
    assert anytime_accuracy(change_points(curve), accuracy, Table(), checkpoints) == anytime_accuracy(
        curve, accuracy, Table(), checkpoints)
    assert change_points([(0.0, "a"), (1.0, "a"), (2.0, "b"), (3.0, "b"), (4.0, "b")]) == [
        (0.0, "a"), (2.0, "b"), (4.0, "b")]
    assert np.isnan(anytime_accuracy(None, accuracy, Table(), (10, 20))).all()


def test_curves_are_kept_once_and_a_curve_cut_by_a_kill_is_kept_again(tmp_path):
    writer = RunDir(tmp_path / "runs" / "a").history_writer([])
    for row in (HistoryRow(0, "x", None, 0.5, 2.0, False), HistoryRow(1, "y", None, 80.0, 0.0, False, "validate", 9.0)):
        writer.append(row)
    writer.close()
    curves = Curves(tmp_path)
    assert curves.get("runs/a", True) == [(0.0, "x"), (9.0, "y")] and curves.get("runs/a", False) == [(2.0, "x"), (11.0, "y")]
    assert curves.get("runs/missing", True) is None
    kept = (tmp_path / "curves.csv").read_text()
    assert Curves(tmp_path).get("runs/a", False) == [(2.0, "x"), (11.0, "y")]
    assert (tmp_path / "curves.csv").read_text() == kept  # read, not written again
    (tmp_path / "curves.csv").write_text(kept[:-12])  # a kill tore the last curve's last line
    assert Curves(tmp_path).get("runs/a", False) == [(2.0, "x"), (11.0, "y")]  # dropped, then kept from the history
    assert (tmp_path / "curves.csv").read_text() == kept


def test_incumbent_is_best_score_until_a_validation_then_best_validated():
    rows = [HistoryRow(0, "a", None, 0.5, 2.0, False), HistoryRow(1, "b", None, 0.9, 2.0, False),
            HistoryRow(2, "a", None, 80.0, 0.0, False, "validate", 100.0),
            HistoryRow(3, "c", None, 0.1, 2.0, False),
            HistoryRow(4, "b", None, 85.0, 0.0, False, "validate", 50.0)]
    assert incumbent_curve(rows) == [(2.0, "a"), (4.0, "b"), (104.0, "a"), (106.0, "a"), (156.0, "b")]


def test_import_checks_the_recipe_and_never_modifies_the_directory(tmp_path):
    settings = {"dataset": "cifar10", "batch_size": 64, "data_seed": 0, "init_seed": 0, "build": {"C": 16, "N": 5},
                "device": "cpu", "batch_fingerprint": "abc"}
    setting = ScoreSetting("nb201", '{"C":16,"N":5}', "cifar10", "abc", 0, "cpu")
    good = tmp_path / "good"
    good.mkdir()
    (good / "settings.yaml").write_text(yaml.safe_dump({"metrics": ["naswot", "kcc:eps=0.5"], **settings}))
    text = "index,arch_str,naswot,kcc:eps=0.5,naswot_s,kcc:eps=0.5_s\n1,|a|,700.5,0.3,0.4,9.0\n2,|b|,650.0,0.2,0.5,8.0\n3,|c|,1.0"
    (good / "scores.csv").write_text(text)  # the last row is still being written
    store = ScoreStore(tmp_path / "scores.db")
    assert import_scores(store, good, setting).endswith("2 architectures x 2 metrics")
    assert store.get(setting, get_metric("naswot").key(), "|a|") == (700.5, 0.4)
    assert store.get(setting, get_metric("kcc", eps=0.5).key(), "|b|") == (0.2, 8.0)
    assert store.get(setting, get_metric("kcc").key(), "|b|") is None  # other options, other metric
    assert store.get(setting, get_metric("naswot").key(), "|c|") is None and len(store) == 4
    assert (good / "scores.csv").read_text() == text
    other = tmp_path / "other"
    other.mkdir()
    (other / "settings.yaml").write_text(yaml.safe_dump({"metrics": ["naswot"], **settings, "batch_fingerprint": "abd",
                                                          "device": "cuda:0"}))
    (other / "scores.csv").write_text("index,arch_str,naswot,naswot_s\n")
    assert "(batch, device differ)" in import_scores(store, other, setting)
    assert "not used" in import_scores(store, tmp_path / "missing", setting)


TINY = """
name: tiny
init_seed: 0
data: {name: cifar10, batch_size: 8}
space: {name: nb201, build: {C: 2, N: 1}}
budget: {archs: 4}
validate: {method: table, epochs: 12}
evaluate: {method: table}
benchmark:
  seeds: 2
  pool: {n: 12, seed: 0}
  metrics: [naswot]
  strategies:
    - {name: random}
    - {name: evolution, label: REA, options: {population: 3, sample_size: 2}, budget: {archs: 6}}
    - {name: hnas, label: HNAS, options: {pool: 5, iterations: 3, init: 2, grid: 8}, budget: {archs: null, simulated_seconds: 1.0e+6}}
    - {name: nasi, label: NASI, metrics: [ntk_trace], options: {steps: 2, nu_samples: 2, C: 2, N: 1, batch_size: 8}}
    - {name: random, label: random-train, metrics: [validation], budget: {archs: null, simulated_seconds: 600}}
"""


def read_csv(path):
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@needs_data
def test_tiny_benchmark_writes_reports_shares_scores_and_resumes(tmp_path, monkeypatch, capsys):
    config = tmp_path / "bench.yaml"
    config.write_text(TINY)
    out = tmp_path / "out"
    finished = []  # with REPORT_EVERY = 0 the summary is rewritten after every run
    monkeypatch.setattr(bench, "REPORT_EVERY", 0.0)
    write_summary = bench.write_summary
    monkeypatch.setattr(bench, "write_summary", lambda o, n, rows, notes, *rest: (finished.append(notes[-1]),
                                                                                  write_summary(o, n, rows, notes, *rest)))
    assert main(["benchmark", "--config", str(config), "--out", str(out), "--quiet"]) == 0
    assert finished == [f"runs finished: {k} of 10" for k in range(1, 11)] + ["runs finished: 10 of 10"]
    monkeypatch.setattr(bench, "write_summary", write_summary)
    assert "| HNAS | naswot | cifar10 | 2 |" in capsys.readouterr().out
    runs = read_csv(out / "runs.csv")
    assert len(runs) == 10
    assert {(r["strategy"], r["metric"]) for r in runs} == {
        ("random", "naswot"), ("REA", "naswot"), ("HNAS", "naswot"), ("NASI", "ntk_trace"), ("random-train", "validation")}
    summary = (out / "summary.md").read_text()
    assert "| REA | naswot | cifar10 | 2 |" in summary and "| optimal | 94.37 | 73.51 | 47.31 | - |" in summary
    assert f"- software: python {platform.python_version()}, torch {torch.__version__.split('+')[0]}" in summary
    assert (out / "anytime.png").stat().st_size > 0
    for row in runs:
        assert 0 < float(row["C10_test"]) <= 100 and float(row["wall_seconds"]) >= 0
        if row["strategy"] == "random-train":
            assert row["selected_by"] == "validation" and 0 < float(row["simulated_seconds"]) <= 600
        if row["strategy"] == "HNAS":
            assert row["selected_by"] == "validation" and row["validations"] == "3"
    # the whole pool was scored once for both metrics; the runs were served by the store
    with ScoreStore(out / "scores.db") as store:
        entries = list(store.rows())
    assert len(entries) == 2 * 12 == len({(e["metric"], e["options"], e["arch"]) for e in entries})
    assert {(e["metric"], e["options"]) for e in entries} == {get_metric(m).key() for m in ("naswot", "ntk_cond")}

    # resume: a scoring run lost its row and its best.json; no score is recomputed
    lost = next(i for i, r in enumerate(runs) if r["strategy"] == "REA")
    lines = (out / "runs.csv").read_text().splitlines(keepends=True)
    (out / "runs.csv").write_text("".join(line for i, line in enumerate(lines) if i != lost + 1))
    (out / runs[lost]["run"] / "best.json").unlink()
    monkeypatch.setattr("searchkit.scoring.score_metrics", lambda *a: pytest.fail("a stored score was recomputed"))
    assert main(["benchmark", "--resume", str(out), "--quiet"]) == 0
    again = read_csv(out / "runs.csv")
    assert len(again) == len(runs) and again[-1]["run"] == runs[lost]["run"]
    for key in ("arch", "C10_test", "archs_scored", "validations", "simulated_seconds"):
        assert again[-1][key] == runs[lost][key]
    assert float(again[-1]["wall_seconds"]) == pytest.approx(float(runs[lost]["wall_seconds"]), abs=1e-2)

    # a fresh clone holds runs.csv and curves.csv, not runs/: its anytime table is the same; without
    # curves.csv the runs are left out of it, and the notes say so
    def anytime(directory):
        text = (directory / "summary.md").read_text()
        return text.split("Anytime:")[1].split("Published")[0]

    for name in ("runs.csv", "curves.csv", "config.yaml"):
        (tmp_path / "clone" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "clone" / name).write_bytes((out / name).read_bytes())
    table = get_space("nb201").benchmark(None)
    bench.report(bench.Study(tmp_path / "clone", bench.RUN_FIELDS), "tiny", [], table, 10)
    lost_hnas = "| HNAS | naswot | cifar10 | - | - | - | - |"
    assert anytime(tmp_path / "clone") == anytime(out) and lost_hnas not in anytime(out)
    assert (tmp_path / "clone" / "anytime.png").stat().st_size > 0
    (tmp_path / "clone" / "curves.csv").unlink()
    bench.report(bench.Study(tmp_path / "clone", bench.RUN_FIELDS), "tiny", [], table, 10)
    assert lost_hnas in anytime(tmp_path / "clone")
    assert "anytime: 10 of 10 runs have neither a curve" in (tmp_path / "clone" / "summary.md").read_text()

    config.write_text(TINY.replace("seeds: 2", "seeds: 0"))
    with pytest.raises(SearchkitError, match="benchmark.seeds >= 1"):
        load_benchmark_config(config)


@needs_data
def test_a_pool_left_unscored_is_scored_only_where_the_runs_ask(tmp_path):
    """``pool.prescore: false``: the runs score the members they sample and nothing else, and select
    what they select over a prescored pool."""
    random_only = TINY.split("    - {name: evolution")[0]
    outs = {}
    for prescore in (True, False):
        config = tmp_path / f"bench-{prescore}.yaml"
        config.write_text(random_only.replace("pool: {n: 12, seed: 0}", f"pool: {{n: 12, seed: 0, prescore: {str(prescore).lower()}}}"))
        outs[prescore] = bench.run_benchmark(config, tmp_path / f"out-{prescore}", progress=False)
    lazy = read_csv(outs[False] / "runs.csv")
    assert [r["arch"] for r in lazy] == [r["arch"] for r in read_csv(outs[True] / "runs.csv")]
    sampled = {row.arch for r in lazy for row in RunDir(outs[False] / r["run"]).read_history()}
    with ScoreStore(outs[False] / "scores.db") as store:
        stored = {e["arch"] for e in store.rows()}
    assert stored == sampled and len(stored) < 12
    assert "the runs scored the members they asked for" in (outs[False] / "summary.md").read_text()


@needs_data
def test_replay_rebuilds_the_curves_of_a_clone_and_checks_each_run_against_its_row(tmp_path, capsys):
    """benchmarks/replay_curves.py on a benchmark whose runs/ and curves.csv are gone: every run is run
    again, matches its row, and the anytime table comes back; a row that its rerun contradicts is
    reported (exit 1), and replaced only with --accept."""
    import shutil

    replay = benchmark_script("replay_curves")
    config = tmp_path / "bench.yaml"
    config.write_text(TINY.split("    - {name: hnas")[0])  # random and REA
    out = bench.run_benchmark(config, tmp_path / "out", progress=False)
    anytime = (out / "summary.md").read_text().split("Anytime:")[-1]
    rows = read_csv(out / "runs.csv")
    shutil.rmtree(out / "runs")
    (out / "curves.csv").unlink()
    assert replay.main([str(out)]) == 0 and "replayed 4 runs; 0 differ" in capsys.readouterr().out
    assert (out / "summary.md").read_text().split("Anytime:")[-1] == anytime and read_csv(out / "runs.csv") == rows

    wrong = [dict(rows[0], arch="|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"), *rows[1:]]
    bench.Study(out, bench.RUN_FIELDS).rewrite(wrong)
    (out / "curves.csv").unlink()
    assert replay.main([str(out)]) == 1 and f"{rows[0]['run']}: the rerun differs in arch" in capsys.readouterr().out
    assert read_csv(out / "runs.csv") == wrong and not Curves(out).stored(rows[0]["run"])
    assert replay.main([str(out), "--accept"]) == 0 and read_csv(out / "runs.csv")[0]["arch"] == rows[0]["arch"]
    assert Curves(out).stored(rows[0]["run"])


@needs_data
def test_a_search_cycling_over_answered_queries_stops(tmp_path, monkeypatch):
    """Training-based random search over a 3-architecture pool with a simulated budget it cannot
    spend: repeats are free, so only the consecutive-repeat guard ends it."""
    from searchkit import driver
    from searchkit.engine import run_search

    monkeypatch.setattr(driver, "MAX_REPEATS", 25)
    pool = PoolSpace(SPACE, [arch(*[op] * 6) for op in ("nor_conv_3x3", "skip_connect", "avg_pool_3x3")])
    config = {"data": {"name": "cifar10", "batch_size": 8}, "metric": {"name": "validation"},
              "strategy": {"name": "random"}, "budget": {"archs": None, "simulated_seconds": 1e9},
              "evaluate": {"method": "table"}}
    result = run_search(config, out=tmp_path / "run", progress=False, space=pool)
    rows = result.history
    assert result.validations == len(rows) and result.unique_archs == 3 and rows[-1].cached
    assert all(r.cached for r in rows[-25:]) and not all(r.cached for r in rows[-26:])
    assert result.selected_by == "validation" and result.score == max(r.score for r in rows)


def test_seeds_flag_caps_an_entrys_own_seeds(tmp_path):
    """Issue 29: ``--seeds 1`` still ran NASI with its own ``seeds: 5``."""
    from searchkit.study.benchmark_config import load_benchmark_config

    config = tmp_path / "bench.yaml"
    config.write_text(TINY.replace("metrics: [ntk_trace],", "metrics: [ntk_trace], seeds: 5,"))
    _, bench = load_benchmark_config(config)
    assert sorted({seed for entry, _, seed in bench.runs() if entry.title == "NASI"}) == [0, 1, 2, 3, 4]
    assert {seed for _, _, seed in bench.with_seeds(1).runs()} == {0}
    assert {seed for entry, _, seed in bench.with_seeds(8).runs() if entry.title == "NASI"} == set(range(5))
    assert {seed for entry, _, seed in bench.with_seeds(8).runs() if entry.title == "REA"} == set(range(8))


def test_anytime_plot_labels_its_reference_lines(tmp_path, monkeypatch):
    """Issue 29: anytime.png's dashed optimum line had no label."""
    from matplotlib.figure import Figure

    from searchkit.rundir import RunDir
    from searchkit.study.benchmark_report import plot_anytime

    class Table:  # index = the arch string's number
        def index_of(self, text):
            return int(text)

        def column(self, dataset, split, epochs):
            return np.array([90.0, 91.0, 94.37])

    runs = {"r": [HistoryRow(0, "0", 0, 0.9, 5.0, False), HistoryRow(1, "1", 1, 0.95, 5.0, False)],
            "h": [HistoryRow(0, "1", 1, 80.0, 0.0, False, "validate", 60.0)]}
    for name, history in runs.items():
        writer = RunDir(tmp_path / name).history_writer([])
        for row in history:
            writer.append(row)
        writer.close()
    saved = []
    monkeypatch.setattr(Figure, "savefig", lambda self, path, *a, **k: saved.append(self))
    plot_anytime(tmp_path, [{"run": "r", "strategy": "random", "metric": "kcc", "validations": "0"},
                            {"run": "h", "strategy": "HNAS", "metric": "kcc", "validations": "1"}], Table(),
                 Curves(tmp_path))
    legends = [[t.get_text() for t in ax.get_legend().get_texts()] for ax in saved[0].axes]
    assert legends[0] == ["random + kcc", "best cell in the table (94.37 %)"]
    assert sorted(legends[1]) == ["HNAS + kcc", "best cell in the table (94.37 %)", "checkpoints (100, 432, 1000, 3051 s)"]


@needs_data
def test_a_cifar100_search_validates_on_cifar100s_column(tmp_path):
    """data.target: cifar100 with CIFAR-10 scoring images: every validation is CIFAR-100's 12-epoch
    validation accuracy, charged CIFAR-100's training time, and the answer is read on its test column."""
    from searchkit.engine import run_search

    members = [arch(*[op] * 6) for op in ("nor_conv_3x3", "skip_connect", "avg_pool_3x3", "nor_conv_1x1")]
    config = {"data": {"name": "cifar10", "target": "cifar100", "batch_size": 8}, "metric": {"name": "validation"},
              "strategy": {"name": "random"}, "budget": {"archs": 6}, "validate": {"method": "auto"},
              "evaluate": {"method": "auto"}}
    result = run_search(config, out=tmp_path / "run", progress=False, space=PoolSpace(SPACE, members))
    table = SPACE.benchmark(None)
    for row in result.history:
        index = table.index_of(row.arch)
        assert row.score == table.accuracy(index, "cifar100", "valid", 12) != table.accuracy(index, "cifar10", "valid", 12)
        assert row.simulated_seconds == (0.0 if row.cached else pytest.approx(table.train_time(index, "cifar100", 12)))
    assert result.evaluation.dataset == "cifar100"
    assert result.evaluation.test_accuracy == table.accuracy(result.index, "cifar100", "test", 200)
    assert result.score == max(row.score for row in result.history)  # the best on CIFAR-100's column
    for bad, message in (({"data": {**config["data"], "target": "mnist"}}, "no results for 'mnist'"),
                         ({"validate": {"method": "train"}}, "validate.method=train trains on"),
                         ({"evaluate": {"method": "train"}}, "use evaluate.method table")):
        with pytest.raises(SearchkitError, match=message):
            run_search({**config, **bad}, out=tmp_path / str(len(message)), progress=False, space=PoolSpace(SPACE, members))


AXIS = """
name: axis
init_seed: 0
data: {name: cifar10, batch_size: 8}
space: {name: nb201, build: {C: 2, N: 1}}
budget: {archs: 3}
validate: {method: table, epochs: 12}
evaluate: {method: table}
benchmark:
  seeds: 2
  datasets: [cifar10, cifar100]
  pool: {n: 8, seed: 0}
  metrics: [naswot]
  strategies:
    - {name: random, datasets: [cifar10]}
    - {name: random, label: random-train, metrics: [validation], budget: {archs: 4}}
"""


@needs_data
def test_the_dataset_axis_searches_each_dataset_for_itself(tmp_path):
    config = tmp_path / "bench.yaml"
    config.write_text(AXIS)
    out = tmp_path / "out"
    assert main(["benchmark", "--config", str(config), "--out", str(out), "--quiet"]) == 0
    runs = read_csv(out / "runs.csv")
    assert sorted((r["strategy"], r["dataset"]) for r in runs) == sorted(
        [("random", "cifar10")] * 2 + [("random-train", "cifar10")] * 2 + [("random-train", "cifar100")] * 2)
    table = SPACE.benchmark(None)
    for row in runs:  # the CIFAR-10 runs keep their names; a CIFAR-100 run validated on CIFAR-100
        assert row["run"].endswith(f"{'__cifar100' if row['dataset'] == 'cifar100' else ''}__s{row['seed']}")
        if row["strategy"] == "random-train":
            history = RunDir(out / row["run"]).read_history()
            assert [r.score for r in history] == [table.accuracy(table.index_of(r.arch), row["dataset"], "valid", 12)
                                                  for r in history]
            assert float(row["score"]) == max(r.score for r in history)
    summary = (out / "summary.md").read_text()
    assert "| random-train | validation | cifar100 | 2 |" in summary and "Each dataset searched for itself" in summary
    line = next(l for l in summary.splitlines() if l.startswith("| random | naswot | ") and "†" in l)
    assert line.count("†") == 2  # C100 and IN16 of a training-free row: its CIFAR-10 runs' cells
    per_dataset = summary.split("Each dataset searched for itself")[1]
    assert next(l for l in per_dataset.splitlines() if l.startswith("| random-train | validation | ")).endswith(" - |")
    assert "training-free scores are cifar10 scores" in summary
    config.write_text(AXIS.replace("[cifar10, cifar100]", "[cifar10, mnist]"))
    with pytest.raises(SearchkitError, match="no results for 'mnist'"):
        bench.run_benchmark(config, tmp_path / "bad", progress=False)
