"""What a study's reports need of each run's history, kept beside ``runs.csv`` so that the anytime
tables and the plots do not need the run directories (``OUT/runs/`` holds every score of every run and
is not committed; a report rebuilt on a fresh clone from ``runs.csv`` alone would have nothing to draw).

:class:`RunSeries` is one CSV of named series per run, appended one run at a time from its history.
Each row carries ``points``, its series' length, so a series cut short by a kill (or a run missing
one of its series) is dropped on reading and kept again from its history. Two kinds:

* :class:`Curves` (``curves.csv``): :func:`~searchkit.driver.incumbent_curve` of the run's history for
  each cost axis, ``simulated`` (simulated training seconds alone) and ``total`` (plus training-free
  wall seconds). Columns: ``run, cost_of, points, cost, arch``.
* :class:`Fronts` (``fronts.csv``): the run's found front (:func:`~searchkit.front.found_front`) as it
  grew. Columns: ``run, series, points, wall, simulated, front``: the seconds spent on each axis and
  the front (``index:cost`` pairs joined by ``;``) after an answer.

Only change points are stored (the first point, every point where the value changes, the last point):
the value at any cost, and so every anytime figure and hypervolume curve, is the same as from every
point.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import ClassVar, Sequence

from searchkit.driver import incumbent_curve
from searchkit.front import found_front
from searchkit.rundir import HistoryRow, RunDir, complete_lines, write_atomic, writing
from searchkit.strategies.base import COST

Curve = list[tuple[float, str]]
#: (wall seconds, simulated seconds, found front as (index, cost) pairs) after an answer
FrontPoint = tuple[float, float, list[tuple[int, float]]]


def front_pairs(front: Sequence[HistoryRow]) -> list[tuple[int, float]]:
    """(index, cost) of each row of a found front (:func:`~searchkit.front.found_front`)."""
    return [(row.index, row.extras[COST]) for row in front]


def change_points(curve: list[tuple]) -> list[tuple]:
    """The first point, every point whose value (its last item) differs from the previous one's, and the last point."""
    kept = [point for k, point in enumerate(curve) if k == 0 or point[-1] != curve[k - 1][-1]]
    if curve and kept[-1] != curve[-1]:
        kept.append(curve[-1])
    return kept


class RunSeries:
    """``OUT/<file>``, read once: :meth:`keep` a finished run's series, :meth:`stored` whether they are here.

    Subclasses name the file, its ``fields`` (``run``, the series name, ``points``, then a point's
    values) and the ``series`` every run has, and compute them in :meth:`from_history`.
    """

    file: ClassVar[str]
    fields: ClassVar[tuple[str, ...]]
    series: ClassVar[tuple[str, ...]]

    def __init__(self, out: str | Path) -> None:
        self.out, self.path = Path(out), Path(out) / self.file
        self._series: dict[tuple[str, str], list[tuple[str, ...]]] = {}
        if not self.path.exists():
            return
        lines = complete_lines(self.path)  # without a last line torn by a kill
        rows = list(csv.reader(lines))[1:]
        points: dict[tuple[str, str], int] = {}
        for run, name, length, *values in rows:
            self._series.setdefault((run, name), []).append(tuple(values))
            points[(run, name)] = int(length)
        runs = {run for run, _ in self._series}
        cut = {run for run in runs if any(len(self._series.get((run, name), [])) != points.get((run, name))
                                          for name in self.series)}
        self._series = {key: values for key, values in self._series.items() if key[0] not in cut}
        if cut or self.path.read_text() != "".join(lines):  # drop what a kill cut short before appending
            text = io.StringIO()
            writer = csv.writer(text, lineterminator="\n")
            writer.writerow(self.fields)
            writer.writerows(row for row in rows if row[0] not in cut)
            write_atomic(self.path, text.getvalue())

    def stored(self, run: str) -> bool:
        """Whether the file holds the series of ``run`` (a ``run`` field of ``runs.csv``)."""
        return (run, self.series[0]) in self._series

    def values(self, run: str, name: str) -> list[tuple[str, ...]] | None:
        """Series ``name`` of ``run`` as stored (text): stored, else from its history (and then stored),
        else None (neither is here)."""
        if not self.stored(run) and not self.keep(run):
            return None
        return self._series[(run, name)]

    def keep(self, run: str) -> bool:
        """Store every series of ``run`` from its history unless stored already; False when its
        directory holds no history."""
        if self.stored(run):
            return True
        history = RunDir(self.out / run).read_history()
        if not history:
            return False
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        if not self.path.exists():
            writer.writerow(self.fields)
        for name, points in self.from_history(history).items():
            self._series[(run, name)] = [tuple(str(v) for v in point) for point in points]
            writer.writerows((run, name, len(points), *point) for point in self._series[(run, name)])
        with writing(self.path), self.path.open("a", newline="") as handle:
            handle.write(text.getvalue())
        return True

    def from_history(self, history: Sequence[HistoryRow]) -> dict[str, list[tuple]]:
        """Every series of a run, by name, as points whose values are written as text."""
        raise NotImplementedError


class Curves(RunSeries):
    """``OUT/curves.csv``: each run's incumbent curves (module docstring)."""

    file = "curves.csv"
    fields = ("run", "cost_of", "points", "cost", "arch")
    series = ("simulated", "total")

    def get(self, run: str, simulated_only: bool) -> Curve | None:
        """The incumbent curve of ``run`` against simulated seconds alone or against both (None: neither
        stored nor in its directory)."""
        values = self.values(run, "simulated" if simulated_only else "total")
        return None if values is None else [(float(cost), arch) for cost, arch in values]

    def from_history(self, history: Sequence[HistoryRow]) -> dict[str, list[tuple]]:
        return {name: [(repr(cost), arch) for cost, arch in
                       change_points(incumbent_curve(history, simulated_only=name == "simulated"))]
                for name in self.series}


class Fronts(RunSeries):
    """``OUT/fronts.csv``: each run's found front as it grew (module docstring)."""

    file = "fronts.csv"
    fields = ("run", "series", "points", "wall", "simulated", "front")
    series = ("front",)

    def get(self, run: str) -> list[FrontPoint] | None:
        """The found front of ``run`` after each answer that changed it (None: neither stored nor in its directory)."""
        values = self.values(run, "front")
        if values is None:
            return None
        return [(float(wall), float(simulated),
                 [(int(index), float(cost)) for index, cost in (pair.split(":") for pair in front.split(";") if pair)])
                for wall, simulated, front in values]

    def from_history(self, history: Sequence[HistoryRow]) -> dict[str, list[tuple]]:
        points, wall, simulated = [], 0.0, 0.0
        for k, row in enumerate(history):
            wall, simulated = wall + row.seconds, simulated + row.simulated_seconds
            if not row.cached:
                front = ";".join(f"{index}:{cost!r}" for index, cost in front_pairs(found_front(history[:k + 1])))
                points.append((repr(wall), repr(simulated), front))
        return {"front": change_points(points)}
