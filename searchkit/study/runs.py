"""The resumable runner every study is built on: runs in ``OUT/runs/<name>/``, one row each in
``OUT/runs.csv``.

A :class:`Study` runs searches (:func:`~searchkit.engine.run_search`) and evaluations
(:func:`~searchkit.evaluation.run_evaluation`) into their own run directories and records one
row per finished run. Rerunning a study skips the runs that have a row, resumes a run whose
directory holds a config but no result (its history is replayed, its training continues from
the checkpoint), and starts the others. ``runs.csv`` is appended a row at a time; a last line
torn by a kill is dropped. A benchmark's matrix is a list of :class:`PlannedRun` (the plain and the
hardware-aware benchmark build theirs; ``benchmarks/replay_curves.py`` reruns them), run by
:meth:`Study.run_all`.
"""
from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from tqdm import tqdm

from searchkit.config import RunConfig
from searchkit.data.base import DatasetSplits
from searchkit.engine import SearchResult, run_search
from searchkit.errors import SearchkitError
from searchkit.evaluation import EvaluationRun, run_evaluation
from searchkit.rundir import complete_lines, write_atomic, writing
from searchkit.spaces.base import SearchSpace
from searchkit.store import ScoreStore


#: the least seconds between two rewrites of a benchmark's reports while it runs
REPORT_EVERY = 120.0


def dirname(*parts: Any) -> str:
    """A run directory name from its key parts, e.g. ``REA__kcc__s3`` (unsafe characters -> ``_``)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in "__".join(str(p) for p in parts))


@dataclass(frozen=True)
class PlannedRun:
    """One run of a benchmark's matrix: its directory name under ``runs/``, its config, whether it
    searches the benchmark's pool (training-free strategies do; training-based and one-shot ones do
    not), and ``row``: its ``runs.csv`` row from its finished search."""

    name: str
    config: RunConfig
    searches_pool: bool
    row: Callable[[SearchResult], dict]


class Study:
    """Runs in ``out/runs/<name>/`` with one row of ``fields`` each in ``out/runs.csv`` (the row's
    ``run`` field names the directory); ``progress``: the runs show their progress bars."""

    def __init__(self, out: str | Path, fields: Sequence[str], progress: bool = False) -> None:
        self.out, self.fields, self.progress = Path(out), tuple(fields), progress
        if "run" not in self.fields:
            raise ValueError("a study's rows need a 'run' field")

    @property
    def table(self) -> Path:
        return self.out / "runs.csv"

    def rows(self) -> list[dict]:
        """The complete rows of ``runs.csv``; a last line torn by a kill is dropped from the file."""
        if not self.table.exists():
            return []
        lines = complete_lines(self.table)
        reader = csv.DictReader(lines)
        if tuple(reader.fieldnames or ()) != self.fields:
            raise SearchkitError(f"{self.table} has other columns than this version writes ({', '.join(self.fields)}); "
                                 "use another --out")
        rows = [row for row in reader if row.get("run") and None not in row]
        if self.table.read_text() != "".join(lines):
            write_atomic(self.table, "".join(lines))
        return rows

    def done(self) -> set[str]:
        """The run directory names (under ``runs/``) that have a row."""
        return {Path(row["run"]).name for row in self.rows()}

    def record(self, row: dict) -> None:
        """Append one finished run's row."""
        new = not self.table.exists()
        with writing(self.table), self.table.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, self.fields)
            if new:
                writer.writeheader()
            writer.writerow(row)

    def rewrite(self, rows: list[dict]) -> None:
        """Replace ``runs.csv`` with ``rows`` (atomically)."""
        text = io.StringIO()
        writer = csv.DictWriter(text, self.fields)  # the lines record() appends
        writer.writeheader()
        writer.writerows(rows)
        write_atomic(self.table, text.getvalue())

    def path(self, name: str) -> Path:
        return self.out / "runs" / name

    def search(self, name: str, config: RunConfig, space: SearchSpace | None = None,
               store: ScoreStore | None = None) -> SearchResult:
        """Run (or resume, or replay to completion) the search ``config`` in ``runs/<name>/``."""
        run_dir = self.path(name)
        if (run_dir / "config.yaml").is_file():  # started before: replay its history, continue, evaluate
            return run_search(resume=run_dir, progress=self.progress, space=space, store=store)
        return run_search(config, out=run_dir, progress=self.progress, space=space, store=store)

    def run(self, planned: PlannedRun, pool: SearchSpace, store: ScoreStore) -> dict:
        """Search (or resume) ``planned`` in its directory, on ``pool`` if it searches one; its row."""
        result = self.search(planned.name, planned.config, space=pool if planned.searches_pool else None, store=store)
        return planned.row(result)

    def run_all(self, planned: Sequence[PlannedRun], pool: SearchSpace, store: ScoreStore, report: Callable[[], None],
                every: float = REPORT_EVERY, progress: bool = True, desc: str = "benchmark") -> None:
        """Run and record every planned run without a row, calling ``report()`` at most every ``every``
        seconds while they run (an interrupted benchmark still reports) and at the end."""
        done = self.done()
        written = time.monotonic()
        for run in tqdm([r for r in planned if r.name not in done], desc=desc, unit="run", disable=not progress):
            self.record(self.run(run, pool, store))
            if time.monotonic() - written >= every:
                report()
                written = time.monotonic()
        report()

    def evaluate(self, name: str, config: RunConfig, arch: str, splits: DatasetSplits | None = None) -> EvaluationRun:
        """Evaluate (or resume evaluating) ``arch`` under ``config`` in ``runs/<name>/`` (``splits``:
        the dataset, if not the config's)."""
        run_dir = self.path(name)
        if (run_dir / "config.yaml").is_file():
            return run_evaluation(None, resume=run_dir, progress=self.progress, splits=splits)
        return run_evaluation(config, arch, out=run_dir, progress=self.progress, splits=splits)
