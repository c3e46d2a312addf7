"""The score store: the SQLite file of training-free scores every command reads before computing
and writes as it goes (default ``scores.db`` in the run's output directory, or one shared by
many runs with ``--store``)."""
from __future__ import annotations

import csv
import json
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from searchkit.errors import SearchkitError


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys: equal mappings give equal strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class ScoreSetting:
    """What a training-free score depends on besides the architecture and the metric.

    ``space``: search space name; ``build``: canonical JSON of the network options with the
    space's defaults filled in (:meth:`searchkit.scoring.ScoringRecipe.canonical_build`); ``dataset``: dataset
    name; ``batch``: the scoring batch's fingerprint (its contents: data seed, size, split);
    ``seed``: network initialisation seed; ``device``: device kind (``cpu``, ``cuda``).
    """

    space: str
    build: str
    dataset: str
    batch: str
    seed: int
    device: str

    @property
    def values(self) -> tuple[str, str, str, str, int, str]:
        """The fields in :data:`STORE_KEY` order (``dataclasses.astuple`` deep-copies: 45 us a call, and a
        benchmark run over the whole NB201 space looks up 160,000 scores)."""
        return self.space, self.build, self.dataset, self.batch, self.seed, self.device


#: Columns of the ``scores`` table (and of ``searchkit store export``), key columns first.
STORE_KEY = ("space", "build", "dataset", "batch", "seed", "device", "metric", "options", "arch")
STORE_FIELDS = (*STORE_KEY, "value", "seconds")
STORE_VERSION = 2
_SETTING = "space = ? AND build = ? AND dataset = ? AND batch = ? AND seed = ? AND device = ?"


