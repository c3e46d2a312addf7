"""KCC variants study (issue 15): compute each empirical NTK once, score every Theta-based variant
offline.

A *study directory* holds one draw (network init seed, scoring-batch seed) over a list of
architectures. Its ``study.yaml`` says what to compute:

    space: nb201                # or darts
    build: {C: 16, N: 5}        # network options of the space
    dataset: cifar10
    batch_size: 64
    init_seed: 0
    data_seed: 0
    archs: results/correlation/ntk/indices.txt   # NB201 indices, one a line; for darts the CSV
    grams: joint                # joint: the sum, label and cross Gram matrices (joint_ntk); sum: the sum NTK only
    extras: [naswot, synflow]   # registry metrics scored on the network itself (not from a Theta)
    metrics: [kcc, kcc|ce, ...] # NTK metric columns scored from the cached Gram matrices (see Column)
    groups: {title: [column, ...]}  # optional: which question each column answers (for the report)
    limit: 200                  # optional: only the first N architectures (in the order below)

Two steps, each resumable:

    python benchmarks/kcc_study.py thetas DIR [--shard K/N] [--cache PATH]
    python benchmarks/kcc_study.py score DIR [--cache PATH]
    python benchmarks/kcc_study.py time DIR [--n 20] [--threads 1]    # costs, into DIR/timing.md

``thetas`` builds each architecture's network (the init seed alone decides its weights, as in
``searchkit correlate``), computes every listed Theta: (m, m) float64 and extra metric, and saves
them to the cache (default ``/tmp/kcc-thetas``, outside git: 32 KB per Theta at m = 64) with their
seconds; ``--shard K/N`` takes every N-th architecture from the K-th (run N of them side by side,
one thread each). Even NB201 indices go first, so tuning can start before the held-out half is done.
``score`` writes ``DIR/scores.csv`` in the format of ``searchkit correlate`` (index, arch_str, one
column per metric, then its seconds; :func:`searchkit.scoring.scores_header`) and ``DIR/settings.yaml`` (read by
``benchmarks/correlation_study.py``) from whatever the cache holds. A metric's seconds are its
Theta's seconds plus its own. Missing Thetas are reported, not computed.

A metric column is ``SPEC``, an NTK metric with ``bn="batchstats"`` and ``output`` ``sum`` or ``label``
(e.g. ``kcc_crossfit:eps=0.1``, ``kcc:output=label``), scored from the cached NTK of its output
(:func:`joint_ntk` computes both: the summed logits and the true-class logit f_{y_i}(x_i), HNAS's
reduction), or ``SPEC|KERNEL``, an ``output=sum`` metric's :meth:`from_ntk` on another kernel: ``ce``
(the per-sample cross-entropy gradient kernel, :func:`~searchkit.metrics.kcc_variants.ce_kernel`) or
``permuted`` (the summed-logit NTK with the labels randomly permuted: a control of how much of a score
does not need the labels). Those two are study columns, not metric options.

DARTS (``space: darts``): ``archs`` is ``../shared/data/darts/darts_1000_cifar10_valid.csv`` (no header:
genotype text, CIFAR-10 validation accuracy), read by :class:`searchkit.tabular.darts.DartsTable`;
the index is the row number. 811 of its 1,000 cells have a node that reads the same earlier node
through both of its ops, which the DARTS codec decodes as written (sampling never produces one).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.func import functional_call, jacrev, vmap

from searchkit.correlate import read_indices
from searchkit.data import get_dataset, scoring_batch
from searchkit.data.base import Batch
from searchkit.metrics import parse_metric
from searchkit.metrics.ntk import NTKMetric, batch_statistics, robust_ntk, train_mode
from searchkit.rundir import write_atomic
from searchkit.runtime import build_network
from searchkit.scoring import scores_header
from searchkit.spaces import get_space
from searchkit.spaces.nb201 import NUM_ARCHS

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = Path(os.environ.get("KCC_THETA_CACHE", "/tmp/kcc-thetas"))
#: Label permutations averaged by a ``controls`` column.
PERMUTATIONS = 3


def joint_ntk(net: torch.nn.Module, batch: Batch,
              outputs: tuple[str, ...] = ("sum", "label")) -> dict[str, torch.Tensor]:
    """The Gram matrices of per-sample scalars, from one vmapped Jacobian (m, len(outputs), p):
    ``sum``: s_i = sum_k f_k(x_i) (the summed logits, ``output="sum"``), ``label``: t_i = f_{y_i}(x_i)
    (the true-class logit, HNAS's reduction); BN with the batch statistics frozen (``bn="batchstats"``).

    Returns (m, m) float64: <ds_i, ds_j> and <dt_i, dt_j> under those names and, with both outputs,
    ``cross`` <ds_i, dt_j> (not symmetric), from which :func:`searchkit.metrics.kcc_variants.ce_kernel`
    builds the kernel of the per-sample cross-entropy gradients at uniform softmax.
    """
    x, y = batch.x, batch.y
    params = {k: v.detach() for k, v in net.named_parameters() if v.requires_grad}
    buffers = batch_statistics(net, x)
    onehot = torch.nn.functional.one_hot(y, batch.num_classes).to(x.dtype)

    def scalars(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        out = functional_call(net, (p, buffers), (xi.unsqueeze(0),))[0]
        return torch.stack([out.sum() if o == "sum" else (out * yi).sum() for o in outputs])

    with train_mode(net, False):
        blocks = vmap(jacrev(scalars), in_dims=(None, 0, 0))(params, x, onehot)
    m = x.shape[0]
    pairs = {o: (k, k) for k, o in enumerate(outputs)} | ({"cross": (0, 1)} if len(outputs) == 2 else {})
    grams = {key: torch.zeros(m, m, dtype=torch.float64) for key in pairs}
    for block in blocks.values():
        j = block.reshape(m, len(outputs), -1).double()
        for key, (a, b) in pairs.items():
            grams[key] += j[:, a] @ j[:, b].T
    return grams


#: Kernels a ``SPEC|KERNEL`` column can read besides the NTK of the metric's own ``output``.
KERNELS = ("ce", "permuted")


@dataclass(frozen=True)
class Column:
    """A metric column ``SPEC`` or ``SPEC|KERNEL`` (see the module docstring)."""

    label: str
    metric: NTKMetric
    kernel: str

    @classmethod
    def parse(cls, label: str) -> "Column":
        spec, _, kernel = label.partition("|")
        metric = parse_metric(spec)
        if not isinstance(metric, NTKMetric) or metric.bn != "batchstats" or metric.output not in ("sum", "label"):
            raise SystemExit(f"{label}: the cache holds the bn=batchstats NTKs of the summed and true-class logits; "
                             f"{spec} is not an NTK metric on them")
        if kernel and (kernel not in KERNELS or metric.output != "sum"):
            raise SystemExit(f"{label}: the kernel after | must be one of {', '.join(KERNELS)} "
                             "(for an output=sum metric)")
        return cls(label, metric, kernel or metric.output)

    def value(self, grams: dict[str, torch.Tensor], batch: Batch) -> float:
        """The metric on its kernel (labels permuted for ``permuted``: mean over :func:`permuted_labels`)."""
        from searchkit.metrics.kcc_variants import ce_kernel

        if self.kernel in ("label", "ce") and "label" not in grams:
            raise SystemExit(f"{self.label} needs grams: joint in study.yaml (this study cached the sum NTK only)")
        if self.kernel == "permuted":
            values = [self.metric.from_ntk(grams["sum"], Batch(batch.x, y, batch.num_classes))
                      for y in permuted_labels(batch.y)]
            return self.metric.guard(sum(values) / len(values))
        if self.kernel == "ce":
            theta = ce_kernel(grams["sum"], grams["label"], grams["cross"], batch.num_classes)
        else:
            theta = grams[self.kernel]
        return self.metric.guard(self.metric.from_ntk(theta, batch))


def permuted_labels(y: torch.Tensor, draws: int = PERMUTATIONS) -> list[torch.Tensor]:
    """``draws`` random permutations of the batch's labels (fixed seed 0): the same class counts, no
    relation to the images."""
    generator = torch.Generator().manual_seed(0)
    return [y[torch.randperm(y.shape[0], generator=generator)] for _ in range(draws)]


def darts_rows(path: Path) -> list[tuple[str, float]]:
    """(genotype text, accuracy %) of each row of the DARTS table at ``path``, in index order."""
    from searchkit.tabular.darts import DartsTable

    table = DartsTable.load(path)
    return [(table.arch_str(i), float(acc)) for i, acc in enumerate(table.column("cifar10", "valid", 200))]


def loose_genotype(text: str):
    """A DARTS ``Genotype(...)`` text, decoded by the space's codec (which accepts a node that reads
    one earlier node twice, as 811 of the table's cells do)."""
    from searchkit.spaces.darts import DartsSpace

    return DartsSpace().decode(text)


@dataclass
class Study:
    """A study directory's ``study.yaml``, resolved."""

    directory: Path
    spec: dict

    @classmethod
    def load(cls, directory: Path) -> "Study":
        spec = yaml.safe_load((directory / "study.yaml").read_text())
        for key in ("space", "build", "dataset", "batch_size", "init_seed", "data_seed", "archs"):
            if key not in spec:
                raise SystemExit(f"{directory}/study.yaml lacks {key!r}")
        spec.setdefault("extras", [])
        spec.setdefault("grams", "joint")
        spec.setdefault("metrics", [])
        return cls(directory, spec)

    @property
    def archs_path(self) -> Path:
        return (ROOT / self.spec["archs"]).resolve()

    def archs(self) -> dict[int, str]:
        """index -> architecture text, in the study's order (NB201: even indices first)."""
        space = self.spec["space"]
        limit = self.spec.get("limit")
        if space == "nb201":
            from searchkit.tabular import NB201Table

            table = NB201Table.load()
            indices = read_indices(self.archs_path, NUM_ARCHS)[:limit]
            return {i: table.arch_str(i) for i in sorted(indices, key=lambda i: (i % 2, indices.index(i)))}
        if space == "darts":
            return {i: text for i, (text, _) in enumerate(darts_rows(self.archs_path)[:limit])}
        raise SystemExit(f"unknown space {space!r}")

    def cache_dir(self, cache: Path) -> Path:
        s = self.spec
        build = "-".join(f"{k}{v}" for k, v in sorted(s["build"].items()))
        return cache / f"{s['space']}-{build}-{s['dataset']}-m{s['batch_size']}-i{s['init_seed']}-d{s['data_seed']}"

    def network(self, space, splits, text: str) -> torch.nn.Module:
        arch = loose_genotype(text) if self.spec["space"] == "darts" else space.decode(text)
        if self.spec["space"] == "darts":
            from searchkit.spaces.darts import DartsNetwork

            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.spec["init_seed"])
                return DartsNetwork(arch, splits.num_classes, in_channels=splits.input_shape[0], **self.spec["build"])
        return build_network(space, arch, splits, self.spec["init_seed"], self.spec["build"])

    def batch(self) -> tuple[object, Batch]:
        splits = get_dataset(self.spec["dataset"], None)
        return splits, scoring_batch(splits, self.spec["batch_size"], self.spec["data_seed"])


