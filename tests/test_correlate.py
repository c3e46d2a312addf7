"""searchkit correlate: streamed scores, resume, and the correlation report."""
from unittest import mock

import numpy as np
import pytest
from scipy import stats

import csv
import shutil
from pathlib import Path

import yaml

from searchkit import scoring
from searchkit.cli import main
from searchkit.correlate import distinct, read_indices, read_scores, run_correlate, sample_indices
from searchkit.errors import SearchkitError
from searchkit.scoring import import_scores
from searchkit.store import ScoreStore
from searchkit.paths import find_data, portable
from searchkit.tabular import NB201Table

pytestmark = pytest.mark.skipif(find_data("nb201/nb201_table.csv") is None, reason="needs the NB201 table")
METRICS = ["kcc", "kcc:eps=0.5:bn=eval", "params"]
SMALL = dict(dataset="synthetic", batch_size=8, build={"C": 4, "N": 1}, progress=False)


def test_index_lists(tmp_path):
    assert sample_indices(5, 0, 15625) == sample_indices(5, 0, 15625) != sample_indices(5, 1, 15625)
    assert len(set(sample_indices(300, 0, 15625))) == 300
    path = tmp_path / "archs.txt"
    path.write_text("# chosen\n3\n\n15624  # the last one\n")
    assert read_indices(path, 15625) == [3, 15624]
    path.write_text("3\n15625\n")
    with pytest.raises(SearchkitError, match="archs.txt:2: '15625' is not a benchmark index"):
        read_indices(path, 15625)


def test_too_few_or_repeated_architectures():
    """Regression: 2 architectures (or duplicates) printed Spearman 1.000 in every column."""
    with pytest.raises(SearchkitError, match="a correlation over 2 distinct architectures is not meaningful; give at least 10"):
        distinct([5, 9, 5, 9])
    unique, note = distinct(list(range(10)) + [3, 4])
    assert unique == list(range(10)) and note == "2 repeated indices dropped; 10 distinct architectures"
    assert distinct(list(range(12))) == (list(range(12)), None)


INDICES = [1, 7, 42, 512, 9000, 3, 77, 1024, 2048, 15000]


def test_scores_report_and_resume(tmp_path):
    out = run_correlate(METRICS, INDICES, tmp_path / "full", **SMALL)
    rows = read_scores(out / "scores.csv")
    assert list(rows) == INDICES
    table = NB201Table.load()
    acc = table.column("cifar10", "test", 200)[INDICES]
    rho = stats.spearmanr([rows[i]["kcc"] for i in INDICES], acc)[0]
    assert f"| kcc | 10 | {rho:.3f} [" in (out / "correlation.md").read_text()
    assert (out / "scatter_kcc.png").stat().st_size > 1000
    assert all(0 < rows[i]["kcc"] < 1 and rows[i]["kcc_s"] > 0 for i in INDICES)

    # an interrupted run in a fresh clone (no scores.db): its settings and two complete rows and a torn third one
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(out / "settings.yaml", partial / "settings.yaml")
    lines = (out / "scores.csv").read_text().splitlines(keepends=True)
    (partial / "scores.csv").write_text("".join(lines[:3]) + lines[3][:20])
    torn = (partial / "scores.csv").read_bytes()
    with ScoreStore(tmp_path / "probe.db") as probe:  # importing only reads the directory
        assert import_scores(probe, partial).endswith("2 architectures x 3 metrics") and len(probe) == 6
    assert (partial / "scores.csv").read_bytes() == torn
    with mock.patch.object(scoring, "score_metrics", wraps=scoring.score_metrics) as spy:
        run_correlate(METRICS, INDICES, partial, **SMALL)
    assert spy.call_count == 8  # the two committed rows came from scores.csv
    resumed = read_scores(partial / "scores.csv")
    for i in INDICES:
        assert resumed[i]["kcc"] == rows[i]["kcc"] and resumed[i]["params"] == rows[i]["params"]
    assert (partial / "scores.csv").read_text().count("|nor_conv") >= 1  # arch strings survive the rewrite
    with pytest.raises(SearchkitError, match="written for other metrics"):
        run_correlate(["kcc"], INDICES, partial, **SMALL)
    with pytest.raises(SearchkitError, match=r"scored with other settings \(batch differ\)"):
        run_correlate(METRICS, INDICES, partial, **{**SMALL, "batch_size": 4})


def test_resume_reads_the_recorded_settings_and_orders_rows_as_requested(tmp_path):
    first = list(range(100, 110))
    out = run_correlate(["params"], first, tmp_path / "c", **SMALL)
    (out / "indices.txt").write_text("".join(f"{i}\n" for i in [555, *first, 556]))  # cut short before 555 and 556
    with mock.patch.object(scoring, "score_metrics", wraps=scoring.score_metrics) as spy:
        assert main(["correlate", "--resume", str(out), "--quiet"]) == 0
    assert spy.call_count == 2
    lines = (out / "scores.csv").read_text().splitlines()
    assert [int(line.split(",")[0]) for line in lines[1:]] == [555, *first, 556]  # the requested order
    assert (out / "settings.yaml").read_text().count("batch_size: 8") == 1


def test_cli_needs_exactly_one_architecture_source(capsys, tmp_path):
    assert main(["correlate", "--metrics", "kcc", "--out", str(tmp_path)]) == 2
    assert "exactly one of --n N" in capsys.readouterr().err
    assert main(["correlate", "--metrics", "kcc", "--n", "3", "--archs", "x", "--out", str(tmp_path)]) == 2