class ScoreStore:
    """Training-free scores on SQLite: one row per (setting, metric, options, arch) -> value, seconds.

    Scores are deterministic, so a row is written once and never replaced (``INSERT OR IGNORE``;
    the first writer wins). ``seconds`` is what computing that metric alone took, which is what
    a run served from the store is charged. NaN values are stored as NULL and read back as NaN.

    Faults (every SQLite error becomes one :class:`SearchkitError` line naming the file and the
    fix, :meth:`_faults`): a damaged file is refused when opened (``PRAGMA quick_check``) or
    when met later (the check took 0.14 s for 125,000 rows, 23 MB); a full disk or a file-size limit rolls the transaction back, so every row
    committed before stays; a lock held longer than ``timeout`` by another process is reported.

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
        self.timeout = timeout
        with self._faults():
            self._db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        try:
            with self._faults():
                check = self._db.execute("PRAGMA quick_check").fetchone()[0]
                if check != "ok":
                    raise sqlite3.DatabaseError(f"quick_check: {check}")
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                version = self._db.execute("PRAGMA user_version").fetchone()[0]
                if version > STORE_VERSION:
                    raise SearchkitError(f"{self.path} was written by a newer searchkit (store version {version}); "
                                         "upgrade")
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS scores (space TEXT NOT NULL, build TEXT NOT NULL, dataset TEXT NOT "
                    "NULL, batch TEXT NOT NULL, seed INTEGER NOT NULL, device TEXT NOT NULL, metric TEXT NOT NULL, "
                    "options TEXT NOT NULL, arch TEXT NOT NULL, value REAL, seconds REAL NOT NULL, "
                    f"PRIMARY KEY ({', '.join(STORE_KEY)})) WITHOUT ROWID")
                if version < STORE_VERSION:
                    self._migrate(version)
        except SearchkitError:
            self._db.close()
            raise

    @contextmanager
    def _faults(self) -> Iterator[None]:
        """SQLite errors as one-line :class:`SearchkitError`: a file that is not a store or is
        damaged, a full disk or file-size limit (the transaction was rolled back: every row
        committed before is kept), a lock another process held for longer than ``timeout``."""
        try:
            yield
        except sqlite3.DatabaseError as err:
            code = getattr(err, "sqlite_errorcode", None)
            primary = None if code is None else code & 0xFF
            if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                message = (f"score store {self.path} stayed locked by another process for {self.timeout:.0f} s; "
                           "rerun (or resume) when it is less busy, or pass another --store")
            elif primary in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY,
                             sqlite3.SQLITE_CANTOPEN):
                message = (f"cannot write score store {self.path} ({err}): free disk space (or raise the file-size "
                           "limit, or make it writable), then resume; every score written before is kept")
            elif primary == sqlite3.SQLITE_NOTADB:
                message = f"{self.path} is not a searchkit score store ({err}); pass another --store"
            else:
                message = (f"score store {self.path} is damaged ({err}); move it aside and rerun (its scores are "
                           f"recomputed), or salvage its rows first: "
                           f"sqlite3 {self.path} .recover | sqlite3 recovered.db")
            raise SearchkitError(message) from None

    def _migrate(self, version: int) -> None:
        """Bring a store written by an older searchkit up to :data:`STORE_VERSION`.

        1 -> 2: metric options keep only what changes a value (the NTK's ``chunk_size`` left the
        key, :meth:`searchkit.metrics.base.Metric.key`).
        """
        with self._transaction():
            if version == 1:
                rows = self._db.execute("SELECT DISTINCT options FROM scores WHERE options LIKE '%chunk_size%'").fetchall()
                for (options,) in rows:
                    kept = {k: v for k, v in json.loads(options).items() if k != "chunk_size"}
                    self._db.execute("UPDATE OR IGNORE scores SET options = ? WHERE options = ?",
                                     (canonical_json(kept), options))
                    self._db.execute("DELETE FROM scores WHERE options = ?", (options,))
            self._db.execute(f"PRAGMA user_version = {STORE_VERSION}")

    def __enter__(self) -> "ScoreStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def __len__(self) -> int:
        with self._faults():
            return self._db.execute("SELECT COUNT(*) FROM scores").fetchone()[0]

    def get(self, setting: ScoreSetting, key: tuple[str, str], arch: str) -> tuple[float, float] | None:
        """(value, seconds) of ``arch`` under the metric ``key`` in ``setting``, or None."""
        with self._faults():
            row = self._db.execute(f"SELECT value, seconds FROM scores WHERE {_SETTING} AND metric = ? AND options = ? "
                                   "AND arch = ?", (*setting.values, *key, arch)).fetchone()
        return None if row is None else (_value(row[0]), row[1])

    def get_all(self, setting: ScoreSetting, keys: dict[str, tuple[str, str]], arch: str) -> dict[str, tuple[float, float]] | None:
        """label -> (value, seconds) for every metric of ``keys`` (label -> key), or None if any is missing.

        One primary-key lookup per metric: a query by setting and arch alone cannot use the key
        (metric and options come before arch in it) and scanned the setting's rows, 15 ms per
        architecture in a store of 48,000 rows, so exporting 15,625 rows took 4 minutes.
        """
        held = {label: self.get(setting, key, arch) for label, key in keys.items()}
        return None if any(value is None for value in held.values()) else held

    def put_many(self, setting: ScoreSetting, entries: Iterable[tuple[tuple[str, str], str, float, float]]) -> None:
        """Write (metric key, arch, value, seconds) entries in one transaction; existing rows are kept."""
        rows = [(*setting.values, *key, arch, float(value), float(seconds))
                for key, arch, value, seconds in entries]
        with self._transaction():
            self._db.executemany(f"INSERT OR IGNORE INTO scores ({', '.join(STORE_FIELDS)}) "
                                 f"VALUES ({', '.join('?' * len(STORE_FIELDS))})", rows)

    def put(self, setting: ScoreSetting, key: tuple[str, str], arch: str, value: float, seconds: float) -> None:
        self.put_many(setting, [(key, arch, value, seconds)])

    def rows(self) -> Iterator[dict]:
        """Every row as a dict of :data:`STORE_FIELDS`, in key order (streamed)."""
        with self._faults():
            query = f"SELECT {', '.join(STORE_FIELDS)} FROM scores ORDER BY {', '.join(STORE_KEY)}"
            for row in self._db.execute(query):
                yield {**dict(zip(STORE_FIELDS, row)), "value": _value(row[-2])}

    def stats(self) -> list[dict]:
        """One dict per (setting, metric, options): its rows and their total seconds."""
        group = ", ".join(STORE_KEY[:-1])
        query = (f"SELECT {group}, COUNT(*), SUM(seconds) FROM scores GROUP BY {group} ORDER BY {group}")
        with self._faults():
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
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on an exception): one atomic write,
        its errors as :meth:`_faults` says."""
        with self._faults():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise


def _value(value: float | None) -> float:
    return float("nan") if value is None else value