def _save(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(payload, tmp)
    tmp.replace(path)


def compute(study: Study, cache: Path, shard: tuple[int, int], limit: int | None = None) -> None:
    """Cache every missing Theta and extra metric of this shard's architectures (of the first
    ``limit`` architectures when given)."""
    splits, batch = study.batch()
    space = get_space(study.spec["space"])
    root = study.cache_dir(cache)
    extras = {name: parse_metric(name) for name in study.spec["extras"]}
    items = list(study.archs().items())[:limit][shard[0]::shard[1]]
    done = 0
    for index, text in items:
        path = root / "ntk" / f"{index}.pt"
        extras_path = root / "extras" / f"{index}.json"
        have = json.loads(extras_path.read_text()) if extras_path.exists() else {}
        todo_extras = [e for e in extras if e not in have]
        joint = study.spec["grams"] == "joint"
        fresh = not path.exists() or (joint and "label" not in torch.load(path))
        if not fresh and not todo_extras:
            continue
        net = study.network(space, splits, text)
        if fresh:
            start = time.perf_counter()
            grams = joint_ntk(net, batch) if joint else {"sum": robust_ntk(net, batch.x, "batchstats", "sum")}
            _save(path, {**grams, "seconds": time.perf_counter() - start, "fingerprint": batch.fingerprint(),
                         "arch": text})
        cached = torch.load(path)
        for name in todo_extras:
            metric = extras[name]
            start = time.perf_counter()
            if isinstance(metric, NTKMetric) and metric.ntk_key == ("batchstats", "sum"):
                value = metric.guard(metric.score_with(cached["sum"], net, batch))  # tenas also needs the net
            else:
                value = metric(net, batch)
            have[name] = [value, time.perf_counter() - start]
        if todo_extras:
            extras_path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(extras_path, json.dumps(have))
        done += 1
        print(f"[{shard[0]}/{shard[1]}] {index} done ({done} new)", flush=True)


def score(study: Study, cache: Path) -> None:
    """Write DIR/scores.csv and DIR/settings.yaml from the cache (complete architectures only).

    Seconds: an extra metric's own (an NTK one's without its Theta); an NTK metric's is the joint
    Jacobian's (both Gram matrices, see :func:`joint_ntk`) plus its own: an upper bound of the cost
    of its own Theta (single-output costs are timed separately, see the README).
    """
    splits, batch = study.batch()
    root = study.cache_dir(cache)
    columns = [Column.parse(label) for label in study.spec["metrics"]]
    labels = [*study.spec["extras"], *(c.label for c in columns)]
    order = list(study.archs().items())
    if study.spec["space"] == "nb201":
        position = {i: k for k, i in enumerate(read_indices(study.archs_path, NUM_ARCHS))}
        order.sort(key=lambda kv: position[kv[0]])
    rows, missing = [], 0
    for index, text in order:
        path = root / "ntk" / f"{index}.pt"
        extras_path = root / "extras" / f"{index}.json"
        have = json.loads(extras_path.read_text()) if extras_path.exists() else {}
        if not path.exists() or any(e not in have for e in study.spec["extras"]):
            missing += 1
            continue
        cached = torch.load(path)
        if cached["fingerprint"] != batch.fingerprint():
            raise SystemExit(f"cache {root} was computed on batch {cached['fingerprint']}, this study scores "
                             f"{batch.fingerprint()}")
        values = [have[name][0] for name in study.spec["extras"]]
        seconds = [have[name][1] for name in study.spec["extras"]]
        for column in columns:
            start = time.perf_counter()
            values.append(column.value(cached, batch))
            seconds.append(cached["seconds"] + time.perf_counter() - start)
        rows.append([index, text, *map(repr, values), *(f"{s:.4f}" for s in seconds)])
    with (study.directory / "scores.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([scores_header(labels), *rows])
    settings = {key: study.spec[key] for key in ("dataset", "batch_size", "data_seed", "init_seed", "build")}
    settings.update(metrics=labels, space=study.spec["space"], batch_fingerprint=batch.fingerprint(),
                    device="cpu", threads=1)
    if "groups" in study.spec:
        settings["groups"] = study.spec["groups"]
    write_atomic(study.directory / "settings.yaml", yaml.safe_dump(settings, sort_keys=False))
    print(f"{study.directory}: {len(rows)} architectures scored, {missing} not (yet) cached")


def timing(study: Study, n: int, threads: int) -> None:
    """Time, on the first ``n`` architectures of the study (in its sample order), each NTK the study
    uses and each metric's own work on it; write DIR/timing.md. Run on a quiet machine."""
    torch.set_num_threads(threads)
    splits, batch = study.batch()
    space = get_space(study.spec["space"])
    order = list(study.archs().items())
    if study.spec["space"] == "nb201":
        position = {i: k for k, i in enumerate(read_indices(study.archs_path, NUM_ARCHS))}
        order.sort(key=lambda kv: position[kv[0]])
    columns = [Column.parse(label) for label in study.spec["metrics"]]
    ntks = {"summed-logit NTK (searchkit empirical_ntk, the metrics' own)":
                lambda net: {"sum": robust_ntk(net, batch.x, "batchstats", "sum")},
            "true-class-logit NTK (searchkit empirical_ntk, output=label)":
                lambda net: {"label": robust_ntk(net, batch.x, "batchstats", "label", y=batch.y)},
            "joint sum + true-class NTK (the study's cache)": lambda net: joint_ntk(net, batch)}
    seconds: dict[str, list[float]] = {key: [] for key in [*ntks, *(c.label for c in columns)]}
    for _, text in order[:n]:
        net = study.network(space, splits, text)
        for key, compute_ntk in ntks.items():
            start = time.perf_counter()
            grams = compute_ntk(net)
            seconds[key].append(time.perf_counter() - start)
        for column in columns:
            start = time.perf_counter()
            column.value(grams, batch)
            seconds[column.label].append(time.perf_counter() - start)
    lines = [f"# Seconds per architecture, {study.directory}", "",
             f"First {n} architectures of the study, batch {study.spec['batch_size']}, {threads} torch thread(s), "
             f"`python benchmarks/kcc_study.py time {study.directory} --n {n} --threads {threads}` on a quiet machine "
             "(the shared CPU lock held). NTK rows: the kernel; metric rows: the metric's own work on a cached kernel "
             "(add the NTK it reads).", "", "| what | median s | mean s |", "|---|---|---|"]
    lines += [f"| {key} | {np.median(v):.4f} | {np.mean(v):.4f} |" for key, v in seconds.items()]
    write_atomic(study.directory / "timing.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


def parse_shard(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)/(\d+)", text)
    if not match or not int(match[1]) < int(match[2]):
        raise argparse.ArgumentTypeError("--shard is K/N with 0 <= K < N")
    return int(match[1]), int(match[2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("thetas", "score", "time"))
    parser.add_argument("dirs", type=Path, nargs="+", help="study directories (each with a study.yaml)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="Theta cache (default /tmp/kcc-thetas)")
    parser.add_argument("--shard", type=parse_shard, default=(0, 1), help="K/N: this process's share")
    parser.add_argument("--limit", type=int, default=None, help="thetas: only the first N architectures")
    parser.add_argument("--n", type=int, default=20, help="time: architectures to time (default 20)")
    parser.add_argument("--threads", type=int, default=1, help="time: torch threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for directory in args.dirs:
        study = Study.load(directory)
        if args.step == "thetas":
            compute(study, args.cache, args.shard, args.limit)
        elif args.step == "score":
            score(study, args.cache)
        else:
            timing(study, args.n, args.threads)


if __name__ == "__main__":
    main()
