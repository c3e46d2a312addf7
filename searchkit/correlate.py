"""``searchkit correlate``: score NB201 architectures with several metrics and correlate them with
the benchmark's accuracies.

Scores go through the score store (``OUT/scores.db`` or ``--store PATH``): what it holds is
not computed again, the rest is computed (in this process, worker processes or on Ray, see
:mod:`searchkit.workers`) and written to it as each architecture completes. Rows also stream to
``scores.csv`` in completion order (flushed one architecture at a time); at the end the file is
rewritten in the order of the requested indices, so its content does not depend on the backend
or on interruptions. ``--resume OUT`` (or a rerun with the same ``--out``) skips the rows already
there.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from searchkit.errors import SearchkitError
from searchkit.metrics import get_metric
from searchkit.metrics.base import Metric
from searchkit.runtime import resolve_device
from searchkit.store import ScoreStore, complete_lines, write_atomic
from searchkit.spaces.nb201 import NUM_ARCHS
from searchkit.tabular import NB201Table
from searchkit.workers import Parallel, ScoreRunner, ScoringRecipe

#: settings.yaml keys that decide the scores (besides the metrics); a rerun must match them.
SCORING_KEYS = ("dataset", "batch_size", "data_seed", "init_seed", "build", "batch_fingerprint")


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

    def repair(self, order: list[int] | None = None) -> None:
        """Rewrite the file without a torn last line (so that appends start on a clean line) and,
        with ``order``, with the rows of those indices first, in that order. Only the run that
        appends may call this: a writer still holding the old file would go on appending to an
        unlinked copy."""
        if not self.path.exists():
            return
        rows = [raw for _, _, raw in self._complete_rows()]
        if order is not None:
            position = {index: k for k, index in enumerate(dict.fromkeys(order))}
            rows.sort(key=lambda raw: position.get(int(raw[0]), len(position)))
        text = io.StringIO()
        csv.writer(text).writerows([self.header, *rows])
        write_atomic(self.path, text.getvalue())

    def _complete_rows(self) -> list[tuple[int, dict[str, float], list[str]]]:
        """(index, {column: value}, raw row) of each complete row, up to the first torn one."""
        if not self.path.exists():
            return []
        reader = csv.reader(complete_lines(self.path))
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
    store: str | Path | None = None, parallel: Parallel = Parallel(),
) -> Path:
    """Score ``indices`` with every metric into ``out/scores.csv``; write ``correlation.md`` and scatter plots.

    Returns the output directory. Networks are the benchmark's (C=16, N=5 unless ``build`` says
    otherwise), initialised from ``init_seed``; the scoring batch is ``batch_size`` training images
    drawn with ``data_seed``. ``store``: the score store (None: ``out/scores.db``); ``parallel``:
    the scoring backend. ``out/settings.yaml`` and ``out/indices.txt`` record the call for
    :func:`resume_correlate`; a rerun into ``out`` with other scoring settings is refused.
    """
    from searchkit.report import write_correlation_report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    metrics = dict(parse_metric_spec(spec) for spec in metric_specs)
    table = NB201Table.load(table_path)
    dev = resolve_device(device)
    build = {"C": 16, "N": 5} if build is None else build
    scoring = ScoringRecipe("nb201", dataset, data_root, {}, batch_size, data_seed, "train", metrics, init_seed,
                            build, str(dev)).open()
    settings = {
        "metrics": metric_specs, "dataset": dataset, "data_root": data_root, "batch_size": batch_size,
        "data_seed": data_seed, "init_seed": init_seed, "build": build, "device": str(dev), "table": table.source,
        "batch_fingerprint": scoring.batch.fingerprint(), "store": None if store is None else str(store)}
    if (out / "settings.yaml").is_file():
        before = yaml.safe_load((out / "settings.yaml").read_text()) or {}
        differ = [k for k in SCORING_KEYS if k in before and before[k] != settings[k]]
        if "device" in before and resolve_kind(before["device"]) != dev.type:
            differ.append("device")
        if differ:
            raise SearchkitError(f"{out} was scored with other settings ({', '.join(differ)} differ); "
                                 f"use another --out, or --resume {out} to continue it")
    write_atomic(out / "settings.yaml", yaml.safe_dump(settings, sort_keys=False))
    write_atomic(out / "indices.txt", "".join(f"{i}\n" for i in indices))

    scores = ScoreFile(out / "scores.csv", list(metrics))
    scores.repair()
    done = scores.read()
    todo = {table.arch_str(i): i for i in indices if i not in done}
    handle, writer = scores.open_append()
    try:
        with ScoreStore(store if store is not None else out / "scores.db") as db, \
                ScoreRunner(scoring, db, parallel) as runner:
            bar = tqdm(runner.scores(todo), desc="correlate", unit="arch", disable=not progress,
                       initial=len(indices) - len(todo), total=len(indices))
            for text, result, _ in bar:
                writer.writerow([todo[text], text, *(repr(result[k][0]) for k in metrics),
                                 *(f"{result[k][1]:.4f}" for k in metrics)])
                handle.flush()
    finally:
        handle.close()
    scores.repair(order=indices)
    rows = scores.read()
    selected = {i: rows[i] for i in indices if i in rows}
    write_correlation_report(out, selected, list(metrics), table)
    return out


def resolve_kind(device: str) -> str:
    """The kind of a device name: ``cuda:1`` -> ``cuda``."""
    return device.split(":")[0]


def resume_correlate(out: str | Path, progress: bool = True, parallel: Parallel = Parallel()) -> Path:
    """Continue the ``searchkit correlate`` run in ``out`` with the settings and indices it recorded."""
    out = Path(out)
    settings_path, indices_path = out / "settings.yaml", out / "indices.txt"
    if not settings_path.is_file():
        raise SearchkitError(f"cannot resume {out}: no settings.yaml there; pass the --out directory of an earlier "
                             "searchkit correlate")
    if not indices_path.is_file():
        raise SearchkitError(f"cannot resume {out}: it has no indices.txt (written by an older searchkit); "
                             "rerun its original command with --out")
    settings = yaml.safe_load(settings_path.read_text()) or {}
    indices = read_indices(indices_path, NUM_ARCHS)
    return run_correlate(
        settings["metrics"], indices, out, dataset=settings["dataset"], data_root=settings.get("data_root"),
        batch_size=settings["batch_size"], data_seed=settings["data_seed"], init_seed=settings["init_seed"],
        build=settings["build"], table_path=settings.get("table"), device=settings["device"], progress=progress,
        store=settings.get("store"), parallel=parallel)
