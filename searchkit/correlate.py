"""``searchkit correlate``: score NB201 architectures with several metrics and correlate them with
the benchmark's accuracies.

Rows stream to ``scores.csv`` (flushed one architecture at a time); a rerun with the same
``--out`` skips the architectures already there, so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from searchkit.data import get_dataset, scoring_batch
from searchkit.errors import SearchkitError
from searchkit.metrics import get_metric
from searchkit.metrics.base import Metric
from searchkit.metrics.scoring import score_metrics
from searchkit.runtime import build_network, resolve_device
from searchkit.spaces import get_space
from searchkit.tabular import NB201Table


def parse_metric_spec(spec: str) -> tuple[str, Metric]:
    """``"kcc"`` or ``"kcc:eps=0.05:bn=eval"`` -> (column label, configured metric)."""
    name, *pairs = spec.split(":")
    options = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise SearchkitError(f"metric spec {spec!r}: options are written name:key=value[:key=value]")
        options[key] = yaml.safe_load(raw)
    return spec, get_metric(name, **options)


def sample_indices(n: int, seed: int, total: int) -> list[int]:
    """``n`` distinct NB201 indices drawn uniformly with ``seed`` (the same seed gives the same list)."""
    if not 1 <= n <= total:
        raise SearchkitError(f"--n must be between 1 and {total}, got {n}")
    return [int(i) for i in np.random.default_rng(seed).choice(total, size=n, replace=False)]


def read_indices(path: str | Path, total: int) -> list[int]:
    """One NB201 index per line (blank lines and #-comments ignored)."""
    path = Path(path)
    if not path.is_file():
        raise SearchkitError(f"architecture list not found: {path}; give a file with one NB201 index per line")
    indices = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = line.split("#")[0].strip()
        if not text:
            continue
        if not text.isdigit() or not 0 <= int(text) < total:
            raise SearchkitError(f"{path}:{number}: {text!r} is not an NB201 index 0..{total - 1}")
        indices.append(int(text))
    return indices


@dataclass
class ScoreFile:
    """``scores.csv``: index, arch_str, one column per metric, then one ``<metric>_s`` seconds column each."""

    path: Path
    labels: list[str]

    @property
    def header(self) -> list[str]:
        return ["index", "arch_str", *self.labels, *(f"{label}_s" for label in self.labels)]

    def read(self) -> dict[int, dict[str, float]]:
        """index -> {column: value} of the complete rows (a torn last line is skipped). Read-only:
        safe while a correlate run is appending to the file."""
        return {index: values for index, values, _ in self._complete_rows()}

    def repair(self) -> None:
        """Rewrite the file without a torn last line, so that appends start on a clean line. Only
        the run that is about to append may call this: a writer still holding the old file would
        go on appending to an unlinked copy."""
        if self.path.exists():
            rows = [raw for _, _, raw in self._complete_rows()]
            tmp = self.path.with_suffix(".tmp")
            with tmp.open("w", newline="") as handle:
                csv.writer(handle).writerows([self.header, *rows])
            tmp.replace(self.path)

    def _complete_rows(self) -> list[tuple[int, dict[str, float], list[str]]]:
        """(index, {column: value}, raw row) of each complete row, up to the first torn one."""
        if not self.path.exists():
            return []
        with self.path.open(newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header != self.header:
                raise SearchkitError(
                    f"{self.path} was written for other metrics ({', '.join((header or [])[2:])}); "
                    f"use another --out or the same --metrics")
            rows = []
            for raw in reader:
                try:
                    if len(raw) != len(self.header):
                        raise ValueError
                    rows.append((int(raw[0]), {key: float(v) for key, v in zip(self.header[2:], raw[2:])}, raw))
                except ValueError:
                    break
        return rows

    def open_append(self):
        new = not self.path.exists()
        handle = self.path.open("a", newline="")
        writer = csv.writer(handle)
        if new:
            writer.writerow(self.header)
            handle.flush()
        return handle, writer


def run_correlate(
    metric_specs: list[str], indices: list[int], out: str | Path, dataset: str = "cifar10",
    data_root: str | None = None, batch_size: int = 64, data_seed: int = 0, init_seed: int = 0,
    build: dict | None = None, table_path: str | None = None, device: str = "auto", progress: bool = True,
) -> Path:
    """Score ``indices`` with every metric into ``out/scores.csv``; write ``correlation.md`` and scatter plots.

    Returns the output directory. Networks are the benchmark's (C=16, N=5 unless ``build`` says
    otherwise), initialised from ``init_seed``; the scoring batch is ``batch_size`` training images
    drawn with ``data_seed``.
    """
    from searchkit.report import write_correlation_report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    metrics = dict(parse_metric_spec(spec) for spec in metric_specs)
    table = NB201Table.load(table_path)
    space = get_space("nb201")
    splits = get_dataset(dataset, data_root)
    dev = resolve_device(device)
    batch = scoring_batch(splits, batch_size, data_seed).to(dev)
    build = {"C": 16, "N": 5} if build is None else build
    (out / "settings.yaml").write_text(yaml.safe_dump({
        "metrics": metric_specs, "dataset": dataset, "batch_size": batch_size, "data_seed": data_seed,
        "init_seed": init_seed, "build": build, "device": str(dev), "table": table.source,
        "batch_fingerprint": batch.fingerprint()}, sort_keys=False))

    scores = ScoreFile(out / "scores.csv", list(metrics))
    scores.repair()
    done = scores.read()
    todo = [i for i in indices if i not in done]
    handle, writer = scores.open_append()
    try:
        for index in tqdm(todo, desc="correlate", unit="arch", disable=not progress,
                          initial=len(indices) - len(todo), total=len(indices)):
            arch = space.decode(table.arch_str(index))
            net = build_network(space, arch, splits, init_seed, build).to(dev)
            result = score_metrics(net, batch, metrics)
            writer.writerow([index, table.arch_str(index), *(repr(result[k][0]) for k in metrics),
                             *(f"{result[k][1]:.4f}" for k in metrics)])
            handle.flush()
    finally:
        handle.close()
    rows = scores.read()
    selected = {i: rows[i] for i in indices if i in rows}
    write_correlation_report(out, selected, list(metrics), table)
    return out
