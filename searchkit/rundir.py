"""A run's output directory: the resolved config, the streamed ``history.csv``, ``best.json``.

``history.csv`` gets one row per oracle query answered, flushed as it is written, so an
interrupted run loses at most the query in progress and ``--resume DIR`` can replay it.
Files rewritten whole (``config.yaml``, ``best.json``) are replaced atomically.

A new run directory is checked before any work (:meth:`RunDir.fresh`): a directory that already
holds a run is refused unless the run is resumed or ``overwrite`` is asked for, and an output
that cannot be written is a one-line error; nothing is written until the run's inputs are valid.
"""
from __future__ import annotations

import csv
import json
import os
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import yaml

from searchkit.errors import SearchkitError

TRAIN_CHECKPOINT = "train.ckpt"
"""A run directory's resumable checkpoint of the final training (search) or the training (evaluate)."""
VALIDATE_CHECKPOINT = "validate.ckpt"
"""A run directory's checkpoint of the validation training in progress (removed when it finishes)."""
HISTORY_FIELDS = ("step", "arch", "index", "score", "seconds", "cached", "kind", "simulated_seconds", "extras")
KINDS = ("score", "validate", "oneshot")


@dataclass
class HistoryRow:
    """One oracle query answered: step, canonical arch string, official index (or None), value, cost.

    ``kind``: ``score`` (training-free fitness; ``extras`` holds the strategy's extra metrics),
    ``validate`` (``score`` is the validation accuracy, %) or ``oneshot`` (a one-shot strategy's
    whole search; ``score`` is its objective at the selected architecture). ``seconds``: wall
    time of training-free work charged; ``simulated_seconds``: training time charged. ``cached``:
    a repeat within the run, answered from its earlier row and charged nothing.
    """

    step: int
    arch: str
    index: int | None
    score: float
    seconds: float
    cached: bool
    kind: str = "score"
    simulated_seconds: float = 0.0
    extras: dict[str, float] = field(default_factory=dict)


def _new_columns(raw: dict) -> dict:
    """``kind``, ``simulated_seconds``, ``extras`` of a history line (absent in older files).

    A line torn inside these columns raises ValueError/TypeError, like one torn earlier."""
    if "kind" not in raw:
        return {}
    if raw["kind"] not in KINDS:
        raise ValueError(raw["kind"])
    extras = json.loads(raw["extras"])
    return {"kind": raw["kind"], "simulated_seconds": float(raw["simulated_seconds"]),
            "extras": {str(k): float(v) for k, v in extras.items()}}


#: The files a run writes into its directory (a score store beside them is a cache, not a run).
MODEL_FILE = "model.pt"
"""A run directory's trained selection as TorchScript (:mod:`searchkit.export`)."""
MODEL_CARD = "model.json"
"""What :data:`MODEL_FILE` is: architecture, classes, input size, normalisation, accuracy."""
RUN_FILES = ("config.yaml", "history.csv", "best.json", "evaluation.json", "plan.json", MODEL_FILE, MODEL_CARD,
             TRAIN_CHECKPOINT, VALIDATE_CHECKPOINT)


def check_writable(path: str | Path, flag: str = "--out") -> None:
    """SearchkitError unless ``path`` (a directory, existing or not) can be created and written;
    creates nothing."""
    path = Path(path)
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe == path and not path.is_dir():
        raise SearchkitError(f"cannot write to {path}: it is a file, not a directory; choose another {flag}")
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise SearchkitError(f"cannot write to {path}: {probe} is not writable (read-only or no permission); "
                             f"choose another {flag}")


