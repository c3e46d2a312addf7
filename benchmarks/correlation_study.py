"""The NAS-Bench-201 correlation study: merge ``searchkit correlate`` outputs, tune on EVEN indices,
report on ODD indices.

    python benchmarks/correlation_study.py results/correlation/ntk results/correlation/zero_cost \
        --variants results/correlation/kcc-variants/b64 results/correlation/kcc-variants/b32 \
        results/correlation/kcc-variants/b128 --out results/correlation/study.md

``--variants``: correlate outputs of KCC variants scored on even-index architectures only (the
choices that need their own NTK: BN mode, per-class NTK, batch size; commands in
results/correlation/kcc-variants/README.md); each enters the tuning table on the even
architectures it shares with the main directories, beside the chosen KCC (the best on the even
half among those scored on both halves) on the same ones, with a paired-bootstrap interval of the
difference.

Tuning (choosing KCC's options, choosing the ensemble) uses only architectures with an even
NB201 index and their CIFAR-10 *validation* accuracy (cifar10-valid protocol); every reported
figure of a tuned choice is on the odd-index architectures, which the choices never saw.

The KCC variants study of issue 15 (results/correlation/kcc-study) adds, when given:

* a directory whose settings.yaml has ``groups`` (``benchmarks/kcc_study.py score``): per group
  (question) the even-half tuning table with paired-bootstrap intervals against the default
  ``kcc``, then each group's best on the odd half with intervals against params, naswot, synflow;
* ``--noise DIR ...``: the noise ceiling, each metric's rank agreement with itself across init
  seeds and across batches, and the mean over k draws against accuracy and cost;
* ``--darts DIR ...``: every metric's Spearman against the accuracies of the DARTS CSV;
* the best rank ensembles containing the chosen KCC (sizes 2 to 4, chosen on the even half).

    python benchmarks/correlation_study.py results/correlation/ntk results/correlation/zero_cost \
        results/correlation/kcc-study/nb201 --noise results/correlation/kcc-study/noise/i* \
        --darts results/correlation/kcc-study/darts results/correlation/kcc-study/darts/costly \
        --out results/correlation/kcc-study/study.md
"""
from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import yaml
from scipy import stats

from reference_agreement import COLUMNS, SUITE_ZERO, read_reference  # benchmarks/ is sys.path[0]
from searchkit.correlate import read_scores
from searchkit.correlation_report import correlations, rank_combination
from searchkit.tabular import NB201Table

#: NAS-Bench-201's (dataset, split) accuracy columns, 200 epochs
TARGETS = [(d, s) for d, s, _ in NB201Table.targets]

#: Published Spearman rho on NB201 CIFAR-10 (Abdelfattah et al. 2021 over all 15,625; NASWOT
#: from Mellor et al. 2021; the NTK-based figure as tabulated by ZiCo, Li et al. 2023).
PUBLISHED = {"grad_norm": 0.59, "snip": 0.60, "grasp": 0.51, "fisher": 0.36, "synflow": 0.74,
             "jacob_cov": 0.73, "naswot": 0.77, "ntk_cond": 0.44}
BASELINES = ("naswot", "synflow", "params")
#: Held-out targets of the issue-15 tables: 200-epoch test accuracy on the three datasets.
HELD_OUT = (("cifar10", "test"), ("cifar100", "test"), ("ImageNet16-120", "test"))


def md(name: str) -> str:
    """A metric column name as a markdown table cell (``kcc|ce`` holds a pipe)."""
    return name.replace("|", "\\|")


def label_of(directory: Path, label: str) -> str:
    """A column's name in the report: ``label``, with ``@batch=B`` when the directory scored with
    another batch size than 64."""
    batch = yaml.safe_load((directory / "settings.yaml").read_text())["batch_size"]
    return label if batch == 64 else f"{label}@batch={batch}"


