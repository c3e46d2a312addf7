"""Size the hardware-aware benchmark offline: latency budgets, best feasible cells, true Pareto fronts.

Table lookups only (no scoring, no engine): NAS-Bench-201's 200-epoch CIFAR-10 test accuracy
(``NB201Table``) and HW-NAS-Bench's CIFAR-10-input latencies (``HWNASTable``).

- Devices: every device's latency ranges and gaps; rank correlations between devices and with
  accuracy; how well an additive per-edge model fits each column; the two devices to benchmark
  (pixel3, and --second, edgegpu by default).
- Budgets: the --percentiles (default 10/30/60: tight/middle/loose) of each device's latency over
  all 15,625 cells, rounded to two significant digits; per budget the feasible cells, the best
  feasible cell's test accuracy and how many feasible cells lie within 0.5 points of it.
- Baseline at <= 1,000 simulated s: random search over the feasible set (``FeasibleSpace``),
  each query charged 12/200 of the table's 200-epoch training time (the benchmark's 12-epoch
  validation), the cell with the best 12-epoch validation accuracy selected; --seeds repetitions.
- True fronts of (test accuracy, latency) and the hypervolume ratio that random fronts reach,
  for two reference points (see the written report).

    python benchmarks/hardware_budgets.py --out results/hardware-aware

Writes budgets.md (the report), budgets.csv, true_front_<device>.csv and fronts.png into --out.
"""
from __future__ import annotations

import argparse
import csv
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from scipy.stats import spearmanr

from searchkit.hardware import AdditiveCost, Constraint, TableCost
from searchkit.pareto import hypervolume, pareto_front, reference_point
from searchkit.spaces import NB201Space
from searchkit.spaces.base import feature_matrix
from searchkit.spaces.constrained import FeasibleSpace
from searchkit.spaces.nb201 import OPS
from searchkit.tabular import HWNASTable, NB201Table
from searchkit.tabular.hwnas import DEVICES

LEVELS = ("tight", "middle", "loose")
SIMULATED_BUDGET = 1000.0
EPOCHS_FRACTION = 12 / 200


def round_sig(x: float, digits: int = 2) -> float:
    """``x`` rounded to ``digits`` significant digits."""
    return float(f"{x:.{digits}g}")


def queries_within(draws: Iterator[int], charge: np.ndarray, distinct: int,
                   budget: float = SIMULATED_BUDGET) -> np.ndarray:
    """The distinct cells of ``draws`` in order, each charged ``charge[i]`` simulated seconds (a
    repeat is free), up to the last one whose charge keeps the total within ``budget``, or until
    all ``distinct`` cells there are have been drawn."""
    spent, seen = 0.0, {}
    for i in draws:
        if len(seen) == distinct:
            break
        if i in seen:
            continue
        if spent + charge[i] > budget:
            break
        spent += charge[i]
        seen[i] = None
    return np.array(list(seen), dtype=np.int64)


def random_search(space: FeasibleSpace, codes: dict, valid12: np.ndarray, charge: np.ndarray, test: np.ndarray,
                  rng: np.random.Generator) -> tuple[float, int]:
    """(test accuracy of the best-by-12-epoch-validation cell, queries) of one random search over
    ``space`` within the simulated budget."""
    chosen = queries_within((codes[space.sample(rng)] for _ in itertools.count()), charge, len(space.members))
    return float(test[chosen[np.argmax(valid12[chosen])]]), len(chosen)


