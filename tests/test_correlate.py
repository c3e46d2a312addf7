"""searchkit correlate: streamed scores, resume, and the correlation report."""
from unittest import mock

import numpy as np
import pytest
from scipy import stats

from searchkit import correlate as correlate_module
from searchkit import workers
from searchkit.cli import main
from searchkit.correlate import ScoreFile, parse_metric_spec, read_indices, run_correlate, sample_indices
from searchkit.errors import SearchkitError
from searchkit.paths import find_data
from searchkit.tabular import NB201Table

pytestmark = pytest.mark.skipif(find_data("nb201/nb201_table.csv") is None, reason="needs the NB201 table")
METRICS = ["kcc", "kcc:eps=0.5:bn=eval", "params"]
SMALL = dict(dataset="synthetic", batch_size=8, build={"C": 4, "N": 1}, progress=False)


def test_metric_specs_carry_options():
    label, metric = parse_metric_spec("kcc:eps=0.5:bn=eval")
    assert label == "kcc:eps=0.5:bn=eval" and metric.eps == 0.5 and metric.bn == "eval"
    with pytest.raises(SearchkitError, match="name:key=value"):
        parse_metric_spec("kcc:eps")
    with pytest.raises(SearchkitError, match="bad options for metric 'kcc'"):
        parse_metric_spec("kcc:colour=1")


def test_index_lists(tmp_path):
    assert sample_indices(5, 0, 15625) == sample_indices(5, 0, 15625) != sample_indices(5, 1, 15625)
    assert len(set(sample_indices(300, 0, 15625))) == 300
    path = tmp_path / "archs.txt"
    path.write_text("# chosen\n3\n\n15624  # the last one\n")
    assert read_indices(path, 15625) == [3, 15624]
    path.write_text("3\n15625\n")
    with pytest.raises(SearchkitError, match="archs.txt:2: '15625' is not an NB201 index"):
        read_indices(path, 15625)


def test_scores_report_and_resume(tmp_path):
    indices = [1, 7, 42, 512, 9000]
    out = run_correlate(METRICS, indices, tmp_path / "full", **SMALL)
    rows = ScoreFile(out / "scores.csv", METRICS).read()
    assert list(rows) == indices
    table = NB201Table.load()
    acc = table.column("cifar10", "test", 200)[indices]
    assert np.isfinite(stats.spearmanr([rows[i]["kcc"] for i in indices], acc)[0])
    report = (out / "correlation.md").read_text()  # 5 < 10 architectures: no correlations shown
    assert "Not meaningful: only 5 architectures" in report and "| kcc | 5 | n/a |" in report
    assert (out / "scatter_kcc.png").stat().st_size > 1000
    assert all(0 < rows[i]["kcc"] < 1 and rows[i]["kcc_s"] > 0 for i in indices)

    # an interrupted run: two complete rows and a torn third one
    partial = tmp_path / "partial"
    partial.mkdir()
    lines = (out / "scores.csv").read_text().splitlines(keepends=True)
    (partial / "scores.csv").write_text("".join(lines[:3]) + lines[3][:20])
    torn = (partial / "scores.csv").read_bytes()
    inode = (partial / "scores.csv").stat().st_ino
    assert sorted(ScoreFile(partial / "scores.csv", METRICS).read()) == sorted(indices[:2])
    # reading never rewrites: a run still appending to the file must not lose its rows to an unlinked copy
    assert (partial / "scores.csv").read_bytes() == torn and (partial / "scores.csv").stat().st_ino == inode
    with mock.patch.object(workers, "score_metrics", wraps=workers.score_metrics) as spy:
        run_correlate(METRICS, indices, partial, **SMALL)
    assert spy.call_count == 3
    resumed = ScoreFile(partial / "scores.csv", METRICS).read()
    for i in indices:
        assert resumed[i]["kcc"] == rows[i]["kcc"] and resumed[i]["params"] == rows[i]["params"]
    assert (partial / "scores.csv").read_text().count("|nor_conv") >= 1  # arch strings survive the rewrite
    with pytest.raises(SearchkitError, match="written for other metrics"):
        run_correlate(["kcc"], indices, partial, **SMALL)
    with pytest.raises(SearchkitError, match=r"scored with other settings \(batch_size, batch_fingerprint differ\)"):
        run_correlate(METRICS, indices, partial, **{**SMALL, "batch_size": 4})


def test_resume_reads_the_recorded_settings_and_orders_rows_as_requested(tmp_path):
    out = run_correlate(["params"], [9000, 1], tmp_path / "c", **SMALL)
    (out / "indices.txt").write_text("42\n9000\n1\n")  # as if cut short before scoring 42 first
    with mock.patch.object(workers, "score_metrics", wraps=workers.score_metrics) as spy:
        assert main(["correlate", "--resume", str(out), "--quiet"]) == 0
    assert spy.call_count == 1
    lines = (out / "scores.csv").read_text().splitlines()
    assert [int(line.split(",")[0]) for line in lines[1:]] == [42, 9000, 1]  # the requested order
    assert (out / "settings.yaml").read_text().count("batch_size: 8") == 1


def test_cli_needs_exactly_one_architecture_source(capsys, tmp_path):
    assert main(["correlate", "--metrics", "kcc", "--out", str(tmp_path)]) == 2
    assert "exactly one of --n N" in capsys.readouterr().err
    assert main(["correlate", "--metrics", "kcc", "--n", "3", "--archs", "x", "--out", str(tmp_path)]) == 2


def test_tenas_rank_combination_is_reported(tmp_path):
    out = run_correlate(["ntk_cond", "linear_regions"], [1, 2, 3, 4], tmp_path, **SMALL)
    assert "| tenas_rank | 4 |" in (out / "correlation.md").read_text()
    ranks = correlate_module.ScoreFile(out / "scores.csv", ["ntk_cond", "linear_regions"]).read()
    assert np.isfinite([r["ntk_cond"] for r in ranks.values()]).all()
