"""KCC at the sample size its questions need, averaged over draws (issue 28): the study.

Three steps, each resumable, writing ``OUT`` (default ``results/correlation/kcc-scale``):

    python benchmarks/kcc_scale.py run OUT [--n 400] [--draws 2] [--m-max 512] [--centred-m 256]
                                          [--cells-from 0 --cells-to 400] [--threads 1]
    python benchmarks/kcc_scale.py time OUT [--cells 10] [--threads 2]
    python benchmarks/kcc_scale.py analyse OUT

``run`` scores a FRESH uniform NB201 sample (``--n`` cells drawn with seed 28, not the seed-0 sample of
the earlier studies; even sample positions are the tuning half, odd positions the report half) or,
with ``--space darts``, the 1,000 trained DARTS cells (``../shared/data/darts/darts_1000_cifar10_valid.csv``,
index = row number, built as in ``benchmarks/kcc_study.py``: the proxy network C = 8, 5 cells, never
tuned on). For each (cell, draw d in 0..draws-1): the network initialised with seed d, and a
class-stratified batch of ``--m-max`` CIFAR-10 training images drawn with data seed d, ordered so that
every prefix is class-balanced (:func:`balanced_order`). Theta is computed ONCE per kernel: the summed-
logit NTK (``output=sum``) at m-max and the centred-logit NTK (``output=centred``) at ``--centred-m``
(0: not computed); every m in {64, 128, 256, 512, 1024} up to that size is scored on the leading
m x m block (nested prefixes, :func:`figures`). Departure from scoring each m from scratch: BN
normalises with the batch statistics of the kernel's whole batch (m-max or centred-m images), not of
the m-prefix; the prefix's own statistics would be a noisier estimate of the same population values.

Each m gets every :data:`VARIANTS` figure, a registry metric's own ``from_ntk`` on the block (so a
figure is exactly what that metric would report): in-sample KCC (seed 000 eq. 9) at eps 1e-5, 1e-4
(the default) and 1e-3; cross-fitted KCC (eq. 9 fitted on 3 of 4 stratified folds, the witness
judged on the fourth; section 4 item 2); its posterior form (eq. 5 and 7); NTK kernel-regression
accuracy on held-out folds (seed 001 section 5.3.1); the spectral entropy of the centred kernel
(eigenvalues alone, no labels: the control). One CSV row per (cell, draw, kernel, m, variant) goes
to ``OUT/rows/cells<from>-<to>.csv`` (columns :data:`FIELDS`; ``seconds`` is the figure's own work,
``theta_seconds`` its kernel's Theta at ``theta_m``), written and flushed per (cell, draw); a rerun
skips the (cell, draw) pairs any ``OUT/rows/*.csv`` holds completely, and drops a torn last line or a
partly written pair first. Run simultaneous processes on disjoint ``--cells-from/--cells-to`` ranges
(one thread each); a later run with a larger ``--draws`` adds draws without redoing the first ones.
``OUT/study.yaml`` pins the settings; a rerun with others is refused.

``time`` measures each Theta at each m on its own (the first ``--cells`` cells, draw 0, ``--threads``
threads) into ``OUT/timing.csv``: what a score at that m costs from scratch, which the nested-prefix
run cannot tell. ``analyse`` writes ``OUT/study.md`` (see :func:`analyse`).
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm import tqdm

from searchkit.correlate import read_scores, sample_indices
from searchkit.data import get_dataset
from searchkit.data.base import Batch
from searchkit.metrics import parse_metric
from searchkit.metrics.ntk import empirical_ntk
from searchkit.rundir import complete_lines, write_atomic
from searchkit.runtime import build_network
from searchkit.spaces import get_space
from searchkit.spaces.nb201 import NUM_ARCHS

ROOT = Path(__file__).resolve().parent.parent
#: The sample's seed: a fresh sample, not the seed-0 one the earlier studies tuned on.
SAMPLE_SEED = 28
#: Batch sizes scored (each up to its kernel's size).
SIZES = (64, 128, 256, 512, 1024)
#: The figures of every (kernel, m): registry metric specs scored by their ``from_ntk``.
VARIANTS = ("kcc:eps=0.00001", "kcc:eps=0.0001", "kcc:eps=0.001", "kcc_crossfit:eps=0.0001",
            "kcc_crossfit:eps=0.0001:posterior=true", "ntk_ridge:eps=0.0001", "ntk_spectral_entropy")
FIELDS = ("index", "draw", "kernel", "m", "variant", "value", "seconds", "theta_seconds", "theta_m")
DARTS_CSV = "../shared/data/darts/darts_1000_cifar10_valid.csv"
SPACES = {"nb201": {"C": 16, "N": 5}, "darts": {"C": 8, "layers": 5}}


def fail(message: str) -> None:
    """One line on stderr, exit code 2 (bad input; nothing computed is lost)."""
    print(f"kcc_scale: {message}", file=sys.stderr)
    raise SystemExit(2)


def balanced_order(labels: np.ndarray, size: int, seed: int, num_classes: int) -> np.ndarray:
    """``size`` distinct indices into ``labels`` (an (N,) int array), chosen with ``np.random.default_rng(seed)``
    and ordered in rounds of one image per class (the classes in a fresh random order each round), so
    every prefix holds each class floor(m / c) or ceil(m / c) times."""
    rng = np.random.default_rng(seed)
    rounds = -(-size // num_classes)
    picks = np.stack([rng.choice(np.flatnonzero(labels == k), rounds, replace=False) for k in range(num_classes)])
    orders = np.stack([rng.permutation(num_classes) for _ in range(rounds)])  # (rounds, c)
    return picks[orders, np.arange(rounds)[:, None]].reshape(-1)[:size]


def study_batch(splits, size: int, seed: int) -> Batch:
    """The draw's class-balanced batch of ``size`` training images (:func:`balanced_order`)."""
    x, y = splits.train.batch(balanced_order(splits.train.labels, size, seed, splits.num_classes))
    return Batch(x, y, splits.num_classes)


