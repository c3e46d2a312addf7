"""The run directory (resolved config, streamed ``history.csv``, ``best.json``) and the score cache.

``history.csv`` gets one row per oracle query answered, flushed as it is written, so an
interrupted run loses at most the query in progress and ``--resume DIR`` can replay it.
"""
from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

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
        """Rows of ``history.csv``; a torn last line (from a kill mid-write) is dropped. Files
        written before the ``kind``/``simulated_seconds``/``extras`` columns read as score rows."""
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
                        **_new_columns(raw),
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
                               repr(row.score), f"{row.seconds:.4f}", int(row.cached), row.kind,
                               f"{row.simulated_seconds:.4f}", json.dumps(row.extras, sort_keys=True)])
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


class ScoreCache:
    """Training-free scores shared by runs with one scoring setting: (metric key, arch) -> (value, seconds).

    ``settings`` names that setting (dataset, batch size, data seed, init seed, build, batch
    fingerprint); a run with other settings must not use the cache (the engine checks). Each
    entry keeps the seconds it took to compute, which is what a run served from the cache is
    charged. With ``path`` the cache is a CSV (metric key, arch, value, seconds) read on opening
    and appended to, one flushed line per entry, so an interrupted benchmark keeps its scores.
    """

    FIELDS = ("metric", "arch", "value", "seconds")

    def __init__(self, settings: dict, path: str | Path | None = None) -> None:
        self.settings = settings
        self.path = None if path is None else Path(path)
        self._entries: dict[tuple[str, str], tuple[float, float]] = {}
        if self.path is not None and self.path.exists():
            torn = False
            with self.path.open(newline="") as handle:
                for raw in csv.DictReader(handle):
                    try:
                        self._entries[raw["metric"], raw["arch"]] = (float(raw["value"]), float(raw["seconds"]))
                    except (TypeError, ValueError, KeyError):
                        torn = True
                        break
            if torn:  # rewrite without the torn last line, so appends start on a clean line
                self.path.unlink()
                for (key, arch), (value, seconds) in list(self._entries.items()):
                    self.put(key, arch, value, seconds)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str, arch: str) -> tuple[float, float] | None:
        """(value, seconds) of ``arch`` under the metric ``key``, or None."""
        return self._entries.get((key, arch))

    def put(self, key: str, arch: str, value: float, seconds: float, persist: bool = True) -> None:
        """Record an entry (``persist``: also append it to the CSV, if any)."""
        self._entries[key, arch] = (value, seconds)
        if persist and self.path is not None:
            new = not self.path.exists()
            with self.path.open("a", newline="") as handle:
                writer = csv.writer(handle)
                if new:
                    writer.writerow(self.FIELDS)
                writer.writerow([key, arch, repr(value), f"{seconds:.4f}"])