def load(dirs: list[Path]) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, float]]:
    """Metric columns over the indices every directory scored, their indices, mean seconds per metric."""
    frames = []
    for d in dirs:
        labels = yaml.safe_load((d / "settings.yaml").read_text())["metrics"]
        frames.append((d, labels, read_scores(d / "scores.csv")))
    common = sorted(set.intersection(*(set(rows) for _, _, rows in frames)))
    columns, seconds = {}, {}
    for d, labels, rows in frames:
        for label in labels:
            columns[label_of(d, label)] = np.array([rows[i][label] for i in common])
            seconds[label_of(d, label)] = float(np.mean([rows[i][f"{label}_s"] for i in common]))
    return columns, np.array(common), seconds


def is_control(label: str) -> bool:
    """A column of benchmarks/kcc_study.py on another kernel (``SPEC|ce``, ``SPEC|permuted``):
    not a deployable metric, so never chosen and never an ensemble member."""
    return "|" in label


def is_kcc_variant(label: str) -> bool:
    return (label.split("@")[0] in ("kcc", "hsic", "kta", "kcc_crossfit") or label.startswith(("kcc:", "kcc_crossfit:"))
            or is_control(label))


def rho(values: np.ndarray, accuracy: np.ndarray) -> float:
    return correlations(values, accuracy)[0]