def sizes_up_to(m: int) -> list[int]:
    return [s for s in SIZES if s <= m]


def figures(theta: torch.Tensor, y: torch.Tensor, num_classes: int, sizes: list[int],
            variants: list[str]) -> list[tuple[int, str, float, float]]:
    """(m, variant, value, seconds) for every m in ``sizes`` and variant, each scored on the leading
    m x m block of ``theta`` with the first m labels of ``y``: exactly the metric ``variant`` on that
    Theta (its ``from_ntk``, non-finite values turned into its worst by ``guard``)."""
    rows = []
    metrics = {spec: parse_metric(spec) for spec in variants}
    for m in sizes:
        block, batch = theta[:m, :m], Batch(torch.empty(m, 0), y[:m], num_classes)
        for spec, metric in metrics.items():
            start = time.perf_counter()
            value = metric.guard(metric.from_ntk(block, batch))
            rows.append((m, spec, value, time.perf_counter() - start))
    return rows


@dataclass
class Study:
    """``OUT/study.yaml``: what every run of this directory must agree on."""

    out: Path
    space: str
    n: int
    m_max: int
    centred_m: int
    variants: list[str]

    @classmethod
    def open(cls, out: Path, space: str, n: int, m_max: int, centred_m: int) -> "Study":
        """The directory's study, written on the first run; a rerun with other settings is refused."""
        for name, m in (("--m-max", m_max), ("--centred-m", centred_m)):
            if m not in (0, *SIZES) or (name == "--m-max" and m == 0):
                fail(f"{name} must be one of {', '.join(map(str, SIZES))}{' or 0' if name == '--centred-m' else ''}, got {m}")
        mine = {"space": space, "n": n, "m_max": m_max, "centred_m": centred_m, "variants": list(VARIANTS),
                "build": SPACES[space], "dataset": "cifar10", "sample_seed": SAMPLE_SEED}
        path = out / "study.yaml"
        if path.is_file():
            theirs = yaml.safe_load(path.read_text())
            differ = [k for k in mine if theirs.get(k) != mine[k]]
            if differ:
                fail(f"{out} was run with other settings ({', '.join(f'{k}={theirs.get(k)}' for k in differ)}); "
                     "pass the same flags or another OUT")
        else:  # processes started together may both write it: each through its own temporary file
            out.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"study.yaml.{os.getpid()}.tmp")
            tmp.write_text(yaml.safe_dump(mine, sort_keys=False))
            tmp.replace(path)
        return cls(out, space, n, m_max, centred_m, list(VARIANTS))

    @classmethod
    def load(cls, out: Path) -> "Study":
        path = out / "study.yaml"
        if not path.is_file():
            fail(f"{out} has no study.yaml; run `kcc_scale.py run {out}` first")
        s = yaml.safe_load(path.read_text())
        return cls(out, s["space"], s["n"], s["m_max"], s["centred_m"], s["variants"])

    @property
    def kernels(self) -> dict[str, int]:
        """kernel (NTK output mode) -> the batch size its Theta is computed at."""
        return {"sum": self.m_max, **({"centred": self.centred_m} if self.centred_m else {})}

    def rows_per_pair(self) -> int:
        return len(self.variants) * sum(len(sizes_up_to(m)) for m in self.kernels.values())

    def cells(self) -> dict[int, str]:
        """index -> architecture text, in sample order (NB201: position p is even = tuning, odd = report)."""
        if self.space == "nb201":
            from searchkit.tabular import NB201Table

            table = NB201Table.load()
            return {i: table.arch_str(i) for i in sample_indices(self.n, SAMPLE_SEED, NUM_ARCHS)}
        from kcc_study import darts_rows  # benchmarks/ is sys.path[0]

        return {i: text for i, (text, _) in enumerate(darts_rows((ROOT / DARTS_CSV).resolve()))}

    def network(self, splits, text: str, seed: int) -> torch.nn.Module:
        if self.space == "nb201":
            space = get_space("nb201")
            return build_network(space, space.decode(text), splits, seed, SPACES["nb201"])
        from kcc_study import loose_genotype
        from searchkit.spaces.darts import DartsNetwork

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return DartsNetwork(loose_genotype(text), splits.num_classes, in_channels=splits.input_shape[0],
                                **SPACES["darts"])


