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
from searchkit.report import TARGETS, correlations, rank_combination
from searchkit.tabular import NB201Table

#: Published Spearman rho on NB201 CIFAR-10 (Abdelfattah et al. 2021 over all 15,625; NASWOT
#: from Mellor et al. 2021; the NTK-based figure as tabulated by ZiCo, Li et al. 2023).
PUBLISHED = {"grad_norm": 0.59, "snip": 0.60, "grasp": 0.51, "fisher": 0.36, "synflow": 0.74,
             "jacob_cov": 0.73, "naswot": 0.77, "ntk_cond": 0.44}
BASELINES = ("naswot", "synflow", "params")


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


def is_kcc_variant(label: str) -> bool:
    return label.split("@")[0] in ("kcc", "hsic", "kta") or label.startswith("kcc:")


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
        lines.append(f"| {label} | {cells} | {seconds.get(label, float('nan')):.3f} | {PUBLISHED.get(label, '')} |")
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
        lines.append(f"| {name} | {rho(columns[name], accuracy[indices]):.3f} ({len(indices)}) | "
                     f"{rho(values[have], accuracy[peer_index[have]]):.3f} ({have.sum()}) | "
                     f"{rho(values[mine], accuracy[peer_index[mine]]):.3f} ({mine.sum()}) | {PUBLISHED.get(name, '')} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", type=Path, nargs="+", help="searchkit correlate output directories")
    parser.add_argument("--variants", type=Path, nargs="*", default=[],
                        help="correlate outputs of KCC variants on even-index architectures")
    parser.add_argument("--out", type=Path, required=True, help="markdown report to write")
    parser.add_argument("--ensemble-size", type=int, default=3, help="metrics per rank ensemble (default 3)")
    args = parser.parse_args()

    table = NB201Table.load()
    columns, indices, seconds = load(args.dirs)
    accuracy = {t: table.column(t[0], t[1], 200)[indices] for t in TARGETS}
    even, odd = indices % 2 == 0, indices % 2 == 1
    tune_target = accuracy[("cifar10", "valid")]
    kcc_variants = [k for k in columns if is_kcc_variant(k)]
    tuned = {k: (int(even.sum()), rho(columns[k][even], tune_target[even])) for k in kcc_variants}
    chosen = max(tuned, key=lambda k: tuned[k][1])  # among those scored on both halves
    # variant -> (the chosen KCC's rho on the variant's architectures, interval of variant - chosen)
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
    best_variant = max(tuned, key=lambda k: tuned[k][1])

    singles = [k for k in columns if k not in kcc_variants or k == chosen]
    ensembles = {}
    for combo in itertools.combinations(singles, args.ensemble_size):
        ensembles[combo] = rho(rank_combination([columns[k][even] for k in combo]), tune_target[even])
    best_combo = max(ensembles, key=ensembles.get)

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
        "## KCC: choices tuned on the even half (Spearman vs CIFAR-10 validation accuracy)", "",
        "Variants that need their own NTK (BN mode, per-class NTK, batch size) were scored on a subset of the "
        f"even architectures; `{chosen}` is given on the same subset, and the 95% interval of the variant's rho "
        "minus its rho from a paired bootstrap of those architectures (2,000 resamples).", "",
        f"| variant | n (even) | rho (C10 valid) | {chosen}, same archs | variant - {chosen}, 95% |", "|---|---|---|---|---|",
        *(f"| {k} | {n} | {r:.3f} | " + ("{:.3f} | [{:+.3f}, {:+.3f}] |".format(*against_chosen[k])
                                           if k in against_chosen else "| |")
          for k, (n, r) in sorted(tuned.items(), key=lambda kv: -kv[1][1])), "",
        f"Best variant: `{best_variant}`; best among those scored on the odd half too: `{chosen}`.", "",
        "On the held-out odd half:", "",
        "| metric | C10 test | C10 valid | C100 test | IN16 test |", "|---|---|---|---|---|",
    ]
    for label in [chosen, *(b for b in BASELINES if b in columns)]:
        r = [rho(columns[label][odd], accuracy[t][odd]) for t in
             [("cifar10", "test"), ("cifar10", "valid"), ("cifar100", "test"), ("ImageNet16-120", "test")]]
        lines.append(f"| {label} | " + " | ".join(f"{x:.3f}" for x in r) + " |")
    kcc_odd = rho(columns[chosen][odd], accuracy[("cifar10", "test")][odd])
    lines += ["", "KCC against the baselines on the odd half (C10 test, Spearman): " + "; ".join(
        f"{b} {rho(columns[b][odd], accuracy[('cifar10', 'test')][odd]):.3f} "
        f"(KCC {kcc_odd - rho(columns[b][odd], accuracy[('cifar10', 'test')][odd]):+.3f})"
        for b in BASELINES if b in columns) + "."]
    ens_odd = rank_combination([columns[k][odd] for k in best_combo])
    lines += [
        "", f"## Rank ensemble of {args.ensemble_size} (chosen on the even half, reported on the odd half)", "",
        f"Best combination on the even half: {' + '.join(best_combo)} (rho {ensembles[best_combo]:.3f} vs "
        "C10 valid). Sum of ranks, equal weights.", "",
        "| target | rho on odd |", "|---|---|",
        *(f"| {d} {s} | {rho(ens_odd, accuracy[(d, s)][odd]):.3f} |" for d, s in TARGETS),
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
