"""The hardware-aware benchmark's report (:mod:`searchkit.study.hardware`): ``summary.md``,
``anytime_gap.png`` (constrained hybrids: gap to the best feasible cell vs simulated seconds),
``hypervolume.png`` (multi-objective rows: relative hypervolume vs seconds) and ``fronts.png``
(found fronts over the true front)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from searchkit.pareto import pareto_front
from searchkit.spaces.base import Benchmark
from searchkit.study.anytime import CHECKPOINTS, anytime_accuracy, draw_runs, mean_std
from searchkit.study.curves import Curves, FrontPoint, Fronts
from searchkit.study.runs import Study

if TYPE_CHECKING:  # the benchmark (study.hardware) imports this module to write its report
    from searchkit.study.hardware import HardwarePlan, Target, Truth

#: the targets (issue 26): mean gap to the best feasible cell (points) and relative hypervolume, at <= BUDGET
#: simulated s; WITHIN: the per-seed gap whose share of seeds is reported (issue 16's target)
GAP_TARGET, HV_TARGET, BUDGET, WITHIN = 0.3, 0.95, 1000, 0.5


def hypervolume_curve(front: list[FrontPoint], truth_: Truth, ref: np.ndarray, simulated: bool) -> list[tuple[float, float]]:
    """(seconds spent, relative hypervolume of the found front then) at each change of a run's found
    front (:class:`~searchkit.study.curves.Fronts`): simulated training seconds, or training-free wall seconds."""
    return [(spent_simulated if simulated else wall, truth_.relative_hypervolume(truth_.front_points(pairs), ref))
            for wall, spent_simulated, pairs in front]


def _groups(rows: list[dict], target: Target) -> dict[tuple[str, str], list[dict]]:
    """(strategy, metric) -> the target's rows (its budget or device and dataset), in order of appearance."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        if row["target"] == target.label and row.get("dataset", target.dataset) == target.dataset:
            groups.setdefault((row["strategy"], row["metric"]), []).append(row)
    return groups


def _mean(group: list[dict], key: str) -> float:
    return float(np.mean([float(r[key]) for r in group]))