def score_pair(study: Study, net: torch.nn.Module, batch: Batch) -> list[dict]:
    """Every row of one (cell, draw) but its index and draw: each kernel's Theta once, then
    :func:`figures` on its nested prefixes."""
    rows = []
    for kernel, m in study.kernels.items():
        start = time.perf_counter()
        theta = empirical_ntk(net, batch.x[:m], output=kernel)
        seconds = time.perf_counter() - start
        for size, variant, value, own in figures(theta, batch.y[:m], batch.num_classes, sizes_up_to(m), study.variants):
            rows.append({"kernel": kernel, "m": size, "variant": variant, "value": repr(value), "seconds": f"{own:.5f}",
                         "theta_seconds": f"{seconds:.4f}", "theta_m": m})
    return rows


def read_rows(out: Path) -> list[dict]:
    """Every complete row of ``OUT/rows/*.csv`` (torn last lines skipped)."""
    rows = []
    for path in sorted((out / "rows").glob("*.csv")):
        rows += list(csv.DictReader(complete_lines(path)))
    return rows


def done_pairs(rows: list[dict], per_pair: int) -> set[tuple[int, int]]:
    """(index, draw) pairs with all ``per_pair`` distinct rows."""
    keys: dict[tuple[int, int], set] = {}
    for r in rows:
        keys.setdefault((int(r["index"]), int(r["draw"])), set()).add((r["kernel"], r["m"], r["variant"]))
    return {pair for pair, held in keys.items() if len(held) == per_pair}


def open_rows(path: Path, per_pair: int):
    """``path`` rewritten with only its complete (cell, draw) pairs (a torn tail or a partly written
    pair dropped), opened for appending, with a header."""
    kept = []
    if path.is_file():
        rows = list(csv.DictReader(complete_lines(path)))
        done = done_pairs(rows, per_pair)
        kept = [r for r in rows if (int(r["index"]), int(r["draw"])) in done]
    lines = [",".join(FIELDS)] + [",".join(str(r[f]) for f in FIELDS) for r in kept]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, "\n".join(lines) + "\n")
    return path.open("a", newline="")