class RunDir:
    """A run's output directory (created on demand).

    ``started``: the directory this process last started or resumed a run in (what an interrupted
    command tells the user to resume), None before any.
    """

    started: Path | None = None

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def fresh(cls, path: str | Path, overwrite: bool = False, flag: str = "--out") -> "RunDir":
        """The directory for a new run at ``path``, checked before any work, nothing written: one
        that already holds a run is refused (resume it, or pass ``overwrite``), an unwritable one
        too. With ``overwrite`` the old run's files are removed when :meth:`start` is called."""
        run = cls(path)
        held = run.held_files()
        if held and not overwrite:
            raise SearchkitError(f"{run.path} already holds a run ({', '.join(held)}); continue it with --resume "
                                 f"{run.path}, replace it with --overwrite, or choose another {flag}")
        check_writable(run.path, flag)
        return run

    def held_files(self) -> list[str]:
        """The run files (:data:`RUN_FILES`) present in the directory."""
        return [name for name in RUN_FILES if (self.path / name).exists()]

    def start(self) -> None:
        """Create the directory, removing an earlier run's files (see :meth:`fresh`)."""
        self.path.mkdir(parents=True, exist_ok=True)
        for name in self.held_files():
            (self.path / name).unlink()
        RunDir.started = self.path

    @classmethod
    def new(cls, name: str, root: str | Path = "runs") -> "RunDir":
        """``runs/<YYYYmmdd-HHMMSS>-<name>/`` (a numeric suffix keeps two runs in one second apart),
        checked like :meth:`fresh`; nothing is created."""
        stem = Path(root) / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"
        path, n = stem, 1
        while path.exists():
            n += 1
            path = stem.with_name(f"{stem.name}-{n}")
        check_writable(path)
        return cls(path)

    @classmethod
    def existing(cls, path: str | Path) -> "RunDir":
        run = cls(path)
        if not (run.path / "config.yaml").is_file():
            raise SearchkitError(f"cannot resume {path}: no config.yaml there; pass the directory of an earlier run")
        RunDir.started = run.path
        return run

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    def write_config(self, config: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_atomic(self.config_path, yaml.safe_dump(config, sort_keys=False))

    def read_config(self) -> dict:
        return read_yaml(self.config_path, "restore it (it is the resolved config of the command that started the "
                                           "run), or start the run again with --overwrite")

    def read_history(self) -> list[HistoryRow]:
        """Rows of ``history.csv``. A damaged last line (torn by a kill or a full disk mid-write)
        is dropped with a warning: its query is asked again. A damaged line before the last, or a
        damaged header, is a SearchkitError naming the line (the rows after it depend on it).
        Files written before the ``kind``/``simulated_seconds``/``extras`` columns read as score rows."""
        path = self.path / "history.csv"
        if not path.exists():
            return []
        text = path.read_text(errors="replace")
        lines = text.splitlines(keepends=True)
        if not lines or not lines[0].endswith("\n"):  # empty, or a header torn before any row
            return []
        header = next(csv.reader(lines[:1]), [])
        if tuple(header) not in (HISTORY_FIELDS, HISTORY_FIELDS[:6]):
            raise SearchkitError(f"cannot resume {self.path}: history.csv has a damaged header (line 1); restore the "
                                 f"file, or start the run again with --overwrite")
        rows = []
        for number, line in enumerate(lines[1:], 2):
            row = _history_row(header, line)
            if row is None:
                if number < len(lines):
                    raise SearchkitError(
                        f"cannot resume {self.path}: history.csv line {number} is damaged; repair that line, or delete "
                        f"it and every line after it to resume from the {len(rows)} rows before (their scores stay in "
                        "the store)")
                warnings.warn(f"{path}: dropped a damaged last line (cut by a kill or a full disk); its query is "
                              f"asked again, the {len(rows)} rows before it are replayed", stacklevel=2)
                break
            rows.append(row)
        return rows

    def check_results(self) -> None:
        """Warn when a finished run's ``best.json`` or ``evaluation.json`` cannot be read: it is
        written again, from the history, when the resumed run finishes."""
        for name in ("best.json", "evaluation.json"):
            path = self.path / name
            if path.exists():
                try:
                    json.loads(path.read_text())
                except (ValueError, UnicodeDecodeError) as err:
                    warnings.warn(f"{path} is damaged ({type(err).__name__}); it is written again when the resumed "
                                  "run finishes", stacklevel=2)

    def history_writer(self, rows: list[HistoryRow]) -> "HistoryWriter":
        """A writer that rewrites ``history.csv`` with ``rows`` (the replayed part) and appends after it."""
        return HistoryWriter(self.path / "history.csv", rows)

    def write_json(self, name: str, data: dict) -> Path:
        path = self.path / name
        write_atomic(path, json.dumps(data, indent=2) + "\n")
        return path


def _history_row(header: list[str], line: str) -> HistoryRow | None:
    """The :class:`HistoryRow` of one CSV line of ``history.csv``, or None when it is damaged
    (torn, or not a row of this file's columns)."""
    if not line.endswith("\n"):
        return None
    try:
        values = next(csv.reader([line]))
        if len(values) != len(header):
            return None
        raw = dict(zip(header, values))
        return HistoryRow(step=int(raw["step"]), arch=raw["arch"], index=int(raw["index"]) if raw["index"] else None,
                          score=float(raw["score"]), seconds=float(raw["seconds"]), cached=raw["cached"] == "1",
                          **_new_columns(raw))
    except (TypeError, ValueError, KeyError, csv.Error):
        return None


def read_yaml(path: Path, fix: str) -> dict:
    """The mapping in the YAML file ``path``; a damaged file is a SearchkitError naming it and ``fix``."""
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        reason = str(err).splitlines()[0]
        raise SearchkitError(f"{path} is damaged ({reason}); {fix}") from None
    if data is not None and not isinstance(data, dict):
        raise SearchkitError(f"{path} is damaged (not a mapping of settings); {fix}")
    return data or {}


def complete_lines(path: Path) -> list[str]:
    """The lines of a file written by appending, without a last line torn by a kill (one that
    does not end with a newline)."""
    lines = path.read_text().splitlines(keepends=True)
    return lines[:-1] if lines and not lines[-1].endswith("\n") else lines


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn an OSError raised while writing ``path`` (a full disk, a file-size limit, an I/O
    error) into a one-line :class:`SearchkitError` naming the file and the fix."""
    try:
        yield
    except OSError as err:
        raise SearchkitError(f"cannot write {path} ({err.strerror or err}): free disk space (or raise the file-size "
                             "limit), then resume the run; everything written before is kept") from None


def write_atomic(path: Path, data: str | bytes) -> None:
    """Replace ``path`` with ``data`` so that a kill or a failed write (:func:`writing`) leaves
    either the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    with writing(path):
        try:
            if isinstance(data, bytes):
                tmp.write_bytes(data)
            else:
                tmp.write_text(data)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        tmp.replace(path)


class HistoryWriter:
    """Appends :class:`HistoryRow` lines to a CSV file, flushing each one. A failed write is a
    one-line error (:func:`writing`); it leaves at most a torn last line, which resuming drops."""

    def __init__(self, path: Path, rows: list[HistoryRow]) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with writing(path):
            self._handle = tmp.open("w", newline="")
        self._writer = csv.writer(self._handle)
        with writing(path):
            self._writer.writerow(HISTORY_FIELDS)
        for row in rows:
            self.append(row)
        tmp.replace(path)  # the replayed rows appear at once: a kill never loses them

    def append(self, row: HistoryRow) -> None:
        with writing(self.path):
            self._writer.writerow([row.step, row.arch, "" if row.index is None else row.index,
                                   repr(row.score), f"{row.seconds:.4f}", int(row.cached), row.kind,
                                   f"{row.simulated_seconds:.4f}", json.dumps(row.extras, sort_keys=True)])
            self._handle.flush()

    def close(self) -> None:
        with writing(self.path):
            self._handle.close()
