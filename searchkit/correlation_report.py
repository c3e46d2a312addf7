"""The report of ``searchkit correlate``: how well each metric ranks architectures by accuracy.

:func:`write_correlation_report` writes ``correlation.md`` (Spearman rho with a bootstrap
interval and Kendall tau against each accuracy column of the space's ranking table, e.g.
NAS-Bench-201's datasets and splits; the scoring settings; what each metric's number is; the
files) and one ``scatter_<metric>.png`` per metric with a panel per dataset. The statistics
(:func:`correlations`, :func:`correlate_all`, :func:`spearman_intervals`, :func:`rank_combination`)
serve the metric studies in ``benchmarks/`` too.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from scipy import stats

from searchkit.paths import portable
from searchkit.spaces.base import BaseSpace, RankTable

#: Display names of table datasets, for column heads and panel titles (others are shown as named).
DATASET_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "ImageNet16-120": "ImageNet16-120"}
#: Fewer distinct architectures than this: correlations are not shown (not meaningful).
MIN_ARCHS = 10
#: Bootstrap resamples for the Spearman interval.
N_BOOT = 2000


@dataclass(frozen=True)
class Quantity:
    """What a score column's number is: ``text`` (the quantity, with its symbol and unit) and, for a
    negated magnitude, that ``magnitude`` (for log axes)."""

    text: str
    magnitude: str | None = None

    def label(self) -> str:
        return self.text


#: Population-level columns the report derives from the metrics (:func:`derived_columns`).
DERIVED = {"tenas_rank": Quantity("sum of the ranks of ntk_cond and linear_regions")}


def quantity(label: str) -> Quantity:
    """The :class:`Quantity` of a score column such as ``kcc`` or ``kcc:eps=0.5``: the metric's own
    ``quantity`` and ``magnitude`` (:class:`searchkit.metrics.base.Metric`), or a derived column's."""
    from searchkit.metrics import METRICS

    name = label.split(":")[0]
    if name in DERIVED:
        return DERIVED[name]
    if name in METRICS:
        cls = METRICS.get(name)
        return Quantity(cls.quantity, cls.magnitude)
    return Quantity(f"{name} score")


def rank_combination(columns: list[np.ndarray]) -> np.ndarray:
    """Sum of the ranks of each column (ties averaged): TE-NAS's way of combining metrics, and the
    ensemble rule used in our study. Higher is better, like every column."""
    return np.sum([stats.rankdata(c) for c in columns], axis=0)


def correlations(values: np.ndarray, accuracy: np.ndarray) -> tuple[float, float]:
    """(Spearman rho, Kendall tau-b) of ``values`` against ``accuracy``; NaN where undefined."""
    if np.ptp(values) == 0:
        return float("nan"), float("nan")
    return float(stats.spearmanr(values, accuracy)[0]), float(stats.kendalltau(values, accuracy)[0])


class _Ranker:
    """Ranks (1-based, ties averaged) of a column's values within bootstrap resamples, given as
    multiplicities ``counts: (B, n)`` of the original values, without sorting each resample: the
    rank of value v in a resample is (resampled values < v) + (1 + resampled values == v) / 2, read
    off cumulative counts in the column's sorted order."""

    def __init__(self, values: np.ndarray) -> None:
        self.order = np.argsort(values, kind="stable")
        dense = stats.rankdata(values, method="dense").astype(int) - 1  # tie group of each value
        self.group = dense
        self.group_end = np.searchsorted(dense[self.order], np.arange(dense.max() + 1), side="right") - 1

    def __call__(self, counts: np.ndarray) -> np.ndarray:
        upto = np.cumsum(counts[:, self.order], axis=1)[:, self.group_end]  # (B, G): values in groups <= g
        size = np.diff(upto, axis=1, prepend=0)
        return (upto - (size - 1) / 2)[:, self.group]  # (B, n)