def front_by_objective(chosen: np.ndarray, objective: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """The cells of ``chosen`` that are non-dominated in (objective, cost)."""
    return chosen[pareto_front(np.c_[objective[chosen], cost[chosen]])]


@dataclass
class Tables:
    """The two tables' columns the report reads, all in the official cell order (n = 15,625)."""

    hw: HWNASTable
    test: np.ndarray  # (n,) 200-epoch CIFAR-10 test accuracy (%)
    valid12: np.ndarray  # (n,) 12-epoch validation accuracy (%)
    charge: np.ndarray  # (n,) simulated seconds of a 12-epoch validation
    best_index: int
    best_acc: float
    space: NB201Space
    codes: dict  # cell -> its index

    @classmethod
    def load(cls) -> "Tables":
        nb201, hw = NB201Table.load(), HWNASTable.load("cifar10")
        if hw.arch_strs != tuple(nb201.arch_str(i) for i in range(len(nb201))):
            raise SystemExit("the HW-NAS-Bench and NAS-Bench-201 tables list the cells in different orders")
        space = NB201Space()
        best_index, best_acc = nb201.best("cifar10")
        return cls(hw, nb201.column("cifar10", "test", 200), nb201.column("cifar10", "valid", 12),
                   nb201.columns["c10_train_time_200ep_s"] * EPOCHS_FRACTION, best_index, best_acc, space,
                   {space.decode(s): i for i, s in enumerate(hw.arch_strs)})


def device_rows(t: Tables) -> list[str]:
    rows = ["| device | quantity | measured | gaps | distinct values | min | p10 | median | max | "
            "Spearman with pixel3 latency | Spearman with test acc | additive fit R^2 | additive max error |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    hw, test = t.hw, t.test
    pixel3 = hw.column("pixel3")
    codes = feature_matrix(t.space, list(t.codes))  # t.codes lists the cells in table order
    for device, quantities in DEVICES.items():
        for quantity in quantities:
            col = hw.column(device, quantity)
            ok = ~np.isnan(col)
            v = col[ok]
            rho_p = spearmanr(col[ok], pixel3[ok])[0]
            rho_a = spearmanr(col[ok], test[ok])[0]
            unit = "ms" if quantity == "latency" else "mJ"
            additive = AdditiveCost.fit(codes, col, num_ops=len(OPS))
            rows.append(f"| {device} | {quantity} ({unit}) | {ok.sum():,} | {(~ok).sum():,} | {len(np.unique(v)):,} | "
                        f"{v.min():.4g} | {np.percentile(v, 10):.4g} | {np.median(v):.4g} | {v.max():.4g} | "
                        f"{rho_p:.2f} | {rho_a:.2f} | {additive.r2:.3f} | {additive.max_error:.3g} |")
    return rows


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results/hardware-aware"))
    parser.add_argument("--second", default="edgegpu", help="the device benchmarked beside pixel3")
    parser.add_argument("--percentiles", type=float, nargs=3, default=[10.0, 30.0, 60.0])
    parser.add_argument("--seeds", type=int, default=1000, help="repetitions of each random baseline")
    return parser.parse_args()


def device_section(args: argparse.Namespace, t: Tables) -> list[str]:
    """The report's title, ground truth and devices (with the choice of the second device)."""
    hw = t.hw
    lines = [
        "# Hardware-aware benchmark sizing (offline, table lookups only)",
        "",
        f"Command: `python benchmarks/hardware_budgets.py --out {args.out} --second {args.second} --percentiles "
        f"{' '.join(f'{p:g}' for p in args.percentiles)} --seeds {args.seeds}`",
        "",
        "Ground truth: NAS-Bench-201 200-epoch CIFAR-10 test accuracy (`c10_test_acc_200ep`; best cell "
        f"{t.best_index}: {t.best_acc:.2f} %) and HW-NAS-Bench latencies for CIFAR-10 inputs "
        "(`../shared/data/hwnas/hw_nas_bench_c10.csv`, batch 1). Both tables list the 15,625 cells in the same "
        "(official) order, checked by the script.",
        "",
        "## The devices (CIFAR-10 inputs)",
        "",
        "Spearman correlations are over the cells every column measures (Edge TPU gaps left out). 'Additive fit': "
        "least squares of cost = bias + sum over the 6 edges of a per-(edge, op) weight "
        "(`searchkit.hardware.AdditiveCost`, the form of a differentiable budget penalty); R^2 = 1 with zero error "
        "means the column is exactly a sum of per-op costs.",
        "",
        *device_rows(t),
        "",
    ]
    gap_free = [d for d in DEVICES if d != "pixel3" and not np.isnan(hw.column(d)).any()]
    rho = {d: spearmanr(hw.column("pixel3"), hw.column(d))[0] for d in gap_free}
    distinct = {d: len(np.unique(hw.column(d))) for d in gap_free}
    return lines + [
        f"Second device: `{args.second}`. Spearman of each gap-free device's latency with pixel3's over all cells: "
        + ", ".join(f"{d} {rho[d]:.2f}" for d in sorted(rho, key=rho.get))
        + f"; lowest: {min(rho, key=rho.get)}. A device whose latency ranks cells unlike pixel3's cuts the space "
        "differently, so the two devices test different trade-offs. Distinct latency values: "
        + ", ".join(f"{d} {distinct[d]:,}" for d in gap_free)
        + ". The Eyeriss and FPGA columns are exact sums of per-(edge, op) costs (additive fit above), consistent "
        "with per-layer estimates rather than end-to-end measurements (the paper calls its values 'measured/"
        "estimated'); the edge GPU's are not, and it also reports energy, for an `energy_mj` variant.",
        "",
    ]


def budget_intro(args: argparse.Namespace, t: Tables) -> list[str]:
    """The budgets section's heading, definitions and table header."""
    return [
        "## Budgets",
        "",
        f"Limits are the {'/'.join(f'{p:g}th' for p in args.percentiles)} percentiles of the device's latency over all "
        "15,625 cells, rounded to two significant digits: tight (about a tenth of the space is feasible and the best "
        "feasible cell is clearly below the global best), middle, and loose (most of the space feasible, the best "
        "feasible cell near the global best). 'Within 0.5' counts the feasible cells whose test accuracy is at least "
        "the best feasible one's minus 0.5 points: the cells that meet the issue's target.",
        "",
        f"Random baseline: random search over the feasible set, each new cell charged its 12-epoch validation "
        f"(12/200 of the table's 200-epoch CIFAR-10 training time, {np.median(t.charge):.0f} s median), stopping "
        f"before {SIMULATED_BUDGET:.0f} simulated s, selecting the best 12-epoch validation accuracy; {args.seeds} "
        "seeds. 'P(<= 0.5)' is the fraction of seeds within 0.5 points of the best feasible cell.",
        "",
        "| device | budget | percentile | limit (ms) | feasible cells | best feasible (index) | test acc | gap to "
        "global best | within 0.5 | random: test acc | random: gap | random: P(<= 0.5) | random: queries |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]


def budget(t: Tables, cost: TableCost, level: str, pct: float, seeds: int) -> tuple[dict, str]:
    """One budget of ``cost``'s device at latency percentile ``pct``: (its budgets.csv row, its report line)."""
    test, latency, device = t.test, t.hw.column(cost.device), cost.device
    limit = round_sig(float(np.nanpercentile(latency, pct)))
    constraint = Constraint.of(device, "latency", limit)
    feasible = FeasibleSpace(t.space, cost, constraint)
    mask = constraint.feasible(latency)
    assert len(feasible.members) == mask.sum()
    best = int(np.flatnonzero(mask)[np.argmax(test[mask])])
    within = int((test[mask] >= test[best] - 0.5).sum())
    rng = np.random.default_rng(0)
    runs = np.array([random_search(feasible, t.codes, t.valid12, t.charge, test, rng) for _ in range(seeds)])
    gaps = test[best] - runs[:, 0]
    row = {"device": device, "level": level, "percentile": pct, "latency_ms": limit,
           "feasible": int(mask.sum()), "best_index": best, "best_arch": t.hw.arch_str(best),
           "best_test_acc": round(float(test[best]), 4), "within_0.5": within,
           "random_test_acc": round(float(runs[:, 0].mean()), 4),
           "random_p_within_0.5": round(float((gaps <= 0.5).mean()), 4)}
    line = (f"| {device} | {level} | {pct:g} | {limit:g} | {mask.sum():,} | {best} | {test[best]:.2f} | "
            f"{t.best_acc - test[best]:.2f} | {within} | {runs[:, 0].mean():.2f} ± {runs[:, 0].std():.2f} | "
            f"{gaps.mean():.2f} | {(gaps <= 0.5).mean():.2f} | {runs[:, 1].mean():.1f} |")
    return row, line


def budget_section(args: argparse.Namespace, t: Tables, devices: list[str]) -> tuple[list[str], list[dict]]:
    """The budgets section's lines and budgets.csv's rows (written into ``args.out``)."""
    lines, rows = budget_intro(args, t), []
    for device in devices:
        cost = TableCost(t.hw, device)
        for level, pct in zip(LEVELS, args.percentiles):
            row, line = budget(t, cost, level, pct, args.seeds)
            rows.append(row)
            lines.append(line)
    with open(args.out / "budgets.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines += ["", "Configs for phase 2 (`constraint:` per budget): " + "; ".join(
        f"`{{device: {r['device']}, latency_ms: {r['latency_ms']:g}}}`" for r in rows), ""]
    return lines, rows


FRONT_INTRO = [
    "## True Pareto fronts of (test accuracy, latency)",
    "",
    "Reference points for the hypervolume (column 0 maximised, column 1 minimised, see `searchkit.pareto`):",
    "",
    "- **A (nadir + 10 %)**: the true front's nadir pushed 10 % of the front's range away from its ideal "
    "(`reference_point(points, margin=0.1)`). The front starts at the degenerate cells (10 % accuracy, near-zero "
    "latency), so A's accuracy floor is near 0 and most of the area lies below 90 % accuracy.",
    "- **B (median floor)**: accuracy floor = the median test accuracy of all cells, latency ceiling = A's. Only "
    "the better half of the accuracy range counts, where the budgets' trade-offs are.",
    "",
    "Random fronts, mean over seeds: *oracle k* = the non-dominated subset, at their true test accuracy, of k "
    "uniform random cells; *12-epoch, 1000 s* = random cells queried until 1,000 simulated s (as above), "
    "the front chosen by 12-epoch validation accuracy and evaluated at test accuracy. Both are non-adaptive: an "
    "adaptive multi-objective search should beat them.",
    "",
    "| device | front size | front accuracy (%) | front latency (ms) | reference | ref point (acc %, ms) | "
    "oracle k=10 | oracle k=50 | oracle k=200 | 12-epoch, 1000 s |",
    "|---|---|---|---|---|---|---|---|---|---|",
]


def random_front_ratios(t: Tables, latency: np.ndarray, ref: np.ndarray, seeds: int) -> tuple[dict, float]:
    """Mean hypervolume ratios to the true front's (reference ``ref``) of the oracle k-cell fronts
    (k = 10, 50, 200) and of the 12-epoch, 1000 s fronts, over ``seeds`` draws."""
    points, everything = np.c_[t.test, latency], np.arange(len(t.test))
    total = hypervolume(points, ref)
    rng = np.random.default_rng(0)
    oracle = {k: np.mean([hypervolume(points[rng.choice(everything, k, replace=False)], ref) / total
                          for _ in range(seeds)]) for k in (10, 50, 200)}
    budgeted = []
    for _ in range(seeds):
        chosen = queries_within(iter(rng.permutation(everything)), t.charge, len(everything))
        found = front_by_objective(chosen, t.valid12, latency)
        budgeted.append(hypervolume(points[found], ref) / total)
    return oracle, float(np.mean(budgeted))


def front_section(args: argparse.Namespace, t: Tables, devices: list[str]) -> tuple[list[str], dict]:
    """The true fronts section's lines and each device's true front (true_front_<device>.csv written)."""
    test, lines, fronts = t.test, list(FRONT_INTRO), {}
    for device in devices:
        latency = t.hw.column(device)
        points = np.c_[test, latency]
        front = fronts[device] = pareto_front(points)
        with open(args.out / f"true_front_{device}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["index", "arch_str", "c10_test_acc_200ep", f"{device}_latency_ms"])
            writer.writerows([int(i), t.hw.arch_str(i), f"{test[i]:.4f}", f"{latency[i]:.6g}"] for i in front)
        ref_a = reference_point(points, margin=0.1)
        for name, ref in {"A": ref_a, "B": np.array([float(np.median(test)), ref_a[1]])}.items():
            oracle, budgeted = random_front_ratios(t, latency, ref, args.seeds)
            lines.append(f"| {device} | {len(front)} | {test[front].min():.2f}-{test[front].max():.2f} | "
                         f"{latency[front].min():.3g}-{latency[front].max():.3g} | {name} | "
                         f"({ref[0]:.2f}, {ref[1]:.3g}) | {oracle[10]:.3f} | "
                         f"{oracle[50]:.3f} | {oracle[200]:.3f} | {budgeted:.3f} |")
    lines += ["", "Files: `budgets.csv` (one row per budget), `true_front_<device>.csv` (the true front, cost "
              "ascending), `fronts.png` (all cells, the true front and the budgets).", ""]
    return lines, fronts


def main() -> None:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    t = Tables.load()
    devices = ["pixel3", args.second]
    lines = device_section(args, t)
    budget_lines, budget_rows = budget_section(args, t, devices)
    front_lines, fronts = front_section(args, t, devices)
    lines += budget_lines + front_lines
    plot_fronts(args.out / "fronts.png", t.hw, t.test, devices, fronts, budget_rows)
    (args.out / "budgets.md").write_text("\n".join(lines))
    print("\n".join(lines))


def plot_fronts(path: Path, hw: HWNASTable, test: np.ndarray, devices: list[str], fronts: dict,
                budget_rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(devices), figsize=(6 * len(devices), 9), squeeze=False)
    for column, device in enumerate(devices):
        latency, front = hw.column(device), fronts[device]
        for row, ylim in enumerate(((0, 100), (85, 95))):
            ax = axes[row, column]
            ax.scatter(latency, test, s=2, c="0.75", label="all 15,625 cells", rasterized=True)
            ax.step(latency[front], test[front], where="post", color="C3", lw=1.2)
            ax.scatter(latency[front], test[front], s=10, color="C3", label=f"true front ({len(front)})", zorder=3)
            for budget in (r for r in budget_rows if r["device"] == device):
                ax.axvline(budget["latency_ms"], color="C0", ls="--", lw=0.8)
                y = ylim[0] + (ylim[1] - ylim[0]) * (0.3 + 0.12 * LEVELS.index(budget["level"]))
                ax.annotate(f"{budget['level']} {budget['latency_ms']:g} ms\nbest {budget['best_test_acc']:.2f}",
                            (budget["latency_ms"], y), fontsize=7, color="C0")
            ax.set(xlabel=f"{device} latency (ms, HW-NAS-Bench, CIFAR-10 input)", ylabel="CIFAR-10 test accuracy (%)",
                   title=f"NAS-Bench-201 on {device}" + (" (zoom)" if row else ""), ylim=ylim)
            ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


if __name__ == "__main__":
    main()