def run(study: Study, draws: int, first: int, last: int | None,
        progress: bool = True) -> list[tuple[int, int, float, float]]:
    """Score every (cell, draw) of sample positions [first, last) not done yet, draw-major (every cell's
    draw 0 before any draw 1). Returns (index, draw, wall seconds, CPU seconds) of the pairs computed
    (CPU seconds: this process's, which on a shared machine say what a pair costs on an idle core)."""
    cells = list(study.cells().items())
    last = len(cells) if last is None else min(last, len(cells))
    if not 0 <= first < last:
        fail(f"--cells-from {first} --cells-to {last}: no cells (the sample has {len(cells)})")
    per_pair = study.rows_per_pair()
    done = done_pairs(read_rows(study.out), per_pair)
    todo = [(d, index, text) for d in range(draws) for index, text in cells[first:last] if (index, d) not in done]
    splits = get_dataset("cifar10")
    computed = []
    batches: dict[int, Batch] = {}
    with open_rows(study.out / "rows" / f"cells{first}-{last}.csv", per_pair) as handle:
        writer = csv.DictWriter(handle, FIELDS, lineterminator="\n")  # the same line ends as open_rows writes
        for d, index, text in tqdm(todo, desc="kcc-scale", unit="pair", disable=not progress):
            if d not in batches:
                batches = {d: study_batch(splits, study.m_max, d)}
            start, cpu = time.perf_counter(), time.process_time()
            rows = score_pair(study, study.network(splits, text, d), batches[d])
            writer.writerows({"index": index, "draw": d, **row} for row in rows)
            handle.flush()
            computed.append((index, d, time.perf_counter() - start, time.process_time() - cpu))
    return computed


def timing(study: Study, cells: int, threads: int) -> None:
    """Seconds of each kernel's Theta computed from scratch at each m (first ``cells`` cells, draw 0),
    appended to ``OUT/timing.csv`` (index, kernel, m, seconds, threads)."""
    torch.set_num_threads(threads)
    splits = get_dataset("cifar10")
    batch = study_batch(splits, study.m_max, 0)
    path = study.out / "timing.csv"
    new = not path.is_file()
    with path.open("a", newline="") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(["index", "kernel", "m", "seconds", "threads"])
        for index, text in tqdm(list(study.cells().items())[:cells], desc="time", unit="cell"):
            net = study.network(splits, text, 0)
            for kernel, size in study.kernels.items():
                for m in sizes_up_to(size):
                    start = time.perf_counter()
                    empirical_ntk(net, batch.x[:m], output=kernel)
                    writer.writerow([index, kernel, m, f"{time.perf_counter() - start:.4f}", threads])
                    handle.flush()


# --- analysis ------------------------------------------------------------------------------------


def draw_means(rows: list[dict]) -> dict[tuple[str, int, str], dict[int, dict[int, float]]]:
    """(kernel, m, variant) -> index -> draw -> value (the last row of a repeated key wins)."""
    table: dict = {}
    for r in rows:
        table.setdefault((r["kernel"], int(r["m"]), r["variant"]), {}).setdefault(int(r["index"]), {})[int(r["draw"])] = \
            float(r["value"])
    return table


def mean_of_draws(values: dict[int, dict[int, float]], draws: range) -> dict[int, float]:
    """index -> mean over ``draws`` for the cells that have all of them. The mean, not the median:
    with k <= 8 draws the median of a continuous score wastes half of them at even k, and the
    draws' scores are on one scale (same metric, same batch size), so their mean estimates the
    score's expectation over initialisations and batches, the quantity the ranking should use."""
    return {i: float(np.mean([held[d] for d in draws])) for i, held in values.items() if all(d in held for d in draws)}


