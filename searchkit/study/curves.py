"""The incumbent curves of a study's runs, kept in ``OUT/curves.csv`` so that the anytime tables and
plots do not need the run directories (``OUT/runs/`` holds every score of every run and is not
committed; a report rebuilt on a fresh clone from ``runs.csv`` alone would have no curves).

A curve is :func:`~searchkit.driver.incumbent_curve` of the run's history, for each cost axis:
``simulated`` (simulated training seconds alone) and ``total`` (plus training-free wall seconds).
Only its change points are stored (the first point, every point where the incumbent changes, the
last point): the incumbent at any cost, and so every anytime figure, is the same as from the full
curve. Columns: ``run, cost_of, points, cost, arch``; ``points`` (the curve's length on every row)
tells a curve cut short by a kill, which is dropped on reading and kept again from its history.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from searchkit.driver import incumbent_curve
from searchkit.rundir import RunDir, complete_lines, write_atomic, writing

FILE = "curves.csv"
FIELDS = ("run", "cost_of", "points", "cost", "arch")
Curve = list[tuple[float, str]]


def change_points(curve: Curve) -> Curve:
    """The first point, every point whose incumbent differs from the previous one, and the last point."""
    kept = [point for k, point in enumerate(curve) if k == 0 or point[1] != curve[k - 1][1]]
    if curve and kept[-1] != curve[-1]:
        kept.append(curve[-1])
    return kept


class Curves:
    """``OUT/curves.csv``, read once: :meth:`get` a run's curve, :meth:`keep` a finished run's."""

    def __init__(self, out: str | Path) -> None:
        self.out, self.path = Path(out), Path(out) / FILE
        self._curves: dict[tuple[str, bool], Curve] = {}
        if not self.path.exists():
            return
        lines = complete_lines(self.path)  # without a last line torn by a kill
        rows = list(csv.DictReader(lines))
        points: dict[tuple[str, bool], int] = {}
        for row in rows:
            key = (row["run"], row["cost_of"] == "simulated")
            self._curves.setdefault(key, []).append((float(row["cost"]), row["arch"]))
            points[key] = int(row["points"])
        cut = {run for (run, simulated), curve in self._curves.items()
               if len(curve) != points[(run, simulated)] or (run, not simulated) not in self._curves}
        self._curves = {key: curve for key, curve in self._curves.items() if key[0] not in cut}
        if cut or self.path.read_text() != "".join(lines):  # drop what a kill cut short before appending
            text = io.StringIO()
            writer = csv.DictWriter(text, FIELDS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(row for row in rows if row["run"] not in cut)
            write_atomic(self.path, text.getvalue())

    def stored(self, run: str) -> bool:
        """Whether ``curves.csv`` holds the curves of ``run``."""
        return (run, True) in self._curves

    def get(self, run: str, simulated_only: bool) -> Curve | None:
        """The curve of ``run`` (a ``run`` field of ``runs.csv``): stored, else from its history (and then
        stored), else None (neither is here)."""
        if (run, simulated_only) not in self._curves and not self.keep(run):
            return None
        return self._curves[(run, simulated_only)]

    def keep(self, run: str) -> bool:
        """Store both curves of ``run`` from its history unless stored already; False when its
        directory holds no history."""
        if self.stored(run):
            return True
        history = RunDir(self.out / run).read_history()
        if not history:
            return False
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        if not self.path.exists():
            writer.writerow(FIELDS)
        for simulated_only in (True, False):
            curve = change_points(incumbent_curve(history, simulated_only=simulated_only))
            self._curves[(run, simulated_only)] = curve
            writer.writerows((run, "simulated" if simulated_only else "total", len(curve), repr(cost), arch)
                             for cost, arch in curve)
        with writing(self.path), self.path.open("a", newline="") as handle:
            handle.write(text.getvalue())
        return True
