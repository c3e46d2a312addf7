"""The run directory (resolved config, streamed ``history.csv``, ``best.json``) and the score store.

``history.csv`` gets one row per oracle query answered, flushed as it is written, so an
interrupted run loses at most the query in progress and ``--resume DIR`` can replay it.
Files rewritten whole (``config.yaml``, ``best.json``) are replaced atomically.

:class:`ScoreStore` is the SQLite file of training-free scores every command reads before
computing and writes as it goes (default ``scores.db`` in the run's output directory).
"""
from __future__ import annotations

import csv
import dataclasses
import json
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

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
        write_atomic(self.config_path, yaml.safe_dump(config, sort_keys=False))

    def read_config(self) -> dict:
        return yaml.safe_load(self.config_path.read_text()) or {}

    def read_history(self) -> list[HistoryRow]:
        """Rows of ``history.csv``; a torn last line (from a kill mid-write) is dropped. Files
        written before the ``kind``/``simulated_seconds``/``extras`` columns read as score rows."""
        path = self.path / "history.csv"
        if not path.exists():
            return []
        rows = []
        for raw in csv.DictReader(complete_lines(path)):
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
        write_atomic(path, json.dumps(data, indent=2) + "\n")
        return path


def complete_lines(path: Path) -> list[str]:
    """The lines of a file written by appending, without a last line torn by a kill (one that
    does not end with a newline)."""
    lines = path.read_text().splitlines(keepends=True)
    return lines[:-1] if lines and not lines[-1].endswith("\n") else lines


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that a kill leaves either the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


