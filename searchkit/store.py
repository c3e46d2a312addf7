"""The run directory: resolved config, streamed ``history.csv`` and ``best.json``.

``history.csv`` gets one row per architecture scored, flushed as it is written, so an
interrupted run loses at most the architecture being scored and ``--resume DIR`` can replay it.
"""
from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from searchkit.errors import SearchkitError

HISTORY_FIELDS = ("step", "arch", "index", "score", "seconds", "cached")


@dataclass
class HistoryRow:
    """One architecture scored: its step, canonical string, official index (or None), score, seconds."""

    step: int
    arch: str
    index: int | None
    score: float
    seconds: float
    cached: bool


class RunDir:
    """A run's output directory (created on demand)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def new(cls, name: str, root: str | Path = "runs") -> "RunDir":
        """``runs/<YYYYmmdd-HHMMSS>-<name>/`` (a numeric suffix keeps two runs in one second apart)."""
        stem = Path(root) / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"
        path, n = stem, 1
        while path.exists():
            n += 1
            path = stem.with_name(f"{stem.name}-{n}")
        return cls(path)

    @classmethod
    def existing(cls, path: str | Path) -> "RunDir":
        run = cls(path)
        if not (run.path / "config.yaml").is_file():
            raise SearchkitError(f"cannot resume {path}: no config.yaml there; pass the directory of an earlier run")
        return run

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    def write_config(self, config: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def read_config(self) -> dict:
        return yaml.safe_load(self.config_path.read_text()) or {}

    def read_history(self) -> list[HistoryRow]:
        """Rows of ``history.csv``; a torn last line (from a kill mid-write) is dropped."""
        path = self.path / "history.csv"
        if not path.exists():
            return []
        rows = []
        with path.open(newline="") as handle:
            for raw in csv.DictReader(handle):
                try:
                    rows.append(HistoryRow(
                        step=int(raw["step"]), arch=raw["arch"],
                        index=int(raw["index"]) if raw["index"] else None,
                        score=float(raw["score"]), seconds=float(raw["seconds"]),
                        cached=raw["cached"] == "1",
                    ))
                except (TypeError, ValueError, KeyError):
                    break
        return rows

    def history_writer(self, rows: list[HistoryRow]) -> "HistoryWriter":
        """A writer that rewrites ``history.csv`` with ``rows`` (the replayed part) and appends after it."""
        return HistoryWriter(self.path / "history.csv", rows)

    def write_json(self, name: str, data: dict) -> Path:
        path = self.path / name
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(path)
        return path


class HistoryWriter:
    """Appends :class:`HistoryRow` lines to a CSV file, flushing each one."""

    def __init__(self, path: Path, rows: list[HistoryRow]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = path.open("w", newline="")
        self._writer = csv.writer(self._handle)
        self._writer.writerow(HISTORY_FIELDS)
        for row in rows:
            self.append(row)

    def append(self, row: HistoryRow) -> None:
        self._writer.writerow([row.step, row.arch, "" if row.index is None else row.index,
                               repr(row.score), f"{row.seconds:.4f}", int(row.cached)])
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()
