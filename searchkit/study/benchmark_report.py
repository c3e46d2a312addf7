"""The report of ``searchkit benchmark`` (:mod:`searchkit.study.benchmark`): ``summary.md`` (mean +- std over seeds of the selected architectures'
accuracies and the search cost, beside seed 003's published table) and ``anytime.png``
(best-so-far accuracy against search cost)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from searchkit.spaces.base import Benchmark
from searchkit.study.anytime import CHECKPOINTS, anytime_accuracy, draw_runs, mean_std
from searchkit.study.curves import Curves

#: (table dataset, column title) of the accuracies reported per run.
REPORTED = (("cifar10", "C10"), ("cifar100", "C100"), ("ImageNet16-120", "IN16"))

#: Seed 003 (Shu et al. 2022), table 3: (name, C10, C100, IN16 test accuracy "mean+-std", cost in GPU seconds).
PUBLISHED = (
    ("REA", "93.92 ± 0.30", "71.84 ± 0.99", "45.15 ± 0.89", "12000"),
    ("RS (w/o sharing)", "93.70 ± 0.36", "71.04 ± 1.07", "44.57 ± 1.25", "12000"),
    ("NASWOT", "92.96 ± 0.81", "69.98 ± 1.22", "44.44 ± 2.10", "306"),
    ("TE-NAS", "93.90 ± 0.47", "71.24 ± 0.56", "42.38 ± 0.46", "1558"),
    ("NASI", "93.55 ± 0.10", "71.20 ± 0.14", "44.84 ± 1.41", "120"),
    ("HNAS (M_Grad)", "94.04 ± 0.21", "71.75 ± 1.04", "45.91 ± 0.88", "3010"),
    ("HNAS (M_Trace)", "94.07 ± 0.10", "72.30 ± 0.70", "45.93 ± 0.37", "3006"),
    ("optimal", "94.37", "73.51", "47.31", "-"),
)

def searched_for(row: dict) -> str:
    """The table dataset a run searched for (runs.csv rows before the dataset axis: CIFAR-10)."""
    return row.get("dataset") or "cifar10"


def _groups(rows: list[dict]) -> dict[tuple[str, str, str], list[dict]]:
    """Rows by (strategy, metric, dataset searched for), in order of first appearance."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["strategy"], row["metric"], searched_for(row)), []).append(row)
    return groups


def per_dataset_lines(groups: dict[tuple[str, str, str], list[dict]]) -> list[str]:
    """The table of each (strategy, metric) searched for each dataset, read on that dataset's test
    column; a row that never validates is the same search whatever the dataset (its scores are the
    scoring batch's), so its missing datasets are read from its other runs (marked †)."""
    rows: dict[tuple[str, str], dict[str, list[dict]]] = {}
    for (strategy, metric, dataset), group in groups.items():
        rows.setdefault((strategy, metric), {})[dataset] = group
    lines = ["", "Each dataset searched for itself: test accuracy (%) on the dataset the runs searched for (their "
             "validations answered from its 12-epoch validation column), mean ± std over seeds. Training-free scores "
             "are the scoring batch's images whatever the dataset searched for (see the notes below): where we hold "
             "no images of a dataset, only validation speaks for it. † a row that never validates selects the same "
             "cell for every dataset; read from its runs for another dataset.", "",
             "| strategy | metric | " + " | ".join(title for _, title in REPORTED) + " |",
             "|---|---|" + "---|" * len(REPORTED)]
    for (strategy, metric), by_dataset in rows.items():
        cells = []
        for dataset, title in REPORTED:
            group, mark = by_dataset.get(dataset), ""
            if group is None and not any(float(r["validations"]) for g in by_dataset.values() for r in g):
                group, mark = next(iter(by_dataset.values())), " †"
            cells.append("-" if group is None else mean_std([float(r[f"{title}_test"]) for r in group]) + mark)
        lines.append(f"| {strategy} | {metric} | " + " | ".join(cells) + " |")
    return lines