def test_tenas_rank_combination_is_reported(tmp_path):
    out = run_correlate(["ntk_cond", "linear_regions"], INDICES, tmp_path, **SMALL)
    assert "| tenas_rank | 10 |" in (out / "correlation.md").read_text()
    ranks = read_scores(out / "scores.csv")
    assert np.isfinite([r["ntk_cond"] for r in ranks.values()]).all()


def test_draws_are_stored_per_draw_reused_resumed_and_extended(tmp_path):
    """Issue 28: draw d = init seed + d and data seed + d, one store row per draw; draw 0 is the
    single-draw score (reused), k grows without rescoring the first k, exports round-trip."""
    metrics, store = ["kcc", "params"], tmp_path / "shared.db"
    single = run_correlate(metrics, INDICES, tmp_path / "one", store=store, **SMALL)

    def calls(k: int, out, **kwargs) -> int:
        with mock.patch.object(scoring, "score_metrics", wraps=scoring.score_metrics) as spy:
            run_correlate(metrics, INDICES, out, draws=k, **{"store": store, **kwargs}, **SMALL)
        return spy.call_count

    two = tmp_path / "two"
    assert calls(2, two) == 10  # draw 0 came from the single-draw run's rows
    with ScoreStore(store) as db:
        assert len(db) == 10 * 2 * 2 and {row["seed"] for row in db.rows()} == {0, 1}
    draws = list(csv.DictReader((two / "draws.csv").open()))
    assert len(draws) == 20 and {r["draw"] for r in draws} == {"0", "1"}
    means, first = read_scores(two / "scores.csv"), read_scores(single / "scores.csv")
    for index in INDICES:
        values = [float(r["kcc"]) for r in draws if int(r["index"]) == index]
        assert means[index]["kcc"] == pytest.approx(sum(values) / 2)
        assert values[0] == first[index]["kcc"]  # draw 0 is the single-draw score
    assert calls(4, two) == 20  # draws 2 and 3 only
    assert calls(4, two) == 0  # resumed: everything stored

    clone = tmp_path / "clone"  # a fresh clone: the committed files, no store; one draw row torn
    clone.mkdir()
    for name in ("settings.yaml", "scores.csv"):
        shutil.copy(two / name, clone / name)
    lines = (two / "draws.csv").read_text().splitlines(keepends=True)
    (clone / "draws.csv").write_text("".join(lines[:-1]) + lines[-1][:15])
    assert calls(4, clone, store=None) == 1

    old = tmp_path / "old"  # an export written before draws existed imports as draw 0
    old.mkdir()
    shutil.copy(single / "scores.csv", old / "scores.csv")
    settings = yaml.safe_load((single / "settings.yaml").read_text())
    for key in ("draws", "draw_fingerprints"):
        del settings[key]
    (old / "settings.yaml").write_text(yaml.safe_dump(settings))
    assert calls(2, old, store=None) == 10


def test_darts_ranking_table_end_to_end(tmp_path):
    """Issue 27: correlate works on any space with a ranking table, here DARTS' 1,000 trained cells
    (most read one node twice, which the DARTS space decodes for them)."""
    if find_data("darts/darts_1000_cifar10_valid.csv") is None:
        pytest.skip("needs the DARTS table")
    from searchkit.spaces import get_space
    from searchkit.tabular.darts import DEFAULT_CSV, DartsTable

    out = tmp_path / "darts"
    assert main(["correlate", "--space", "darts", "--metrics", "params,naswot", "--n", "10", "--dataset", "synthetic",
                 "--batch-size", "8", "--build", "C=4", "--build", "layers=2", "--out", str(out), "--quiet"]) == 0
    table = DartsTable.load()
    indices = sample_indices(10, 0, 1000)
    rows = read_scores(out / "scores.csv")
    assert list(rows) == indices
    space = get_space("darts")
    nets = [space.build(space.decode(table.arch_str(i)), 10, C=4, layers=2) for i in indices]
    assert [rows[i]["params"] for i in indices] == pytest.approx([sum(p.numel() for p in n.parameters()) / 1e6
                                                                   for n in nets])
    rho = stats.spearmanr([rows[i]["params"] for i in indices], table.column("cifar10", "valid", 200)[indices])[0]
    text = (out / "correlation.md").read_text()
    assert f"| params | 10 | {rho:.3f} [" in text and "| metric | n | CIFAR-10 valid | mean s/arch |" in text
    assert "10 darts cells of DARTS-1000 (SWAP)" in text and "rank correlation only" in text
    settings = yaml.safe_load((out / "settings.yaml").read_text())
    assert settings["space"] == "darts" and Path(settings["table"]).resolve() == find_data(DEFAULT_CSV)
    assert main(["correlate", "--resume", str(out), "--quiet"]) == 0  # resumable like any correlate run
    assert read_scores(out / "scores.csv") == rows


def test_settings_record_portable_paths(tmp_path, monkeypatch):
    """Issue 27: settings.yaml recorded the writing machine's absolute table path."""
    repo, shared = tmp_path / "repo", tmp_path / "shared" / "data" / "t.csv"
    repo.mkdir()
    monkeypatch.chdir(repo)
    assert portable(shared) == "../shared/data/t.csv"  # beside the repository: relative to it
    assert portable(repo / "runs" / "x.db") == "runs/x.db"
    assert portable("mine/t.csv") == "mine/t.csv"  # as given
    assert portable("/elsewhere/t.csv") == "/elsewhere/t.csv"  # nothing to be relative to