def write_hardware_summary(out: Path, name: str, rows: list[dict], plan: HardwarePlan, table: Benchmark,
                           notes: list[str], curves: Curves) -> Path:
    """``out/summary.md``: the constrained rows per budget (and which meet the gap target), their
    anytime gaps, and the multi-objective rows' hypervolumes."""
    lines = [f"# Hardware-aware benchmark: {name}", "",
             "Ground truth: NAS-Bench-201's 200-epoch test accuracy on the dataset a search is for and HW-NAS-Bench's "
             "cost (that dataset's inputs, batch 1) of every cell. Constrained rows: the selected cell's test accuracy against the best "
             "feasible cell of the whole space (**gap** in points; **within 0.5**: the share of seeds with gap <= "
             "0.5). Costs charged: **simulated** = training seconds of validations (12-epoch queries: 12/200 of the "
             "table's 200-epoch time); **wall** = measured training-free seconds (stored scores are charged what "
             "they took). Multi-objective rows: the hypervolume of the found front (its non-dominated set by the "
             "run's own values and costs, evaluated at the cells' test accuracy) relative to the true front's.", ""]
    constrained = [t for t in plan.targets if t.constraint is not None]
    verdicts = []
    if constrained:
        lines += ["## Constrained search", "",
                  "| budget | dataset | strategy | metric | seeds | test acc (%) | best feasible | gap | within 0.5 | cost | "
                  "simulated s | wall s | validations |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for target in constrained:
            index, best = plan.truth(target).best_feasible(target.constraint)
            groups = _groups(rows, target)
            for (strategy, metric), group in groups.items():
                gaps = [float(r["gap"]) for r in group]
                lines.append(f"| {target.label} ({target.constraint}) | {target.dataset} | {strategy} | {metric} | {len(group)} | "
                             f"{mean_std([float(r['test']) for r in group])} | {best:.2f} | {np.mean(gaps):.2f} | "
                             f"{np.mean(np.array(gaps) <= WITHIN):.0%} | {_mean(group, 'cost'):.3g} "
                             f"{plan.truth(target).unit} | {_mean(group, 'simulated_seconds'):.0f} | "
                             f"{_mean(group, 'wall_seconds'):.1f} | {_mean(group, 'validations'):.1f} |")
            eligible = {k: g for k, g in groups.items() if _mean(g, "simulated_seconds") <= BUDGET}
            if eligible:
                key = min(eligible, key=lambda k: (np.mean([float(r["gap"]) for r in eligible[k]]), k))
                gaps = np.array([float(r["gap"]) for r in eligible[key]])
                mean_test = best - gaps.mean()
                published = "; ".join(f"{name} {value:.2f} ({'above' if mean_test > value else 'not above'})"
                                      for name, value in target.published) or "-"
                verdicts.append(f"| {target.label} | {target.constraint} | {target.dataset} | {index} | {best:.2f} | {key[0]} + {key[1]} | "
                                f"{mean_test:.2f} | {gaps.mean():.2f} | {np.mean(gaps <= WITHIN):.0%} | "
                                f"{'yes' if gaps.mean() <= GAP_TARGET else 'no'} | {published} |")
        lines += ["", f"Target: mean gap <= {GAP_TARGET} points at <= {BUDGET} simulated s, per budget (the best row "
                      "by mean gap among rows within the simulated budget):", "",
                  "| budget | constraint | dataset | best feasible cell | its test acc | best row | its mean test acc | "
                  "mean gap | within 0.5 | met | published (ours above?) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|", *verdicts]
        lines += _overall_lines(rows, constrained)
        lines += _anytime_lines(curves, rows, plan, table, constrained)
    devices = [t for t in plan.targets if t.constraint is None]
    if devices:
        lines += ["", "## Multi-objective search", "", "Reference points (test accuracy %, cost), per device and "
                  "dataset: **median floor** = the median test accuracy of all cells as the accuracy floor (the "
                  "honest reference, the one the target is judged on: only trade-offs better than the typical cell "
                  f"count) with the cost ceiling of **nadir** = the true front's nadir pushed {plan.margin:g} of the "
                  "front's range beyond it (the earlier reference, beside it: its accuracy floor near 1 % counts the "
                  "area below 90 % that any front reaching the fast, degenerate cells wins).", ""]
        for target in devices:
            refs = plan.refs(target)
            lines.append(f"- {target.device}, {target.dataset} ({plan.truth(target).unit}): " + "; ".join(
                f"{kind} ({ref[0]:.2f}, {ref[1]:.4g})" for kind, ref in refs.items()))
        lines += ["", "| device | dataset | strategy | metric | seeds | HV (median floor) | HV (nadir) | front size | "
                  f"HV >= {HV_TARGET} (median floor) | simulated s | wall s | validations |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for target in devices:
            for (strategy, metric), group in _groups(rows, target).items():
                hv = [float(r["hv_median_floor"]) for r in group]
                lines.append(f"| {target.label} | {target.dataset} | {strategy} | {metric} | {len(group)} | "
                             f"{mean_std([100 * v for v in hv])} % | "
                             f"{mean_std([100 * float(r['hv']) for r in group])} % | "
                             f"{_mean(group, 'front_size'):.1f} | {np.mean(np.array(hv) >= HV_TARGET):.0%} of seeds | "
                             f"{_mean(group, 'simulated_seconds'):.0f} | {_mean(group, 'wall_seconds'):.1f} | "
                             f"{_mean(group, 'validations'):.1f} |")
    lines += ["", "Score caches and pool:", ""] + [f"- {note}" for note in notes]
    path = out / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _overall_lines(rows: list[dict], targets: list[Target]) -> list[str]:
    """Each (strategy, metric) over every budget and dataset it searched: the mean over budgets of its
    mean gap, the worst budget's, and how many budgets met the gap target; best first."""
    per_budget: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for target in targets:
        for key, group in _groups(rows, target).items():
            per_budget.setdefault(key, []).append((_mean(group, "gap"), _mean(group, "simulated_seconds")))
    lines = ["", "Over all budgets (each row's mean gap per budget and dataset, then averaged over them):", "",
             "| strategy | metric | budgets | mean gap | worst budget's gap | budgets with gap <= "
             f"{GAP_TARGET} | mean simulated s |", "|---|---|---|---|---|---|---|"]
    for (strategy, metric), values in sorted(per_budget.items(), key=lambda kv: (np.mean([g for g, _ in kv[1]]), kv[0])):
        gaps = np.array([g for g, _ in values])
        lines.append(f"| {strategy} | {metric} | {len(values)} | {gaps.mean():.2f} | {gaps.max():.2f} | "
                     f"{int(np.sum(gaps <= GAP_TARGET))} | {np.mean([s for _, s in values]):.0f} |")
    return lines


def _anytime_lines(curves: Curves, rows: list[dict], plan: HardwarePlan, table: Benchmark,
                   targets: list[Target]) -> list[str]:
    """The mean gap of the incumbent of each validating row once at most each checkpoint's
    simulated seconds were spent."""
    lines = ["", "Anytime: mean gap (points) of the incumbent once at most N simulated seconds were spent, rows that "
                 "validate ('-' before the first answer):", "",
             "| budget | dataset | strategy | metric | " + " | ".join(f"≤ {c} s" for c in CHECKPOINTS) + " |",
             "|---|---|---|---|" + "---|" * len(CHECKPOINTS)]
    for target in targets:
        _, best = plan.truth(target).best_feasible(target.constraint)
        accuracy = plan.truth(target).accuracy
        for (strategy, metric), group in _groups(rows, target).items():
            if not any(int(r["validations"]) for r in group):
                continue
            values = np.array([anytime_accuracy(curves.get(r["run"], True), accuracy, table) for r in group])
            lines.append(f"| {target.label} | {target.dataset} | {strategy} | {metric} | " +
                         " | ".join(mean_std(list(best - column)) for column in values.T) + " |")
    return lines


def plot_gaps(out: Path, rows: list[dict], plan: HardwarePlan, table: Benchmark, curves: Curves) -> Path | None:
    """``anytime_gap.png``: per budget, each validating row's gap to the best feasible cell vs
    simulated seconds (mean over seeds, min-max band), the GAP_TARGET-point target dashed."""
    targets = [t for t in plan.targets if t.constraint is not None]
    panels = []
    for target in targets:
        _, best = plan.truth(target).best_feasible(target.constraint)
        accuracy = plan.truth(target).accuracy
        lines = {}
        for (strategy, metric), group in _groups(rows, target).items():
            if any(int(r["validations"]) for r in group):
                runs = [[(cost, best - float(accuracy[table.index_of(arch)])) for cost, arch in curve]
                        for curve in (curves.get(r["run"], True) for r in group) if curve is not None]
                if runs:
                    lines[f"{strategy} + {metric}"] = runs
        if lines:
            panels.append((target, lines))
    if not panels:
        return None
    plt = _pyplot()
    columns = min(3, len(panels))
    fig, axes = plt.subplots(-(-len(panels) // columns), columns, figsize=(5.2 * columns, 4.0 * -(-len(panels) // columns)),
                             dpi=100, squeeze=False)
    for ax, (target, lines) in zip(axes.flat, panels):
        colours = plt.get_cmap("tab10")
        for k, (label, curves) in enumerate(lines.items()):
            draw_runs(ax, curves, label, ("-", "--", ":")[(k // 10) % 3], colours(k % 10))
        ax.axhline(GAP_TARGET, color="k", linestyle="--", linewidth=0.8)
        ax.axvline(BUDGET, color="0.6", linewidth=0.6, linestyle=":")
        ax.set(xscale="log", xlabel="simulated training seconds", ylabel="gap to the best feasible cell (points)",
               title=f"{target.label}, {target.dataset}: {target.constraint}", ylim=(0, None))
        ax.legend(fontsize=6, loc="upper right")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    return _save(fig, out / "anytime_gap.png")


def plot_hypervolume(out: Path, rows: list[dict], plan: HardwarePlan, fronts: Fronts) -> Path | None:
    """``hypervolume.png``: per device and dataset, each multi-objective row's relative hypervolume
    (median-floor reference) vs seconds: training-free wall seconds for rows that only score, simulated training
    seconds for rows that validate (a line style each), the 0.95 target dashed. Runs without a stored
    front (``fronts``) are left out; None when no run has one."""

    def draw(ax: Any, target: Target, colours: Any) -> None:
        truth = plan.truth(target)
        ref = plan.refs(target)["median floor"]
        for k, ((strategy, metric), group) in enumerate(_groups(rows, target).items()):
            simulated = any(int(r["validations"]) for r in group)
            curves = [hypervolume_curve(front, truth, ref, simulated)
                      for front in (fronts.get(r["run"]) for r in group) if front]
            if not curves:
                continue
            unit = "simulated s" if simulated else "wall s"
            draw_runs(ax, curves, f"{strategy} + {metric} (vs {unit})", "--" if simulated else "-", colours(k % 10))
        ax.axhline(HV_TARGET, color="k", linestyle="--", linewidth=0.8)
        ax.set(xscale="log", xlabel="seconds charged (wall: training-free; simulated: training)",
               ylabel="hypervolume / true front's (median floor)", title=f"{target.label}, {target.dataset}",
               ylim=(0, 1.02))

    return _per_device(_with_fronts(rows, plan, fronts), plan, out / "hypervolume.png", draw)


def plot_fronts(out: Path, rows: list[dict], plan: HardwarePlan, fronts: Fronts) -> Path | None:
    """``fronts.png``: per device and dataset, every cell (grey), the true front (black) and the found
    front of each multi-objective row's first seed with a stored front (``fronts``), at test accuracy
    (from the median cell's up); None when no run has one."""
    rows = _with_fronts(rows, plan, fronts)

    def draw(ax: Any, target: Target, colours: Any) -> None:
        truth = plan.truth(target)
        points = truth.points()
        line = points[pareto_front(points)]
        ax.scatter(points[:, 1], points[:, 0], s=1, color="0.85", rasterized=True, label=f"all cells ({len(points):,})")
        ax.step(line[:, 1], line[:, 0], where="post", color="k", linewidth=1, label="true front")
        for k, ((strategy, metric), group) in enumerate(_groups(rows, target).items()):
            first = min(group, key=lambda r: int(r["seed"]))
            found = truth.front_points(fronts.get(first["run"])[-1][2])
            ax.plot(found[:, 1], found[:, 0], "o", markersize=3, color=colours(k % 10),
                    label=f"{strategy} + {metric}, seed {first['seed']} ({len(found)})")
        floor = float(np.median(points[:, 0]))
        ax.set(xlabel=f"{target.device} {target.quantity} ({truth.unit})", ylabel=f"{target.dataset} test accuracy (%)",
               title=f"{target.label}, {target.dataset}: found fronts over the true front",
               ylim=(floor, float(points[:, 0].max()) + 0.5))

    return _per_device(rows, plan, out / "fronts.png", draw)


def multi_objective(rows: list[dict], plan: HardwarePlan) -> list[dict]:
    """The rows of the multi-objective targets (no constraint)."""
    devices = {t.label for t in plan.targets if t.constraint is None}
    return [r for r in rows if r["target"] in devices]


def _with_fronts(rows: list[dict], plan: HardwarePlan, fronts: Fronts) -> list[dict]:
    """The multi-objective rows whose run has a found front (stored, or kept now from its directory)."""
    return [r for r in multi_objective(rows, plan) if fronts.get(r["run"])]


def _per_device(rows: list[dict], plan: HardwarePlan, path: Path, draw: Any) -> Path | None:
    """A figure with a panel per multi-objective device, ``draw(ax, target, colours)`` filling each
    (a legend added), saved to ``path``; None without multi-objective rows."""
    devices = [t for t in plan.targets if t.constraint is None]
    if not devices or not any(r["target"] == t.label for t in devices for r in rows):
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(devices), figsize=(6.0 * len(devices), 4.6), dpi=100, squeeze=False)
    for ax, target in zip(axes[0], devices):
        draw(ax, target, plt.get_cmap("tab10"))
        ax.legend(fontsize=6, loc="lower right")
    return _save(fig, path)


def _missing_notes(out: Path, rows: list[dict], plan: HardwarePlan, curves: Curves, fronts: Fronts) -> list[str]:
    """What the anytime figures and the front plots leave out: runs with neither a stored curve (front)
    nor a history in their directory."""
    mo = multi_objective(rows, plan)
    constrained = {t.label for t in plan.targets if t.constraint is not None}
    validating = [r for r in rows if int(r["validations"]) and r["target"] in constrained]
    notes = []
    lost = sum(curves.get(r["run"], True) is None for r in validating)
    if lost:
        notes.append(f"anytime: {lost} of {len(validating)} constrained runs that validate have neither a curve in "
                     f"{out / curves.file} nor a history in their run directory; the anytime table and "
                     "anytime_gap.png leave them out")
    lost = len(mo) - len(_with_fronts(rows, plan, fronts))
    if lost:
        notes.append(f"fronts: {lost} of {len(mo)} multi-objective runs have neither a front in {out / fronts.file} "
                     "nor a history in their run directory; hypervolume.png and fronts.png leave them out (neither is "
                     "rewritten when no run has one)")
    return notes


def write_hardware_report(study: Study, name: str, plan: HardwarePlan, table: Benchmark, notes: list[str],
                          total: int) -> None:
    """The summary and the plots of the runs in ``runs.csv`` (``total`` planned)."""
    rows, curves, fronts = study.rows(), Curves(study.out), Fronts(study.out)
    notes = [*notes, f"runs finished: {len(rows)} of {total}", *_missing_notes(study.out, rows, plan, curves, fronts)]
    write_hardware_summary(study.out, name, rows, plan, table, notes, curves)
    plot_gaps(study.out, rows, plan, table, curves)
    plot_hypervolume(study.out, rows, plan, fronts)
    plot_fronts(study.out, rows, plan, fronts)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    _pyplot().close(fig)
    return path