def write_summary(out: Path, name: str, rows: list[dict], notes: list[str], table: Benchmark | None,
                  curves: Curves) -> Path:
    """``out/summary.md``: one line per (strategy, metric, dataset searched for) with mean +- std over
    seeds; with several datasets, each dataset's rows searched for it; for runs that validate, the
    incumbent's test accuracy on the dataset searched for after each of :data:`CHECKPOINTS`
    simulated seconds (needs ``table``; ``curves``: the runs' incumbent curves); then the published rows of
    seed 003's table 3."""
    groups = _groups(rows)
    lines = [
        f"# NAS-Bench-201 benchmark: {name}", "",
        "Test accuracy (%) after 200 epochs of the selected architecture (NAS-Bench-201 table), mean ± std "
        "over seeds (population std). Searched for: the dataset whose 12-epoch validation column answered the "
        "run's validations. Search cost: **wall** = measured seconds of training-free work on "
        "this machine (cached scores are charged the seconds they took to compute); **simulated** = "
        "training time charged for validations (12-epoch queries: 12/200 of the table's 200-epoch time). "
        "Scores / validations: queries answered per run, repeats included (a repeat is free); unique archs: "
        "distinct architectures queried.", "",
        "| strategy | metric | searched for | seeds | C10 | C100 | IN16 | wall s | simulated s | scores | validations "
        "| unique archs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (strategy, metric, dataset), group in groups.items():
        accuracy = " | ".join(mean_std([float(r[f"{title}_test"]) for r in group]) for _, title in REPORTED)
        mean = {key: np.mean([float(r[key]) for r in group])
                for key in ("wall_seconds", "simulated_seconds", "archs_scored", "validations", "unique_archs")}
        lines.append(f"| {strategy} | {metric} | {dataset} | {len(group)} | {accuracy} | {mean['wall_seconds']:.1f} | "
                     f"{mean['simulated_seconds']:.0f} | {mean['archs_scored']:.0f} | {mean['validations']:.1f} | "
                     f"{mean['unique_archs']:.0f} |")
    if len({dataset for _, _, dataset in groups}) > 1:
        lines += per_dataset_lines(groups)
    validating = {key: group for key, group in groups.items() if any(float(r["validations"]) for r in group)}
    if table is not None and validating:
        lines += ["", "Anytime: test accuracy, on the dataset searched for, of the incumbent once at most N simulated "
                  "training seconds were spent (mean ± std over seeds; '-' before the first answer):", "",
                  "| strategy | metric | searched for | " + " | ".join(f"≤ {c} s" for c in CHECKPOINTS) + " |",
                  "|---|---|---|" + "---|" * len(CHECKPOINTS)]
        for (strategy, metric, dataset), group in validating.items():
            accuracy = table.column(dataset, "test", 200)
            values = np.array([anytime_accuracy(curves.get(r["run"], True), accuracy, table) for r in group])
            lines.append(f"| {strategy} | {metric} | {dataset} | "
                         + " | ".join(mean_std(list(column)) for column in values.T) + " |")
    lines += ["", "Published (seed 003, table 3; cost in GPU seconds on a 1080Ti):", "",
              "| algorithm | C10 | C100 | IN16 | cost s |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {c10} | {c100} | {in16} | {cost} |" for name, c10, c100, in16, cost in PUBLISHED]
    lost = sum(curves.get(r["run"], True) is None for r in rows)
    if lost:
        notes = [*notes, f"anytime: {lost} of {len(rows)} runs have neither a curve in {out / 'curves.csv'} nor a "
                         "history in their run directory; the anytime table and plot leave them out"]
    lines += ["", "Score caches and pool:", ""] + [f"- {note}" for note in notes]
    path = out / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def plot_anytime(out: Path, rows: list[dict], table: Benchmark, curves: Curves) -> Path | None:
    """``out/anytime.png``: the incumbent's CIFAR-10 test accuracy of every (strategy, metric) row
    searched for CIFAR-10 (the summary's anytime table has the other datasets), the
    mean over seeds with a band from the lowest to the highest seed (a one-shot search: a point
    with its std). Left: rows that only score, against their training-free wall seconds. Right:
    rows that validate (hybrid and training-based), against simulated training seconds, with the
    :data:`CHECKPOINTS` marked (like seed 003, figure 2). The dashed line is the best cell's accuracy
    in the table; every line is in the legend. The x axes are log scale. ``curves``: the runs' incumbent
    curves (``out/curves.csv``); None when no run has one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    accuracy = table.column("cifar10", "test", 200)
    panels: dict[bool, dict[str, list[list[tuple[float, float]]]]] = {False: {}, True: {}}
    for row in (r for r in rows if searched_for(r) == "cifar10"):
        validates = float(row["validations"]) > 0
        curve = curves.get(row["run"], validates)
        if curve is None:  # counted in the summary's notes
            continue
        panels[validates].setdefault(f"{row['strategy']} + {row['metric']}", []).append(
            [(cost, float(accuracy[table.index_of(arch)])) for cost, arch in curve])
    shown = [(validates, lines) for validates, lines in panels.items() if lines]
    if not shown:  # no CIFAR-10 run with a curve
        return None
    optimum = float(np.nanmax(accuracy))
    fig, axes = plt.subplots(1, len(shown), figsize=(6.4 * len(shown), 4.8), dpi=110, squeeze=False)
    for ax, (validates, lines) in zip(axes[0], shown):
        colours = plt.get_cmap("tab10")
        for k, (label, runs) in enumerate(lines.items()):
            draw_runs(ax, runs, label, ("-", "--", ":")[(k // 10) % 3], colours(k % 10))
        if validates:
            for k, checkpoint in enumerate(CHECKPOINTS):
                ax.axvline(checkpoint, color="0.6", linewidth=0.6, linestyle=":",
                           label=f"checkpoints ({', '.join(f'{c:g}' for c in CHECKPOINTS)} s)" if k == 0 else None)
        ax.axhline(optimum, color="k", linestyle="--", linewidth=0.8,
                   label=f"best cell in the table ({optimum:.2f} %)")
        ax.set(xscale="log", xlabel="simulated training seconds" if validates else "training-free wall seconds",
               title="hybrid and training-based searches" if validates else "training-free searches",
               ylabel="incumbent's CIFAR-10 test accuracy (%)", ylim=(max(ax.get_ylim()[0], optimum - 6), optimum + 0.4))
        ax.legend(fontsize=6, loc="lower right", ncol=2)
    fig.tight_layout()
    path = out / "anytime.png"
    fig.savefig(path)
    plt.close(fig)
    return path