def _weighted_pearson(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Per row, the Pearson correlation of a and b: (B, n) with weights w: (B, n) (multiplicities);
    NaN for a row where either is constant."""
    total = w.sum(axis=1, keepdims=True)
    a = a - (w * a).sum(axis=1, keepdims=True) / total
    b = b - (w * b).sum(axis=1, keepdims=True) / total
    denom = np.sqrt((w * a * a).sum(axis=1) * (w * b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 1e-12 * total[:, 0] ** 3, (w * a * b).sum(axis=1) / denom, np.nan)


def spearman_intervals(
    columns: dict[str, np.ndarray], targets: dict, n_boot: int = N_BOOT, level: float = 0.95, seed: int = 0,
    max_elements: int = 500_000,
) -> dict[tuple, tuple[float, float]]:
    """Percentile bootstrap intervals of Spearman's rho for every (column, target) pair, all over
    the same resamples: the n architectures are resampled with replacement ``n_boot`` times
    (``np.random.default_rng(seed)``) and each resample's rho is the Pearson correlation of its
    ranks (ties, duplicates included, averaged). Vectorised over resamples, in chunks of at most
    ``max_elements`` values per array (memory: about (columns + targets + 3) such arrays); a
    resample is held as the multiplicities (B, n) of the architectures. Resamples in which either
    side is constant are skipped; a pair with none left gets (NaN, NaN).

    ``columns``, ``targets``: label -> (n,) values. Returns {(column label, target key): (low, high)}.
    """
    n = len(next(iter(columns.values())))
    rankers = {("c", k): _Ranker(np.asarray(v, dtype=float)) for k, v in columns.items()}
    rankers.update({("t", k): _Ranker(np.asarray(v, dtype=float)) for k, v in targets.items()})
    rng = np.random.default_rng(seed)
    per_chunk = max(1, max_elements // max(n, 1))
    rhos: dict[tuple, list[np.ndarray]] = {(c, t): [] for c in columns for t in targets}
    for start in range(0, n_boot, per_chunk):
        b = min(per_chunk, n_boot - start)
        idx = rng.integers(n, size=(b, n)) + n * np.arange(b)[:, None]
        counts = np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(float)
        target_ranks = {t: rankers[("t", t)](counts) for t in targets}
        for c in columns:
            ranks = rankers[("c", c)](counts)
            for t, other in target_ranks.items():
                rhos[(c, t)].append(_weighted_pearson(ranks, other, counts))
    tail = 100 * (1 - level) / 2
    intervals = {}
    for key, parts in rhos.items():
        rho = np.concatenate(parts)
        rho = rho[np.isfinite(rho)]
        intervals[key] = (float("nan"), float("nan")) if rho.size == 0 else tuple(
            float(v) for v in np.percentile(rho, [tail, 100 - tail]))
    return intervals


def spearman_interval(
    values: np.ndarray, accuracy: np.ndarray, n_boot: int = N_BOOT, level: float = 0.95, seed: int = 0,
    max_elements: int = 500_000,
) -> tuple[float, float]:
    """The :func:`spearman_intervals` interval of one pair."""
    return spearman_intervals({"x": values}, {"y": accuracy}, n_boot, level, seed, max_elements)[("x", "y")]


@dataclass(frozen=True)
class Correlation:
    """Rank agreement of one metric with one accuracy column over ``n`` architectures."""

    n: int
    rho: float
    rho_low: float
    rho_high: float
    tau: float

    @property
    def meaningful(self) -> bool:
        return self.n >= MIN_ARCHS and np.isfinite(self.rho)

    def spearman_text(self) -> str:
        if self.n < MIN_ARCHS:
            return "n/a"
        if not np.isfinite(self.rho):
            return "n/a (constant)"
        return f"{self.rho:.3f} [{self.rho_low:.3f}, {self.rho_high:.3f}]"

    def kendall_text(self) -> str:
        if self.n < MIN_ARCHS:
            return "n/a"
        return f"{self.tau:.3f}" if np.isfinite(self.tau) else "n/a (constant)"


def correlate(values: np.ndarray, accuracy: np.ndarray, n_boot: int = N_BOOT, seed: int = 0) -> Correlation:
    """Spearman rho with its 95 % bootstrap interval and Kendall tau-b; no bootstrap below
    :data:`MIN_ARCHS` architectures or for a constant metric."""
    rho, tau = correlations(values, accuracy)
    low = high = float("nan")
    if len(values) >= MIN_ARCHS and np.isfinite(rho):
        low, high = spearman_interval(values, accuracy, n_boot=n_boot, seed=seed)
    return Correlation(len(values), rho, low, high, tau)


def correlate_all(
    columns: dict[str, np.ndarray], targets: dict, n_boot: int = N_BOOT, seed: int = 0
) -> dict[str, dict]:
    """{column label: {target key: :class:`Correlation`}}, with the bootstrap intervals of
    :func:`spearman_intervals` (none below :data:`MIN_ARCHS` architectures or for a constant column)."""
    n = len(next(iter(columns.values())))
    points = {c: {t: correlations(v, acc) for t, acc in targets.items()} for c, v in columns.items()}
    varying = {c: v for c, v in columns.items() if np.ptp(v) > 0}
    intervals = spearman_intervals(varying, targets, n_boot, seed=seed) if n >= MIN_ARCHS and varying else {}
    nan = (float("nan"), float("nan"))
    return {c: {t: Correlation(n, rho, *intervals.get((c, t), nan), tau) for t, (rho, tau) in row.items()}
            for c, row in points.items()}


def derived_columns(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Population-level combinations worth reporting beside the metrics: TE-NAS's rank sum of
    ``ntk_cond`` and ``linear_regions`` (``tenas_rank``) when both were scored."""
    derived = {}
    if "ntk_cond" in columns and "linear_regions" in columns:
        derived["tenas_rank"] = rank_combination([columns["ntk_cond"], columns["linear_regions"]])
    return derived


def plot_file(out: Path, label: str) -> Path:
    """Where the scatter plot of metric column ``label`` goes."""
    return out / f"scatter_{label.replace(':', '_').replace('=', '-')}.png"


def write_correlation_report(
    out: Path, rows: dict[int, dict[str, float]], labels: list[str], table: RankTable, *,
    space: BaseSpace | None = None, settings: dict | None = None, rank: bool = False, n_boot: int = N_BOOT,
    seed: int = 0,
) -> Path:
    """``out/correlation.md`` and ``out/scatter_<metric>.png`` for each metric; returns the .md path.

    ``rows``: table index -> {label: score, f"{label}_s": seconds}. The report gives, per metric
    and per accuracy column of ``table.targets``, Spearman rho with its 95 % percentile bootstrap
    interval (``n_boot`` resamples of the architectures, ``seed``) and Kendall tau-b; "n/a" below
    :data:`MIN_ARCHS` architectures. ``space``: the table's space, when given the report counts
    its degenerate architectures and equivalence classes where the space knows them
    (:meth:`~searchkit.spaces.base.BaseSpace.is_degenerate`, ``canonical``) and draws the degenerate
    ones apart. ``settings``: the scoring settings to state (correlate's ``settings.yaml`` dict:
    dataset, batch_size, data_seed, init_seed, build, device, batch_fingerprint, ...). ``rank``:
    scatter plots in rank space instead of score space.
    """
    indices = np.array(list(rows), dtype=int)
    n = len(indices)
    columns = {label: np.array([rows[i][label] for i in indices], dtype=float) for label in labels}
    seconds = {label: float(np.mean([rows[i][f"{label}_s"] for i in indices])) for label in labels}
    columns.update(derived_columns(columns))
    targets = list(table.targets)
    accuracies = {t: table.column(*t)[indices] for t in targets}
    found = correlate_all(columns, accuracies, n_boot=n_boot, seed=seed)
    results = {label: [found[label][t] for t in targets] for label in columns}
    plots = [plot_file(out, label) for label in labels]
    archs = None if space is None else [space.decode(table.arch_str(int(i))) for i in indices]
    answers = None if archs is None else known(space.is_degenerate, archs)
    degenerate = None if answers is None else np.array(answers, dtype=bool)
    panels = scatter_targets(targets)
    for label, path in zip(labels, plots):
        scatter_panels(columns[label], {t[0]: accuracies[t] for t in panels}, label, path, rank=rank,
                       found={t[0]: found[label][t] for t in panels}, degenerate=degenerate,
                       title=f"{label} against {table.name} accuracy", ylabel=accuracy_label(panels))
    cells = describe_cells(len(indices), table, space, archs, degenerate)
    lines = _report_lines(out, n, table, cells, results, seconds, settings, plots, n_boot, seed, rank)
    path = out / "correlation.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def known(ask: Callable[[Any], Any], archs: list) -> list | None:
    """``ask(arch)`` of every architecture, or None when the space does not say (answers None)."""
    answers = [ask(a) for a in archs]
    return None if any(v is None for v in answers) else answers


def scatter_targets(targets: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    """One target per dataset for the scatter panels: its test column if the table has one, else its first."""
    chosen: dict[str, tuple[str, str, int]] = {}
    for target in targets:
        if target[0] not in chosen or (target[1] == "test" and chosen[target[0]][1] != "test"):
            chosen[target[0]] = target
    return list(chosen.values())


def accuracy_label(targets: list[tuple[str, str, int]]) -> str:
    """The y label of panels showing ``targets``: "test accuracy after 200 epochs (%)" when they agree."""
    splits, epochs = {t[1] for t in targets}, {t[2] for t in targets}
    split = splits.pop() if len(splits) == 1 else "test or valid"
    return f"{split} accuracy" + (f" after {epochs.pop()} epochs" if len(epochs) == 1 else "") + " (%)"


def target_head(target: tuple[str, str, int]) -> str:
    dataset, split, _ = target
    return f"{DATASET_NAMES.get(dataset, dataset)} {split}"


def describe_cells(n: int, table: RankTable, space: BaseSpace | None, archs: list | None,
                   degenerate: np.ndarray | None) -> str:
    """The report's line on the architectures: how many, of which table, and, where the space says,
    how many distinct up to equivalence and how many degenerate."""
    if space is None or archs is None:
        return f"{n} architectures of {table.name}"
    described = f"{n} {space.name} cells of {table.name}"
    classes = known(space.canonical, archs)
    if classes is not None:
        described += f", {len(set(classes))} distinct up to equivalence"
    if degenerate is not None:
        described += (f", {int(degenerate.sum())} degenerate (as the space defines it: `is_degenerate` of "
                      f"`searchkit.spaces.{space.name}`; drawn apart at the left edge of the score-space scatter plots)")
    return described


def _report_lines(
    out: Path, n: int, table: RankTable, cells: str, results: dict[str, list[Correlation]],
    seconds: dict[str, float], settings: dict | None, plots: list[Path], n_boot: int, seed: int, rank: bool,
) -> list[str]:
    head = " | ".join(target_head(t) for t in table.targets)
    rule = "|---|---|" + "---|" * len(table.targets)
    epochs = sorted({t[2] for t in table.targets})
    lines = [f"# Rank correlation with {table.name} {'/'.join(map(str, epochs))}-epoch accuracy "
             f"(n = {n} architectures)", ""]
    if n < MIN_ARCHS:
        lines += [f"**Not meaningful: only {n} architectures (fewer than {MIN_ARCHS}); correlations are not "
                  "shown. Score more architectures (--n).**", ""]
    lines += _settings_lines(cells, table, settings)
    lines += [
        "## Spearman rank correlation", "",
        "Spearman rho between each metric's score and the table's accuracy of the same architectures, with a 95 % "
        f"percentile bootstrap interval ({n_boot} resamples of the architectures, seed {seed}). Accuracies: "
        f"{table.protocol}. Mean s/arch: scoring wall time per architecture, seconds.", "",
        f"| metric | n | {head} | mean s/arch |", rule + "---|",
    ]
    for label, cells in results.items():
        cost = f"{seconds[label]:.3f}" if label in seconds else "(sum of its parts)"
        lines.append(f"| {label} | {n} | {' | '.join(c.spearman_text() for c in cells)} | {cost} |")
    lines += ["", "## Kendall rank correlation", "", "Kendall tau-b between the same pairs.", "",
              f"| metric | n | {head} |", rule]
    for label, cells in results.items():
        lines.append(f"| {label} | {n} | {' | '.join(c.kendall_text() for c in cells)} |")
    lines += ["", "## What each score is", "", "| metric | score (higher is better) |", "|---|---|"]
    lines += [f"| {label} | {quantity(label).label().replace('|', chr(92) + '|')} |" for label in results]
    shown = "rank space (rank 1 = lowest)" if rank else "score space (log10 axis for heavy-tailed scores)"
    lines += ["", "## Files", "",
              f"- `{out / 'correlation.md'}`: this report",
              *(f"- `{p}`: the metric against accuracy, one panel per dataset, {shown}" for p in plots)]
    for name, what in (("scores.csv", "one row per architecture: scores and seconds"),
                       ("settings.yaml", "the scoring settings"), ("indices.txt", "the table indices scored")):
        if (out / name).exists():
            lines.append(f"- `{out / name}`: {what}")
    return lines


def _settings_lines(cells: str, table: RankTable, settings: dict | None) -> list[str]:
    lines = ["## Settings", "", f"- architectures: {cells}", f"- accuracies: `{portable(table.source)}`"]
    if settings:
        build = settings.get("build") or {}
        shown = {
            "scoring data": f"{settings.get('batch_size')} {settings.get('dataset')} training images drawn with "
                            f"data seed {settings.get('data_seed')} (batch fingerprint "
                            f"{settings.get('batch_fingerprint', 'not recorded')})",
            "networks": f"the space's network ({', '.join(f'{k}={v}' for k, v in build.items()) or 'its defaults'})"
                        f" initialised with seed {settings.get('init_seed')}",
            "device": settings.get("device"),
        }
        lines += [f"- {key}: {value}" for key, value in shown.items()]
    else:
        lines.append("- scoring settings: not recorded")
    return lines + [""]


def worst_score(label: str) -> float | None:
    """The score a metric gives degenerate networks (its ``worst``), or None for an unknown name."""
    from searchkit.metrics import METRICS

    name = label.split(":")[0]
    if name not in METRICS:
        return None
    try:
        return float(METRICS.get(name)().worst)
    except (TypeError, ValueError):
        return None


@dataclass
class Axis:
    """A metric's x axis in score space: ``x`` (n,) to plot (NaN where ``off``), its ``label``,
    and ``off`` (n,) bool: the architectures drawn apart at the left edge, described (and counted) by
    ``off_label``."""

    x: np.ndarray
    label: str
    off: np.ndarray
    off_label: str = ""


#: A metric whose quantity states this range is bounded above by 1 (KCC: ``in [0, 1]``).
BOUNDED_BY_ONE = re.compile(r"in \[[−-]?\d+, 1\]")
#: :func:`score_axis` draws such scores as −log10(1 − score) when their median gap to 1 is below this.
NEAR_ONE = 0.05


def score_axis(values: np.ndarray, label: str, degenerate: np.ndarray | None = None) -> Axis:
    """How to draw a metric's scores on a readable axis.

    The ``degenerate`` architectures (bool (n,); e.g. NB201 cells with no convolution on any
    input-output path), those at the metric's worst score (what degenerate networks get, e.g. KCC 0
    or ``ntk_cond`` -1e15) and those with a non-finite score are drawn apart, at the left edge: as
    sentinels they would squash everything else into a corner, and the legend counts each kind.
    Scores bounded above by 1 (:data:`BOUNDED_BY_ONE`) that pile up near 1 (median gap below
    :data:`NEAR_ONE`) are drawn as −log10(1 − score), so 0.99 and 0.999 are told apart. Otherwise the
    rest is heavy-tailed when its range exceeds :data:`HEAVY_TAIL` interquartile ranges; then scores of
    one sign are drawn as log10 of the score, or -log10 of the magnitude for negated magnitudes
    (``ntk_cond`` = -kappa: -log10 kappa), when that at least halves the range in IQRs; the order is
    kept (higher is better, to the right). Heavy-tailed scores of both signs are drawn as ranks.
    """
    q = quantity(label)
    worst = worst_score(label)
    apart = np.zeros(len(values), bool) if degenerate is None else np.asarray(degenerate, bool)
    at_worst = ~apart & (~np.isfinite(values) | (values == worst if worst is not None else False))
    off = apart | at_worst
    kinds = [f"{apart.sum()} degenerate (no convolution path)"] if degenerate is not None else []
    if at_worst.any() or not kinds:
        more = " more" if kinds else ""
        kinds.append(f"{at_worst.sum()}{more} at the worst score" if worst is not None else f"{at_worst.sum()}{more} not finite")

    def axis(x: np.ndarray, text: str) -> Axis:
        return Axis(x, text, off, ", ".join(kinds))

    rest = values[~off]
    x = np.where(off, np.nan, values)
    if rest.size and BOUNDED_BY_ONE.search(q.label()) and np.all(rest < 1) and np.median(1 - rest) < NEAR_ONE:
        x[~off] = -np.log10(1 - rest)
        return axis(x, f"−log10(1 − score) of {q.label()} (2 = 0.99, 3 = 0.999)")
    spread = _spread(rest)
    if rest.size > 1 and spread > HEAVY_TAIL:
        for sign in (1, -1):
            if np.all(sign * rest > 0) and _spread(np.log10(sign * rest)) < spread / 2:
                x[~off] = sign * np.log10(sign * rest)
                name = q.label() if sign > 0 else (q.magnitude or f"−({label})")
                return axis(x, f"log10 of {name}" if sign > 0 else f"−log10 of {name}")
        if not (np.all(rest > 0) or np.all(rest < 0)):
            x[~off] = stats.rankdata(rest)
            return axis(x, f"rank of {label} (1 = lowest; heavy-tailed scores of both signs)")
    return axis(x, q.label())


#: :func:`score_axis` calls scores heavy-tailed when their range exceeds this many interquartile ranges.
HEAVY_TAIL = 10.0


def _spread(v: np.ndarray) -> float:
    """Range over interquartile range (inf when the IQR is 0 but the range is not, 0 for < 2 values)."""
    if v.size < 2 or np.ptp(v) == 0:
        return 0.0
    q1, q3 = np.percentile(v, [25, 75])
    return float(np.ptp(v) / (q3 - q1)) if q3 > q1 else float("inf")


def scatter_panels(
    values: np.ndarray, accuracies: dict[str, np.ndarray], label: str, path: Path, rank: bool = False,
    found: dict[str, Correlation] | None = None, degenerate: np.ndarray | None = None,
    title: str | None = None, ylabel: str = "test accuracy after 200 epochs (%)",
) -> None:
    """One panel per dataset: the metric (x) against that dataset's accuracy (y, ``ylabel``).

    ``accuracies``: table dataset name -> accuracy (%) of the same architectures. Each panel's
    title gives Spearman rho with its bootstrap interval, Kendall tau and n, computed on every
    architecture (``found``: dataset -> the :class:`Correlation` already computed, else computed
    here). Score space follows :func:`score_axis` (``degenerate``: the architectures it draws apart
    as degenerate); ``rank`` plots the ranks of both (1 = lowest,
    ties averaged), where Spearman's rho is the Pearson correlation of the points shown. At most
    6 ticks per axis.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if rank:
        axis = Axis(stats.rankdata(values), f"rank of {label} (1 = lowest)", np.zeros(len(values), bool))
    else:
        axis = score_axis(values, label, degenerate)
    shown = ~axis.off
    span = np.ptp(axis.x[shown]) if shown.sum() > 1 else 1.0
    edge = (np.nanmin(axis.x[shown]) if shown.any() else 0.0) - 0.08 * (span or 1.0)
    fig, axes = plt.subplots(1, len(accuracies), figsize=(4.0 * len(accuracies), 3.9), dpi=150,
                             constrained_layout=True, sharex=True)
    for k, (ax, (dataset, acc)) in enumerate(zip(np.atleast_1d(axes), accuracies.items())):
        y = stats.rankdata(acc) if rank else acc
        ax.scatter(axis.x[shown], y[shown], s=7, alpha=0.45, linewidths=0, color="#1f5f9e", rasterized=True)
        if axis.off.any():
            ax.scatter(np.full(axis.off.sum(), edge), y[axis.off], s=14, marker="x", linewidths=0.8, color="0.45",
                       label=axis.off_label)
            ax.axvline(edge + 0.04 * (span or 1.0), color="0.7", linewidth=0.6, linestyle=":")
            ax.legend(loc="lower right", fontsize=7.5, frameon=False, handletextpad=0.3)
        c = found[dataset] if found is not None else correlate(values, acc)
        stat = (f"ρ = {c.rho:.2f} [{c.rho_low:.2f}, {c.rho_high:.2f}], τ = {c.tau:.2f}, n = {c.n}"
                if c.meaningful else f"n = {c.n}: too few for a correlation")
        ax.set_title(f"{DATASET_NAMES.get(dataset, dataset)}\n{stat}", fontsize=9.5)
        if k == 0:
            ax.set_ylabel(f"rank of {ylabel.split(' (%)')[0]} (1 = lowest)" if rank else ylabel,
                          fontsize=9.5)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=6))
        ax.tick_params(labelsize=8.5)
        ax.grid(alpha=0.25, linewidth=0.6)
    fig.supxlabel(axis.label, fontsize=9.5)
    fig.suptitle(title or f"{label} against accuracy", fontsize=11)
    fig.savefig(path)
    plt.close(fig)