def head(score: np.ndarray, accuracy: np.ndarray, share: float = 0.05) -> tuple[float, float]:
    """(precision, mean accuracy) of the top ``share`` of cells by ``score``: the fraction of them that
    are in the top ``share`` by ``accuracy`` (the same cells), and their mean accuracy. What a search
    uses is the head of a ranking; with a few hundred cells the top 5 % is the sample's version of
    the issue's top 10 of 3,000."""
    k = max(1, int(round(share * len(score))))
    top = np.argsort(-score, kind="stable")[:k]
    best = set(np.argsort(-accuracy, kind="stable")[:k])
    return sum(int(i) in best for i in top) / k, float(accuracy[top].mean())


def analyse(study: Study) -> None:
    """``OUT/study.md``: see :func:`nb201_lines` and :func:`darts_lines`."""
    rows = read_rows(study.out)
    if not rows:
        fail(f"{study.out} holds no rows yet; run the `run` step first")
    timing_path = study.out / "timing.csv"
    theta_cost: dict[tuple[str, int], float] = {}
    if timing_path.is_file():
        by: dict = {}
        for r in csv.DictReader(complete_lines(timing_path)):
            by.setdefault((r["kernel"], int(r["m"])), []).append(float(r["seconds"]))
        theta_cost = {key: float(np.median(v)) for key, v in by.items()}
    own_cost: dict = {}
    for r in rows:
        own_cost.setdefault((r["kernel"], int(r["m"]), r["variant"]), []).append(float(r["seconds"]))
    cost = {key: (theta_cost.get(key[:2]), float(np.median(v))) for key, v in own_cost.items()}
    lines = (nb201_lines if study.space == "nb201" else darts_lines)(study, draw_means(rows), cost)
    write_atomic(study.out / "study.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


def cost_cell(cost: tuple[float | None, float], k: int) -> str:
    """Seconds per cell of a k-draw score: k x (Theta at m from scratch + the figure's own work)."""
    theta, own = cost
    return "n/a" if theta is None else f"{k * (theta + own):.2f}"


def settings_with_draws(table: dict, max_draws: int) -> list[tuple[tuple[str, int, str], int]]:
    ks = [k for k in (1, 2, 4, 8) if k <= max_draws]
    return [(key, k) for key in sorted(table) for k in ks]


def self_agreement(values: dict[int, dict[int, float]], k: int) -> float:
    """Spearman between the means of draws 0..k-1 and of draws k..2k-1 over the cells with both (NaN
    without 2k draws)."""
    from scipy import stats

    a, b = mean_of_draws(values, range(k)), mean_of_draws(values, range(k, 2 * k))
    common = sorted(set(a) & set(b))
    if len(common) < 10:
        return float("nan")
    return float(stats.spearmanr([a[i] for i in common], [b[i] for i in common])[0])


def ensemble_lines(chosen: dict[int, float], baselines: dict, truth: dict, even: list[int], odd: list[int]) -> list[str]:
    """The chosen KCC setting as a member of a rank ensemble (mean of ranks) with #params, naswot and
    synflow, beside the same ensembles with results/nb201-all's KCC (m = 64): tune rho on the even cells,
    report rho (C10 test) on the odd ones, with the paired-bootstrap 95 % interval against the ensemble
    of the same members without KCC."""
    from correlation_study import paired_bootstrap
    from scipy import stats

    def ranks(cells: list[int], members: tuple[str, ...], kcc: str | None) -> np.ndarray:
        columns = [[baselines[i][name] for i in cells] for name in members]
        if kcc == "chosen":
            columns.append([chosen[i] for i in cells])
        elif kcc == "m64":
            columns.append([baselines[i]["kcc"] for i in cells])
        return np.mean([stats.rankdata(c) for c in columns], axis=0)

    even = [i for i in even if i in chosen]
    odd = [i for i in odd if i in chosen]
    lines = []
    for members in (("params",), ("naswot",), ("synflow",), ("params", "naswot"), ("synflow", "naswot", "params")):
        without = ranks(odd, members, None)
        for kcc in ("chosen", "m64"):
            tune = float(stats.spearmanr(ranks(even, members, kcc), truth["tune"][even])[0])
            with_kcc = ranks(odd, members, kcc)
            rho = float(stats.spearmanr(with_kcc, truth["c10"][odd])[0])
            gain = rho - float(stats.spearmanr(without, truth["c10"][odd])[0])
            low, high = paired_bootstrap(with_kcc, without, truth["c10"][odd])
            label = "the chosen KCC" if kcc == "chosen" else "KCC at m = 64 (results/nb201-all)"
            lines.append(f"| {' + '.join(members)} + {label} | {len(even)}/{len(odd)} | {tune:.3f} | {rho:.3f} | "
                         f"{gain:+.3f} [{low:+.3f}, {high:+.3f}] |")
    return ["## KCC as a member of a rank ensemble", "",
            "Mean rank of the members; tune rho on the even half (C10 valid), report rho on the odd half (C10 "
            "test); gain: report rho minus that of the same members without KCC, with the paired-bootstrap 95 % "
            "interval (2,000 resamples).", "",
            "| ensemble | n tune/report | tune rho | report rho | gain over the members alone |", "|---|---|---|---|---|",
            *lines]


def nb201_lines(study: Study, table: dict, cost: dict) -> list[str]:
    """Every (kernel, m, variant) x k: Spearman with CIFAR-10 validation accuracy on the even (tuning)
    half, then on the odd (report) half Spearman with CIFAR-10 / CIFAR-100 / ImageNet16-120 test
    accuracy, the paired-bootstrap 95 % interval of its CIFAR-10 rho minus that of #params, naswot,
    synflow and KCC as scored today (their draw-0 values from results/nb201-all, on the same cells), the head (:func:`head`),
    self-agreement across draws and cost per cell. The setting chosen on the even half is then reported."""
    from correlation_study import paired_bootstrap  # benchmarks/ is sys.path[0]
    from scipy import stats
    from searchkit.tabular import NB201Table

    nb201 = NB201Table.load()
    truth = {"tune": nb201.column("cifar10", "valid"), "c10": nb201.column("cifar10", "test"),
             "c100": nb201.column("cifar100", "test"), "in16": nb201.column("ImageNet16-120", "test")}
    sample = sample_indices(study.n, SAMPLE_SEED, NUM_ARCHS)
    even, odd = set(sample[0::2]), set(sample[1::2])
    baselines = read_scores(ROOT / "results" / "nb201-all" / "scores.csv")
    base_names = ("params", "naswot", "synflow", "kcc")
    max_draws = max(max(held) for values in table.values() for held in values.values()) + 1
    body, tuned = [], []
    for key, k in settings_with_draws(table, max_draws):
        score = mean_of_draws(table[key], range(k))
        tune = sorted(i for i in score if i in even)
        report = sorted(i for i in score if i in odd)
        if len(tune) < 10 or len(report) < 10:
            continue
        rho_tune = float(stats.spearmanr([score[i] for i in tune], truth["tune"][tune])[0])
        s = np.array([score[i] for i in report])
        rhos = [float(stats.spearmanr(s, truth[t][report])[0]) for t in ("c10", "c100", "in16")]
        if k > 1:  # k against one draw on the same cells: the fair comparison while few cells have k draws
            one = mean_of_draws(table[key], range(1))
            rho_one = float(stats.spearmanr([one[i] for i in report], truth["c10"][report])[0])
        diffs = []
        for name in base_names:
            base = np.array([baselines[i][name] for i in report])
            low, high = paired_bootstrap(s, base, truth["c10"][report])
            diffs.append(f"{rhos[0] - float(stats.spearmanr(base, truth['c10'][report])[0]):+.3f} [{low:+.3f}, {high:+.3f}]")
        precision, mean_acc = head(s, truth["c10"][report])
        kernel, m, variant = key
        tuned.append((rho_tune, key, k, len(tune)))
        body.append(f"| {kernel} | {m} | `{variant}`{{chosen}} | {k} | {len(tune)}/{len(report)} | {rho_tune:.3f} | "
                    + " / ".join(f"{r:.3f}" for r in rhos) + (f" (k = 1: {rho_one:.3f})" if k > 1 else "")
                    + f" | {' | '.join(diffs)} | {precision:.2f} / {mean_acc:.2f} | "
                    f"{self_agreement(table[key], k):.3f} | {cost_cell(cost[key], k)} |")
    report_all = sorted(odd & set(baselines))
    base_lines = []
    for name in base_names:
        values = np.array([baselines[i][name] for i in report_all])
        precision, mean_acc = head(values, truth["c10"][report_all])
        rhos = [float(stats.spearmanr(values, truth[t][report_all])[0]) for t in ("c10", "c100", "in16")]
        base_lines.append(f"| {name} (draw 0, m = 64) | {len(report_all)} | " + " / ".join(f"{r:.3f}" for r in rhos)
                          + f" | {precision:.2f} / {mean_acc:.2f} |")
    lines = [
        "# KCC at scale (issue 28): NB201", "",
        f"Sample: {study.n} NB201 cells drawn uniformly with seed {SAMPLE_SEED} (`kcc_scale.py`); even sample "
        "positions = tuning half (Spearman with CIFAR-10 *validation* accuracy), odd positions = report half (200-"
        "epoch *test* accuracy). Networks C = 16, N = 5; draw d = init seed d and a class-balanced CIFAR-10 batch "
        f"drawn with data seed d. Kernels: summed logits (`sum`) computed at m = {study.m_max}, centred logits "
        f"(`centred`) at m = {study.centred_m or 'n/a'}; smaller m read the leading block (nested prefixes). k: "
        "the score is the mean of draws 0..k-1 (cells with all k).", "",
        "Columns: tune rho (even half, C10 valid); report rho C10 / C100 / IN16 test (odd half); rho minus "
        "#params', naswot's, synflow's and today's KCC's rho (C10 test, their draw-0 m = 64 values from "
        "results/nb201-all on the same cells: KCC today is the default recipe's score, eps 1e-4 on the recipe's "
        "scoring batch of 64 images, data seed 0, not class-balanced) with the paired-bootstrap 95 % interval "
        "(2,000 resamples); head: of the top 5 % of the odd half by the score, the share in the top 5 % by C10 test accuracy / their mean C10 test accuracy; self-agreement: "
        "Spearman between the means of draws 0..k-1 and k..2k-1 (all cells with 2k draws; nan without them); s/cell: "
        "k x (the Theta at m from scratch, median of `timing.csv`, + the figure's own work), n/a before `time` ran.", "",
    ]
    if tuned:  # only settings scored on the whole tuning half compete (a k still being drawn is not one)
        whole = max(t[3] for t in tuned)
        best = int(np.argmax([np.nan_to_num(t[0], nan=-9) if t[3] == whole else -9 for t in tuned]))
        rho_tune, (kernel, m, variant), k, _ = tuned[best]
        lines += [f"**Chosen on the even half** (among the settings scored on all {whole} tuning cells): kernel "
                  f"`{kernel}`, m = {m}, `{variant}`, k = {k} (tune rho {rho_tune:.3f}); its report-half row is marked "
                  "(chosen) below. A row with k > 1 on fewer cells also gives, in brackets, the C10 rho of one draw "
                  "on the same cells.", ""]
        body = [line.replace("{chosen}", " (chosen)" if n == best else "") for n, line in enumerate(body)]
        ensembles = ensemble_lines(mean_of_draws(table[(kernel, m, variant)], range(k)), baselines, truth,
                                   sample[0::2], sample[1::2])
    lines += ["## Baselines on the report half", "",
              "| score | n | rho C10 / C100 / IN16 | head precision / mean acc |", "|---|---|---|---|", *base_lines, "",
              "## Every setting", "",
              "| kernel | m | variant | k | n tune/report | tune rho | report rho C10 / C100 / IN16 | vs #params | "
              "vs naswot | vs synflow | vs KCC today | head | self-agreement | s/cell |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|", *body]
    if tuned:
        lines += ["", *ensembles]
    return lines


def darts_lines(study: Study, table: dict, cost: dict) -> list[str]:
    """Spearman of every (kernel, m, variant) x k with the DARTS CSV's CIFAR-10 accuracy on all scored
    cells and on those above the median accuracy of all 1,000, beside #params, naswot, synflow and KCC
    as scored today (results/correlation/kcc-study/darts, init seed 0, batch 64) on the same cells."""
    from scipy import stats
    from kcc_study import darts_rows

    accuracy = np.array([acc for _, acc in darts_rows((ROOT / DARTS_CSV).resolve())])
    upper = accuracy > np.median(accuracy)
    baselines = read_scores(ROOT / "results" / "correlation" / "kcc-study" / "darts" / "scores.csv")
    max_draws = max(max(held) for values in table.values() for held in values.values()) + 1
    body = []
    for key, k in settings_with_draws(table, max_draws):
        score = mean_of_draws(table[key], range(k))
        cells = np.array(sorted(score))
        if len(cells) < 10:
            continue
        s = np.array([score[i] for i in cells])
        top = upper[cells]
        figures_ = [float(stats.spearmanr(s, accuracy[cells])[0]), float(stats.spearmanr(s[top], accuracy[cells][top])[0])]
        base = []
        for name in ("params", "naswot", "synflow", "kcc"):
            held = [i for i in cells if i in baselines]
            values = np.array([baselines[i][name] for i in held])
            hi = upper[held]
            base.append(f"{stats.spearmanr(values, accuracy[held])[0]:.3f} / {stats.spearmanr(values[hi], accuracy[held][hi])[0]:.3f}")
        kernel, m, variant = key
        body.append(f"| {kernel} | {m} | `{variant}` | {k} | {len(cells)} ({int(top.sum())}) | {figures_[0]:.3f} / "
                    f"{figures_[1]:.3f} | {' | '.join(base)} | {cost_cell(cost[key], k)} |")
    return ["# KCC at scale (issue 28): the 1,000 trained DARTS cells (never tuned on)", "",
            f"`{DARTS_CSV}` (index = row), proxy network C = 8, 5 cells; draw d = init seed d and a class-balanced "
            f"CIFAR-10 batch (data seed d); kernels sum at m = {study.m_max}, centred at m = {study.centred_m or 'n/a'}. "
            "rho: Spearman with the CSV's accuracy, on all scored cells / on those above the median accuracy of "
            "the 1,000 (n in brackets). Baselines: draw 0, batch 64, on the same cells.", "",
            "| kernel | m | variant | k | n (above median) | rho all / upper half | #params | naswot | synflow | "
            "KCC today | s/cell |",
            "|---|---|---|---|---|---|---|---|---|---|---|", *body]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("run", "time", "analyse"))
    parser.add_argument("out", type=Path, nargs="?", default=ROOT / "results" / "correlation" / "kcc-scale")
    parser.add_argument("--space", choices=tuple(SPACES), default="nb201")
    parser.add_argument("--n", type=int, default=400, help="NB201 sample size (default 400)")
    parser.add_argument("--draws", type=int, default=2, help="run: draws 0..K-1 (default 2)")
    parser.add_argument("--m-max", type=int, default=512, help="batch of the summed-logit Theta (default 512)")
    parser.add_argument("--centred-m", type=int, default=256, help="batch of the centred-logit Theta (0: none)")
    parser.add_argument("--cells-from", type=int, default=0, help="run: first sample position (default 0)")
    parser.add_argument("--cells-to", type=int, default=None, help="run: one past the last position (default: all)")
    parser.add_argument("--cells", type=int, default=10, help="time: cells to time (default 10)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1; time: 2 is the target's)")
    args = parser.parse_args(argv)
    if args.step == "analyse":
        analyse(Study.load(args.out))
        return 0
    if args.n < 20 or args.n > NUM_ARCHS or args.draws < 1:
        fail(f"--n must be in 20..{NUM_ARCHS} and --draws >= 1, got {args.n} and {args.draws}")
    if args.step == "time" and (args.out / "study.yaml").is_file():
        study = Study.load(args.out)  # time the study's own settings
    else:
        study = Study.open(args.out, args.space, args.n, args.m_max, args.centred_m)
    torch.set_num_threads(args.threads)
    if args.step == "time":
        timing(study, args.cells, args.threads)
        return 0
    for index, draw, wall, cpu in run(study, args.draws, args.cells_from, args.cells_to):
        print(f"cell {index} draw {draw}: {wall:.1f} s wall, {cpu:.1f} s CPU", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