def paired_bootstrap(a: np.ndarray, b: np.ndarray, accuracy: np.ndarray, resamples: int = 2000,
                     seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of rho(a) - rho(b) (Spearman against ``accuracy``) over ``resamples``
    resamplings of the architectures, the same resample for both: is variant ``a`` better than ``b``?"""
    picks = np.random.default_rng(seed).integers(0, len(a), (resamples, len(a)))

    def rhos(values: np.ndarray) -> np.ndarray:  # Spearman = Pearson of the ranks, row by row
        ranks = stats.rankdata(values[picks], axis=1), stats.rankdata(accuracy[picks], axis=1)
        x, y = (r - r.mean(axis=1, keepdims=True) for r in ranks)
        return (x * y).sum(1) / np.sqrt((x * x).sum(1) * (y * y).sum(1))

    low, high = np.nanpercentile(rhos(a) - rhos(b), [2.5, 97.5])
    return float(low), float(high)


def table_lines(columns: dict[str, np.ndarray], accuracy: dict[str, np.ndarray], seconds: dict[str, float]) -> list[str]:
    head = " | ".join(f"{d} {s}" for d, s in TARGETS)
    lines = [f"| metric | {head} | s/arch | published (C10 test) |", "|---|" + "---|" * (len(TARGETS) + 2)]
    for label, values in columns.items():
        cells = " | ".join("{:.3f} / {:.3f}".format(*correlations(values, accuracy[t])) for t in TARGETS)
        lines.append(f"| {md(label)} | {cells} | {seconds.get(label, float('nan')):.3f} | {PUBLISHED.get(label, '')} |")
    return lines


def peer_lines(columns: dict[str, np.ndarray], indices: np.ndarray, table: NB201Table) -> list[str]:
    """Ours beside NAS-Bench-Suite-Zero's values of the same metric, all against this table's CIFAR-10
    test accuracy: separates what our implementation does from what the sample and ground truth do."""
    suite = read_reference(SUITE_ZERO, "net_str")
    peer_index = np.array([table.index_of(arch) for arch in suite])
    accuracy = table.column("cifar10", "test", 200)
    ours_set = set(indices.tolist())
    lines = ["| metric | ours (n) | Suite-Zero, all (n) | Suite-Zero, our sample (n) | published |", "|---|---|---|---|---|"]
    for name, (column, _) in COLUMNS.items():
        if name not in columns:
            continue
        have = np.array([column in row for row in suite.values()])
        values = np.array([row.get(column, np.nan) for row in suite.values()])
        mine = have & np.array([i in ours_set for i in peer_index])
        lines.append(f"| {md(name)} | {rho(columns[name], accuracy[indices]):.3f} ({len(indices)}) | "
                     f"{rho(values[have], accuracy[peer_index[have]]):.3f} ({have.sum()}) | "
                     f"{rho(values[mine], accuracy[peer_index[mine]]):.3f} ({mine.sum()}) | {PUBLISHED.get(name, '')} |")
    return lines


def interval_cell(a: np.ndarray, b: np.ndarray, accuracy: np.ndarray) -> str:
    """'difference [low, high]' of rho(a) - rho(b) with its paired-bootstrap 95% interval."""
    low, high = paired_bootstrap(a, b, accuracy)
    return f"{rho(a, accuracy) - rho(b, accuracy):+.3f} [{low:+.3f}, {high:+.3f}]"


def held_out_lines(labels: list[str], columns: dict[str, np.ndarray], odd: np.ndarray,
                   accuracy: dict[tuple[str, str], np.ndarray],
                   compare: tuple[tuple[str, str], ...] = HELD_OUT) -> list[str]:
    """Odd-half Spearman of each label on the :data:`HELD_OUT` targets, and its difference to each
    baseline on the ``compare`` targets with a paired-bootstrap interval (the same architectures)."""
    baselines = [b for b in BASELINES if b in columns]
    head = " | ".join(f"{d} {s}" for d, s in HELD_OUT)
    lines = [f"| metric | {head} | " + " | ".join(f"minus {b}: {d} {s}" for b in baselines for d, s in compare) + " |",
             "|---|" + "---|" * (len(HELD_OUT) + len(compare) * len(baselines))]
    for label in labels:
        cells = [f"{rho(columns[label][odd], accuracy[t][odd]):.3f}" for t in HELD_OUT]
        cells += [interval_cell(columns[label][odd], columns[b][odd], accuracy[t][odd])
                  for b in baselines for t in compare]
        lines.append(f"| {md(label)} | " + " | ".join(cells) + " |")
    return lines


def group_lines(groups: dict[str, list[str]], columns: dict[str, np.ndarray], seconds: dict[str, float],
                even: np.ndarray, odd: np.ndarray, accuracy: dict[tuple[str, str], np.ndarray],
                reference: str = "kcc") -> list[str]:
    """Per group: the even-half tuning table against ``reference`` (C10 valid), then the group's best
    on the odd half beside ``reference``."""
    target = accuracy[("cifar10", "valid")][even]
    lines = []
    for title, labels in groups.items():
        tuned = {k: rho(columns[k][even], target) for k in labels}
        best = max(tuned, key=tuned.get)
        lines += [f"### {title}", "", f"Even half (n = {even.sum()}), Spearman vs CIFAR-10 validation accuracy; "
                  f"the interval is the paired bootstrap of the variant's rho minus `{reference}`'s.", "",
                  f"| variant | rho (C10 valid, even) | minus {reference}, 95% | median value [quartiles] | s/arch (joint NTK + own) |",
                  "|---|---|---|---|---|"]
        for k in sorted(labels, key=lambda k: -tuned[k]):
            diff = interval_cell(columns[k][even], columns[reference][even], target) if k != reference else ""
            spread = "{:.3f} [{:.3f}, {:.3f}]".format(*np.percentile(columns[k][even], [50, 25, 75]))
            lines.append(f"| {md(k)} | {tuned[k]:.3f} | {diff} | {spread} | {seconds[k]:.2f} |")
        lines += ["", f"Best on the even half: `{best}`. Held out (odd half, n = {odd.sum()}):", "",
                  *held_out_lines(list(dict.fromkeys([best, reference])), columns, odd, accuracy, HELD_OUT[:1]), ""]
    return lines


def best_ensembles(columns: dict[str, np.ndarray], candidates: list[str], member: str | None, even: np.ndarray,
                   target: np.ndarray, sizes: tuple[int, ...] = (2, 3, 4)) -> dict[int, tuple[tuple[str, ...], float]]:
    """size -> (the rank ensemble of ``candidates`` with the highest rho on the even half, that rho);
    with ``member``, only ensembles that contain it."""
    others = [k for k in candidates if k != member]
    fixed = (member,) if member is not None else ()
    best = {}
    for size in sizes:
        scored = {(*fixed, *combo): rho(rank_combination([columns[k][even] for k in (*fixed, *combo)]), target)
                  for combo in itertools.combinations(others, size - len(fixed))}
        top = max(scored, key=scored.get)
        best[size] = (top, scored[top])
    return best


def noise_lines(dirs: list[Path], table: NB201Table) -> list[str]:
    """The noise ceiling from correlate-format directories that score the same architectures with
    other init seeds (batch 0) or other batches (init seed 0)."""
    draws = {}
    for d in dirs:
        settings = yaml.safe_load((d / "settings.yaml").read_text())
        draws[(settings["init_seed"], settings["data_seed"])] = d
    columns, indices, seconds = {}, None, {}
    for key, d in draws.items():
        cols, idx, secs = load([d])
        indices = idx if indices is None else indices
        if not np.array_equal(idx, indices):
            raise SystemExit(f"{d} scored other architectures than the other noise directories")
        columns[key], seconds[key] = cols, secs
    inits = sorted(k for k in draws if k[1] == 0)
    batches = sorted(k for k in draws if k[0] == 0)
    metrics = [m for m in columns[(0, 0)] if all(m in c for c in columns.values())]
    even, odd = indices % 2 == 0, indices % 2 == 1
    valid, test = table.column("cifar10", "valid", 200)[indices], table.column("cifar10", "test", 200)[indices]

    def cost(keys: list[tuple[int, int]], metric: str) -> float:
        """Median over the draws of the mean seconds per architecture: a draw can share its Theta cache
        with a study that computed a costlier joint NTK there (noise/i0-d0 with nb201), which a mean would
        carry into every k."""
        return float(np.median([seconds[d][metric] for d in keys]))

    def agreement(keys: list[tuple[int, int]], metric: str) -> str:
        pairs = [rho(columns[a][metric], columns[b][metric]) for a, b in itertools.combinations(keys, 2)]
        return f"{np.mean(pairs):.3f} [{min(pairs):.3f}, {max(pairs):.3f}]"

    lines = ["## Q1 noise ceiling", "",
             f"n = {len(indices)} architectures ({even.sum()} even, {odd.sum()} odd); draws: init seeds "
             f"{[k[0] for k in inits]} with batch 0, batches (data seeds) {[k[1] for k in batches]} with init seed 0. "
             "Self-agreement: mean Spearman between two draws of the same metric over all pairs of draws [min, max]. "
             "A score that agrees with itself at r ranks any fixed target at about sqrt(r) at most.", "",
             "| metric | across init seeds | across batches | s/arch (one draw, median over draws) |", "|---|---|---|---|"]
    for m in metrics:
        lines.append(f"| {md(m)} | {agreement(inits, m)} | {agreement(batches, m)} | {cost(list(draws), m):.2f} |")
    lines += ["", "Mean over k draws (the mean of each architecture's per-draw ranks), Spearman against CIFAR-10 "
              "validation accuracy on the even architectures and test accuracy on the odd ones, averaged over every "
              "choice of k draws among the four; s/arch = k times the median draw's.", "",
              "| metric | draws | k | even, C10 valid | odd, C10 test | s/arch |", "|---|---|---|---|---|---|"]
    for m in metrics:
        for axis, keys in (("init seeds", inits), ("batches", batches)):
            for k in (1, 2, 4):
                subsets = list(itertools.combinations(keys, k))
                means = [rank_combination([columns[d][m] for d in sub]) for sub in subsets]
                r_even = np.mean([rho(v[even], valid[even]) for v in means])
                r_odd = np.mean([rho(v[odd], test[odd]) for v in means])
                lines.append(f"| {md(m)} | {axis} | {k} | {r_even:.3f} | {r_odd:.3f} | {k * cost(keys, m):.2f} |")
    return lines + [""]


def darts_lines(directories: list[Path]) -> list[str]:
    """Spearman / Kendall of every column of the DARTS studies against the CSV's accuracies, each on
    the cells its directory scored."""
    from kcc_study import darts_rows  # benchmarks/ is sys.path[0]

    root = Path(__file__).resolve().parent.parent
    table_rows, notes = [], []
    for directory in directories:
        settings = yaml.safe_load((directory / "settings.yaml").read_text())
        spec = yaml.safe_load((directory / "study.yaml").read_text())
        accuracy = np.array([acc for _, acc in darts_rows((root / spec["archs"]).resolve())])
        rows = read_scores(directory / "scores.csv")
        indices = np.array(sorted(rows))
        notes.append(f"`{directory}`: {len(indices)} of the {len(accuracy)} cells")
        for label in settings["metrics"]:
            values = np.array([rows[i][label] for i in indices])
            r, t = correlations(values, accuracy[indices])
            seconds = np.mean([rows[i][label + "_s"] for i in indices])
            table_rows.append((r, f"| {md(label)} | {len(indices)} | {r:.3f} / {t:.3f} | {seconds:.3f} |"))
    spec = yaml.safe_load((directories[0] / "study.yaml").read_text())
    return ["## DARTS: the second held-out space (never tuned on)", "",
            f"Cells of `{spec['archs']}` (rank correlation only: its training protocol is undocumented), scored on "
            f"the proxy network {spec['build']} with a CIFAR-10 batch of {spec['batch_size']}, init seed "
            f"{spec['init_seed']}: {'; '.join(notes)}. Spearman rho / Kendall tau against the CSV's accuracy; s/arch "
            "on one core (NTK metrics include the NTK).", "",
            "| metric | n | rho / tau | s/arch |", "|---|---|---|---|",
            *(line for _, line in sorted(table_rows, key=lambda x: -np.nan_to_num(x[0], nan=-9))), ""]


def kcc_study_lines(dirs: list[Path], columns: dict[str, np.ndarray], indices: np.ndarray, seconds: dict[str, float],
                    chosen: str, singles: list[str], accuracy: dict[tuple[str, str], np.ndarray]) -> list[str]:
    """The issue-15 sections: groups of KCC variants, held-out intervals, ensembles containing the chosen KCC."""
    even, odd = indices % 2 == 0, indices % 2 == 1
    groups = {}
    for d in dirs:
        groups.update(yaml.safe_load((d / "settings.yaml").read_text()).get("groups") or {})
    if not groups:
        return []
    lines = ["# KCC variants (issue 15)", "",
             "Every variant below is scored from the same Theta per architecture (benchmarks/kcc_study.py). Tuning "
             "uses the even half only; the odd half is reported with paired-bootstrap intervals (2,000 resamples of "
             "the architectures) of the difference to params, naswot and synflow.", ""]
    lines += group_lines(groups, columns, seconds, even, odd, accuracy)
    every = list(dict.fromkeys(k for labels in groups.values() for k in labels))
    lines += ["## Every variant on the held-out half", "",
              f"Each column of the groups above on the odd half (n = {odd.sum()}), whether or not the even half chose "
              "it: not a choice, the full picture.", "",
              *held_out_lines(every, columns, odd, accuracy, HELD_OUT[:1]), ""]
    target = accuracy[("cifar10", "valid")][even]
    lines += ["## The chosen KCC on the held-out half", "",
              f"Best KCC-family column on the even half (C10 valid): `{chosen}` "
              f"(rho {rho(columns[chosen][even], target):.3f}).", "",
              *held_out_lines(list(dict.fromkeys([chosen, "kcc"])), columns, odd, accuracy), "",
              "## Rank ensembles with and without the chosen KCC (chosen on the even half)", "",
              f"Candidates: `{chosen}` and {', '.join(k for k in singles if k != chosen)}. Sum of ranks; for each size "
              "the best combination on the even half that contains the chosen KCC, and the best that does not.", "",
              "| size | members | rho even (C10 valid) | " + " | ".join(f"odd {d} {s}" for d, s in HELD_OUT) + " |",
              "|---|---|---|" + "---|" * len(HELD_OUT)]
    without = [k for k in singles if k != chosen]
    for size in (2, 3, 4):
        for member, pool in ((chosen, singles), (None, without)):
            members, r_even = best_ensembles(columns, pool, member, even, target, (size,))[size]
            ens = rank_combination([columns[k][odd] for k in members])
            lines.append(f"| {size} | {md(' + '.join(members))} | {r_even:.3f} | "
                         + " | ".join(f"{rho(ens, accuracy[t][odd]):.3f}" for t in HELD_OUT) + " |")
    return lines + [""]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", type=Path, nargs="+", help="searchkit correlate output directories")
    parser.add_argument("--variants", type=Path, nargs="*", default=[],
                        help="correlate outputs of KCC variants on even-index architectures")
    parser.add_argument("--out", type=Path, required=True, help="markdown report to write")
    parser.add_argument("--ensemble-size", type=int, default=3, help="metrics per rank ensemble (default 3)")
    parser.add_argument("--noise", type=Path, nargs="*", default=[],
                        help="noise-ceiling directories (benchmarks/kcc_study.py), one draw each")
    parser.add_argument("--darts", type=Path, nargs="*", default=[],
                        help="DARTS study directories (benchmarks/kcc_study.py)")
    return parser.parse_args()


def tune_kcc(args: argparse.Namespace, table: NB201Table, columns: dict[str, np.ndarray], even: np.ndarray,
             tune_target: np.ndarray) -> tuple[dict, dict, str, str]:
    """The KCC variants on the even half: (variant -> (n, rho vs C10 valid), variant -> (the chosen
    KCC's rho on its architectures, interval of variant - chosen), the chosen KCC (best among those
    scored on both halves), the best variant)."""
    kcc_variants = [k for k in columns if is_kcc_variant(k)]
    tuned = {k: (int(even.sum()), rho(columns[k][even], tune_target[even])) for k in kcc_variants}
    chosen = max((k for k in tuned if not is_control(k)), key=lambda k: tuned[k][1])
    against_chosen = {k: (tuned[chosen][1], *paired_bootstrap(columns[k][even], columns[chosen][even], tune_target[even]))
                      for k in kcc_variants if k != chosen}
    for directory in args.variants:  # each variant directory on the even architectures it shares with the rest
        var_columns, var_indices, _ = load([*args.dirs, directory])
        var_even = var_indices % 2 == 0
        target = table.column("cifar10", "valid", 200)[var_indices][var_even]
        base = var_columns[chosen][var_even]
        for k, v in var_columns.items():
            if is_kcc_variant(k) and k not in columns:
                tuned[k] = (int(var_even.sum()), rho(v[var_even], target))
                against_chosen[k] = (rho(base, target), *paired_bootstrap(v[var_even], base, target))
    best_variant = max((k for k in tuned if not is_control(k)), key=lambda k: tuned[k][1])
    return tuned, against_chosen, chosen, best_variant


def kcc_lines(tuned: dict, against_chosen: dict, chosen: str, best_variant: str, columns: dict[str, np.ndarray],
              accuracy: dict, odd: np.ndarray) -> list[str]:
    """The KCC section: the variants tuned on the even half, the chosen one and the baselines on the odd half."""
    lines = [
        "## KCC: choices tuned on the even half (Spearman vs CIFAR-10 validation accuracy)", "",
        "Variants that need their own NTK (BN mode, per-class NTK, batch size) were scored on a subset of the "
        f"even architectures; `{chosen}` is given on the same subset, and the 95% interval of the variant's rho "
        "minus its rho from a paired bootstrap of those architectures (2,000 resamples).", "",
        f"| variant | n (even) | rho (C10 valid) | {chosen}, same archs | variant - {chosen}, 95% |", "|---|---|---|---|---|",
        *(f"| {md(k)} | {n} | {r:.3f} | " + ("{:.3f} | [{:+.3f}, {:+.3f}] |".format(*against_chosen[k])
                                           if k in against_chosen else "| |")
          for k, (n, r) in sorted(tuned.items(), key=lambda kv: -kv[1][1])), "",
        f"Best variant: `{best_variant}`; best among those scored on the odd half too: `{chosen}`.", "",
        "On the held-out odd half:", "",
        "| metric | C10 test | C10 valid | C100 test | IN16 test |", "|---|---|---|---|---|",
    ]
    for label in [chosen, *(b for b in BASELINES if b in columns)]:
        r = [rho(columns[label][odd], accuracy[t][odd]) for t in
             [("cifar10", "test"), ("cifar10", "valid"), ("cifar100", "test"), ("ImageNet16-120", "test")]]
        lines.append(f"| {md(label)} | " + " | ".join(f"{x:.3f}" for x in r) + " |")
    kcc_odd = rho(columns[chosen][odd], accuracy[("cifar10", "test")][odd])
    return lines + ["", "KCC against the baselines on the odd half (C10 test, Spearman): " + "; ".join(
        f"{b} {rho(columns[b][odd], accuracy[('cifar10', 'test')][odd]):.3f} "
        f"(KCC {kcc_odd - rho(columns[b][odd], accuracy[('cifar10', 'test')][odd]):+.3f})"
        for b in BASELINES if b in columns) + "."]


def ensemble_lines(size: int, singles: list[str], columns: dict[str, np.ndarray], accuracy: dict, even: np.ndarray,
                   odd: np.ndarray, tune_target: np.ndarray) -> list[str]:
    """The best rank ensemble of ``size`` of ``singles`` on the even half, reported on the odd half."""
    ensembles = {}
    for combo in itertools.combinations(singles, size):
        ensembles[combo] = rho(rank_combination([columns[k][even] for k in combo]), tune_target[even])
    best_combo = max(ensembles, key=ensembles.get)
    ens_odd = rank_combination([columns[k][odd] for k in best_combo])
    return [
        "", f"## Rank ensemble of {size} (chosen on the even half, reported on the odd half)", "",
        f"Best combination on the even half: {' + '.join(best_combo)} (rho {ensembles[best_combo]:.3f} vs "
        "C10 valid). Sum of ranks, equal weights.", "",
        "| target | rho on odd |", "|---|---|",
        *(f"| {d} {s} | {rho(ens_odd, accuracy[(d, s)][odd]):.3f} |" for d, s in TARGETS), "",
    ]


def main() -> None:
    args = parse_args()
    table = NB201Table.load()
    columns, indices, seconds = load(args.dirs)
    accuracy = {t: table.column(t[0], t[1], 200)[indices] for t in TARGETS}
    even, odd = indices % 2 == 0, indices % 2 == 1
    tune_target = accuracy[("cifar10", "valid")]
    tuned, against_chosen, chosen, best_variant = tune_kcc(args, table, columns, even, tune_target)
    singles = [k for k in columns if not is_kcc_variant(k) or k == chosen]
    lines = [
        "# Training-free metrics on NAS-Bench-201 (CIFAR-10 scoring batch)", "",
        f"Architectures: n = {len(indices)} (uniform sample, seed 0), {even.sum()} with an even NB201 index "
        f"(tuning half) and {odd.sum()} odd (held out). Cells: Spearman rho / Kendall tau against the "
        "200-epoch accuracy from the NAS-Bench-201 table; s/arch: mean seconds per architecture on this "
        "machine's 2 CPU cores (NTK metrics include the shared NTK's time).", "",
        "## All metrics, all architectures", "", *table_lines(columns, accuracy, seconds), "",
        "## Our values, the peer's, the published figures (Spearman vs CIFAR-10 test accuracy)", "",
        "The peer is NAS-Bench-Suite-Zero (../shared/data/reference); all columns use this repository's table.", "",
        *peer_lines(columns, indices, table), "",
        *kcc_lines(tuned, against_chosen, chosen, best_variant, columns, accuracy, odd),
        *ensemble_lines(args.ensemble_size, singles, columns, accuracy, even, odd, tune_target),
    ]
    lines += kcc_study_lines(args.dirs, columns, indices, seconds, chosen, singles, accuracy)
    if args.noise:
        lines += noise_lines(args.noise, table)
    if args.darts:
        lines += darts_lines(args.darts)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))

if __name__ == "__main__":
    main()