class HistoryWriter:
    """Appends :class:`HistoryRow` lines to a CSV file, flushing each one."""

    def __init__(self, path: Path, rows: list[HistoryRow]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        self._handle = tmp.open("w", newline="")
        self._writer = csv.writer(self._handle)
        self._writer.writerow(HISTORY_FIELDS)
        for row in rows:
            self.append(row)
        tmp.replace(path)  # the replayed rows appear at once: a kill never loses them

    def append(self, row: HistoryRow) -> None:
        self._writer.writerow([row.step, row.arch, "" if row.index is None else row.index,
                               repr(row.score), f"{row.seconds:.4f}", int(row.cached), row.kind,
                               f"{row.simulated_seconds:.4f}", json.dumps(row.extras, sort_keys=True)])
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()




def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys: equal mappings give equal strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def metric_key(metric: Any) -> tuple[str, str]:
    """(registry name, canonical JSON of every option) of a metric dataclass: its store key.

    Options are all the dataclass fields but ``name`` and ``worst``, defaults included, so
    ``kcc`` and ``kcc:eps=0.0001`` are one key when the default eps is 1e-4; an int given for a
    float option counts as that float (``eps=1`` is ``eps=1.0``).
    """
    options = {}
    for item in dataclasses.fields(metric):
        if item.name in ("name", "worst"):
            continue
        value = getattr(metric, item.name)
        if isinstance(item.default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        options[item.name] = value
    return metric.name, canonical_json(options)


@dataclass(frozen=True)
class ScoreSetting:
    """What a training-free score depends on besides the architecture and the metric.

    ``space``: search space name; ``build``: canonical JSON of the network options with the
    space's defaults filled in (:func:`searchkit.runtime.canonical_build`); ``dataset``: dataset
    name; ``batch``: the scoring batch's fingerprint (its contents: data seed, size, split);
    ``seed``: network initialisation seed; ``device``: device kind (``cpu``, ``cuda``).
    """

    space: str
    build: str
    dataset: str
    batch: str
    seed: int
    device: str


#: Columns of the ``scores`` table (and of ``searchkit store export``), key columns first.
STORE_KEY = ("space", "build", "dataset", "batch", "seed", "device", "metric", "options", "arch")
STORE_FIELDS = (*STORE_KEY, "value", "seconds")
STORE_VERSION = 1
_SETTING = "space = ? AND build = ? AND dataset = ? AND batch = ? AND seed = ? AND device = ?"


class ScoreStore:
    """Training-free scores on SQLite: one row per (setting, metric, options, arch) -> value, seconds.

    Scores are deterministic, so a row is written once and never replaced (``INSERT OR IGNORE``;
    the first writer wins). ``seconds`` is what computing that metric alone took, which is what
    a run served from the store is charged. NaN values are stored as NULL and read back as NaN.

    Durability: WAL journal, ``synchronous=NORMAL`` and one transaction per :meth:`put_many`
    (the caller writes one architecture's metrics at a time). A committed transaction survives
    the process being killed at any moment (SIGKILL included: the WAL is in the OS page cache);
    only an OS crash or power loss can lose the last transactions (``synchronous=FULL`` would be
    needed for that), and neither can corrupt the file. Several processes may share one file on
    a local disk (writers wait up to ``timeout`` seconds for the lock); WAL does not work on
    network file systems. Connections are not shared with child processes: workers send their
    results to the parent, which writes them.
    """

    def __init__(self, path: str | Path, create: bool = True, timeout: float = 60.0) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise SearchkitError(f"no score store at {self.path}; pass --store PATH (a run's scores.db or a shared store)")
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > STORE_VERSION:
                raise SearchkitError(f"{self.path} was written by a newer searchkit (store version {version}); upgrade")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS scores (space TEXT NOT NULL, build TEXT NOT NULL, dataset TEXT NOT NULL, "
                "batch TEXT NOT NULL, seed INTEGER NOT NULL, device TEXT NOT NULL, metric TEXT NOT NULL, "
                "options TEXT NOT NULL, arch TEXT NOT NULL, value REAL, seconds REAL NOT NULL, "
                f"PRIMARY KEY ({', '.join(STORE_KEY)})) WITHOUT ROWID")
            if version < STORE_VERSION:
                self._db.execute(f"PRAGMA user_version = {STORE_VERSION}")
        except sqlite3.DatabaseError as err:
            raise SearchkitError(f"{self.path} is not a searchkit score store ({err}); pass another --store") from None

    def __enter__(self) -> "ScoreStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM scores").fetchone()[0]

    def get(self, setting: ScoreSetting, key: tuple[str, str], arch: str) -> tuple[float, float] | None:
        """(value, seconds) of ``arch`` under the metric ``key`` in ``setting``, or None."""
        row = self._db.execute(f"SELECT value, seconds FROM scores WHERE {_SETTING} AND metric = ? AND options = ? "
                               "AND arch = ?", (*dataclasses.astuple(setting), *key, arch)).fetchone()
        return None if row is None else (_value(row[0]), row[1])

    def get_all(self, setting: ScoreSetting, keys: dict[str, tuple[str, str]], arch: str) -> dict[str, tuple[float, float]] | None:
        """label -> (value, seconds) for every metric of ``keys`` (label -> key), or None if any is missing."""
        held = {(metric, options): (_value(value), seconds) for metric, options, value, seconds in self._db.execute(
            f"SELECT metric, options, value, seconds FROM scores WHERE {_SETTING} AND arch = ?",
            (*dataclasses.astuple(setting), arch))}
        if not all(key in held for key in keys.values()):
            return None
        return {label: held[key] for label, key in keys.items()}

    def put_many(self, setting: ScoreSetting, entries: Iterable[tuple[tuple[str, str], str, float, float]]) -> None:
        """Write (metric key, arch, value, seconds) entries in one transaction; existing rows are kept."""
        rows = [(*dataclasses.astuple(setting), *key, arch, float(value), float(seconds))
                for key, arch, value, seconds in entries]
        with self._transaction():
            self._db.executemany(f"INSERT OR IGNORE INTO scores ({', '.join(STORE_FIELDS)}) "
                                 f"VALUES ({', '.join('?' * len(STORE_FIELDS))})", rows)

    def put(self, setting: ScoreSetting, key: tuple[str, str], arch: str, value: float, seconds: float) -> None:
        self.put_many(setting, [(key, arch, value, seconds)])

    def rows(self) -> Iterator[dict]:
        """Every row as a dict of :data:`STORE_FIELDS`, in key order (streamed)."""
        for row in self._db.execute(f"SELECT {', '.join(STORE_FIELDS)} FROM scores ORDER BY {', '.join(STORE_KEY)}"):
            yield {**dict(zip(STORE_FIELDS, row)), "value": _value(row[-2])}

    def stats(self) -> list[dict]:
        """One dict per (setting, metric, options): its rows and their total seconds."""
        group = ", ".join(STORE_KEY[:-1])
        query = (f"SELECT {group}, COUNT(*), SUM(seconds) FROM scores GROUP BY {group} ORDER BY {group}")
        return [{**dict(zip(STORE_KEY[:-1], row)), "rows": row[-2], "seconds": row[-1]}
                for row in self._db.execute(query)]

    def export(self, path: str | Path) -> int:
        """Write every row to the CSV ``path`` (values as Python reprs, exact); returns the row count."""
        path = Path(path)
        count = 0
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(STORE_FIELDS)
            for row in self.rows():
                writer.writerow([repr(v) if isinstance(v, float) else v for v in row.values()])
                count += 1
        return count

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on an exception): one atomic write."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


def _value(value: float | None) -> float:
    return float("nan") if value is None else value
