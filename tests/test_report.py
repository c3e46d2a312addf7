"""The correlation report: bootstrap intervals, the n < 10 marker, settings, quantities and plots."""
from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image
from scipy import stats

from searchkit.metrics import METRICS
from searchkit.paths import find_data
from searchkit.correlation_report import (
    MIN_ARCHS,
    _Ranker,
    _weighted_pearson,
    correlate,
    quantity,
    scatter_panels,
    score_axis,
    spearman_interval,
    write_correlation_report,
)

matplotlib.use("Agg")


def correlated(n: int, seed: int = 0, noise: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return x, x + noise * rng.normal(size=n)


def test_resample_ranks_equal_scipy_on_each_resample() -> None:
    rng = np.random.default_rng(1)
    x = np.round(rng.normal(size=30), 1)  # ties, and duplicates from resampling
    y = x + rng.normal(size=30)
    idx = rng.integers(30, size=(50, 30))
    counts = np.stack([np.bincount(row, minlength=30) for row in idx]).astype(float)
    fast = _weighted_pearson(_Ranker(x)(counts), _Ranker(y)(counts), counts)
    slow = [stats.spearmanr(x[row], y[row])[0] for row in idx]
    np.testing.assert_allclose(fast, slow, atol=1e-12)


def test_interval_contains_the_estimate_and_narrows_with_n() -> None:
    widths = []
    for n in (40, 400):
        x, y = correlated(n)
        rho = stats.spearmanr(x, y)[0]
        low, high = spearman_interval(x, y, n_boot=1000)
        assert low < rho < high
        widths.append(high - low)
    assert widths[0] > 2 * widths[1]  # ~ sqrt(10) narrower, up to the samples drawn
    x, y = correlated(100)
    assert spearman_interval(x, y, seed=3) == spearman_interval(x, y, seed=3) != spearman_interval(x, y, seed=4)
    assert spearman_interval(x, y, n_boot=1000, max_elements=700) == spearman_interval(x, y, n_boot=1000)


def test_too_few_or_constant_is_marked() -> None:
    x, y = correlated(MIN_ARCHS - 1)
    few = correlate(x, y)
    assert not few.meaningful and few.spearman_text() == few.kendall_text() == "n/a"
    flat = correlate(np.ones(50), correlated(50)[1])
    assert flat.spearman_text() == "n/a (constant)" and flat.kendall_text() == "n/a (constant)"
    ok = correlate(*correlated(50))
    assert ok.meaningful and ok.spearman_text().count("[") == 1 and ok.rho_low < ok.rho < ok.rho_high


def test_every_metric_names_its_quantity() -> None:
    assert all(quantity(name).text == METRICS.get(name).quantity for name in METRICS.names())
    assert quantity("kcc:eps=0.5") == quantity("kcc")
    assert quantity("params").label() == "parameters (millions)"
    assert "−κ" in quantity("ntk_cond").text and quantity("ntk_cond").magnitude.startswith("κ")
    assert quantity("tenas_rank").text.startswith("sum of the ranks")


def test_score_axes() -> None:
    rng = np.random.default_rng(0)
    synflow = 10 ** rng.uniform(15, 40, 200)
    synflow[:5] = 0.0  # the worst score
    axis = score_axis(synflow, "synflow")
    assert axis.label.startswith("log10 of synaptic flow") and axis.off.sum() == 5
    np.testing.assert_allclose(axis.x[5:], np.log10(synflow[5:]))
    cond = -(10 ** rng.uniform(1, 6, 200))
    cond[0] = -1e15  # ntk_cond's worst
    axis = score_axis(cond, "ntk_cond")
    assert axis.label == "−log10 of κ (NTK condition number)" and axis.off.tolist() == [True] + [False] * 199
    assert stats.spearmanr(axis.x[1:], cond[1:])[0] == pytest.approx(1.0)  # order kept
    kcc = rng.uniform(0.85, 1.0, 200)
    axis = score_axis(kcc, "kcc")
    assert axis.label.startswith("KCC γ") and np.array_equal(axis.x, kcc)
    mixed = np.concatenate([-(10 ** rng.uniform(0, 6, 100)), 10 ** rng.uniform(0, 6, 100)])
    assert score_axis(mixed, "grasp").label.startswith("rank of grasp")


def drawn_figure(monkeypatch, *args, **kwargs):
    """Call scatter_panels and return the figure it saved (tick labels laid out)."""
    from matplotlib.figure import Figure

    saved = []
    original = Figure.savefig

    def keep(self, path, *a, **k):
        saved.append(self)
        return original(self, path, *a, **k)

    monkeypatch.setattr(Figure, "savefig", keep)
    scatter_panels(*args, **kwargs)
    saved[0].canvas.draw()
    return saved[0]


def visible_ticks(axis) -> list[str]:
    low, high = sorted(axis.get_view_interval())
    return [t.get_text() for t, v in zip(axis.get_ticklabels(), axis.get_ticklocs()) if low <= v <= high]


@pytest.mark.parametrize("rank", [False, True])
def test_plot_panels_and_readable_ticks(tmp_path: Path, monkeypatch, rank: bool) -> None:
    rng = np.random.default_rng(0)
    synflow = 10 ** rng.uniform(15, 40, 300)
    acc = {d: 60 + np.log10(synflow) + rng.normal(0, 3, 300) for d in ("cifar10", "cifar100", "ImageNet16-120")}
    path = tmp_path / "scatter.png"
    fig = drawn_figure(monkeypatch, synflow, acc, "synflow", path, rank=rank)
    assert Image.open(path).size == (1800, 585)
    axes = fig.axes
    assert [a.get_title().split("\n")[0] for a in axes] == ["CIFAR-10", "CIFAR-100", "ImageNet16-120"]
    assert all("ρ = " in a.get_title() and "n = 300" in a.get_title() for a in axes)
    for a in axes:
        assert 2 <= len(visible_ticks(a.xaxis)) <= 6 and 2 <= len(visible_ticks(a.yaxis)) <= 7
        assert all("10^" not in t and "e+" not in t for t in visible_ticks(a.xaxis))
    xlabel = fig.get_supxlabel()
    assert xlabel == ("rank of synflow (1 = lowest)" if rank else "log10 of synaptic flow Σ θ ⊙ ∂R/∂θ")


@pytest.fixture(scope="module")
def table():
    if find_data("nb201/nb201_table.csv") is None:
        pytest.skip("needs the NB201 table")
    from searchkit.tabular import NB201Table

    return NB201Table.load()


SETTINGS = {"dataset": "cifar10", "batch_size": 64, "data_seed": 0, "init_seed": 1, "build": {"C": 16, "N": 5},
            "device": "cpu", "batch_fingerprint": "abc123"}


def fake_rows(table, indices, seed=0) -> dict[int, dict[str, float]]:
    """params read off the table (a real score), plus a noisy copy of CIFAR-10 accuracy."""
    rng = np.random.default_rng(seed)
    acc = table.column("cifar10", "test", 200)
    return {int(i): {"params": float(table.params(int(i), "cifar10")), "params_s": 0.01,
                     "noisy": float(acc[i] + rng.normal(0, 2)), "noisy_s": 0.02} for i in indices}


def test_report_with_enough_architectures(tmp_path: Path, table) -> None:
    indices = np.random.default_rng(0).choice(15625, size=60, replace=False)
    rows = fake_rows(table, indices)
    from searchkit.spaces import get_space

    space = get_space("nb201")
    path = write_correlation_report(tmp_path, rows, ["params", "noisy"], table, space=space, settings=SETTINGS,
                                    n_boot=300)
    text = path.read_text()
    acc = table.column("cifar10", "test", 200)[indices]
    rho = stats.spearmanr([rows[int(i)]["noisy"] for i in indices], acc)[0]
    tau = stats.kendalltau([rows[int(i)]["noisy"] for i in indices], acc)[0]
    assert f"| noisy | 60 | {rho:.3f} [" in text and f"| noisy | 60 | {tau:.3f} |" in text
    assert "Not meaningful" not in text
    assert "64 cifar10 training images drawn with data seed 0 (batch fingerprint abc123)" in text
    assert "(C=16, N=5) initialised with seed 1" in text and "- device: cpu" in text
    assert "| params | parameters (millions) |" in text
    assert f"`{tmp_path / 'scatter_params.png'}`" in text and "60 nb201 cells of NAS-Bench-201" in text
    archs = [space.decode(table.arch_str(int(i))) for i in indices]
    degenerate, classes = sum(map(space.is_degenerate, archs)), len(set(map(space.canonical, archs)))
    assert f"{classes} distinct up to equivalence, {degenerate} degenerate" in text
    assert "| metric | n | CIFAR-10 test | CIFAR-10 valid | CIFAR-100 test |" in text
    for name in ("scatter_params.png", "scatter_noisy.png"):
        assert Image.open(tmp_path / name).size == (1800, 585)


def test_report_with_too_few_architectures(tmp_path: Path, table) -> None:
    rows = fake_rows(table, [1, 2])
    text = write_correlation_report(tmp_path, rows, ["params"], table).read_text()
    assert "Not meaningful: only 2 architectures" in text
    assert "| params | 2 | n/a | n/a |" in text and "1.000" not in text
    assert "scoring settings: not recorded" in text


def test_kcc_near_one_is_drawn_as_minus_log_gap() -> None:
    """Issue 29: KCC piled up at 0.98-1.0 on a linear axis."""
    gaps = 10 ** np.random.default_rng(0).uniform(-3, -1.2, 200)
    axis = score_axis(1 - gaps, "kcc")
    assert axis.label.startswith("−log10(1 − score) of KCC γ") and "3 = 0.999" in axis.label
    np.testing.assert_allclose(axis.x, -np.log10(gaps))


def test_the_legend_counts_every_cell_drawn_apart(tmp_path: Path, monkeypatch) -> None:
    """Issue 29: the report counted 4 degenerate cells where the scatter marked 1 (only those at KCC 0)."""
    rng = np.random.default_rng(0)
    kcc = rng.uniform(0.85, 1.0, 100)
    kcc[0] = 0.0  # a degenerate cell at the worst score; cells 1-3 are degenerate with a positive score
    kcc[50] = 0.0  # a cell at the worst score not known as degenerate
    degenerate = np.zeros(100, bool)
    degenerate[:4] = True
    axis = score_axis(kcc, "kcc", degenerate)
    assert axis.off.sum() == 5 and axis.off_label == "4 degenerate (no convolution path), 1 more at the worst score"
    assert score_axis(kcc, "kcc").off_label == "2 at the worst score"
    acc = {"cifar10": 80 + 10 * kcc}
    fig = drawn_figure(monkeypatch, kcc, acc, "kcc", tmp_path / "s.png", degenerate=degenerate)
    legend = fig.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [axis.off_label]
    assert len(fig.axes[0].collections[1].get_offsets()) == 5  # the marks the legend counts
