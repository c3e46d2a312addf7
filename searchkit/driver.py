"""The one search loop: a strategy's queries answered by oracles within a budget.

:class:`Driver` owns everything between a strategy and the oracles, for every caller (the engine,
the benchmark, the tests): dispatch by query kind, the budget, replay of an earlier history
(resume), prefetching the scores a strategy asks for at once, repeats, and the incumbent.

* Dispatch: each query goes to ``oracles[query.kind]``; the oracle's own ``kind`` is the history
  row's (a training-based run answers score queries with the validation oracle).
* Budget (:class:`~searchkit.config.BudgetConfig`): the search stops when the queries answered
  (repeats included) reach ``archs``, the training-free wall seconds charged reach ``seconds``,
  the simulated training seconds reach ``simulated_seconds``, or the elapsed wall time reaches
  ``wall_seconds``; a query whose known cost (``oracle.cost``) would overrun the simulated
  budget is not started, nor one whose estimated wall time would overrun ``wall_seconds``
  (the estimate: for a score, the mean wall time per cell so far in this session; for a
  validation or an ask, the longest so far; else the plan's measured ``expected`` cost; a score
  already computed ahead costs nothing more). The longest for validations: they are alike (the
  same epochs on the same data), and a shared machine's slow moments should not overrun the
  budget by one of them; the mean for scores: cells differ, each is small, and one slow chunk
  (e.g. a worker starting) must not shrink every later one. A first
  score is always answered (a search must select something; the plan warns when its measurements
  alone used up the budget). The strategy's own work counts too: no ask is made when its longest
  so far plus the cheapest query would overrun the budget.
* Wall time: ``spent_before`` (e.g. the plan's measurements) plus the elapsed time of this
  session, plus, for replayed rows, the time they were charged (their training seconds only
  where the validate oracle's are measured, ``oracle.measured``: a table's are simulated), an
  estimate for an interrupted run; a finished run resumed passes its recorded elapsed time
  instead. A replay is never cut short by the wall budget.
* Prefetch: the score queries of one ask not yet answered are handed to the score oracle
  together (a parallel scorer works on them at once): all of them within ``archs``, and under
  a wall budget in chunks that fit the time left (at most :data:`PREFETCH_SHARE` of the
  budget's worth of scoring each), so that scoring ahead cannot overrun it. The first chunk, one
  cell per worker, also starts the workers: its time counts, but not as a cell's estimate.
* Repeats: a query answered earlier in the run is answered from its row and charged nothing;
  :data:`MAX_REPEATS` in a row end the search (a strategy cycling over what it already knows).
* Replay: the first ``len(replay)`` queries are answered from those rows without any oracle;
  strategies are deterministic given their answers, so a resumed run equals an uninterrupted
  one. A query that differs from its row is a resume of another search (SearchkitError).
* Incumbent (:class:`Incumbent`): the best validated architecture once any was validated, else
  the best scored; ties keep the earlier.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

from tqdm import tqdm

from searchkit.config import BudgetConfig
from searchkit.errors import SearchkitError
from searchkit.spaces.base import SearchSpace
from searchkit.rundir import HistoryRow
from searchkit.strategies.base import Answer, OneShot, Query, Score, Strategy

#: A search stops after this many consecutive repeated queries: they are free, so a strategy
#: cycling over architectures it has already queried would otherwise never end.
MAX_REPEATS = 1000
#: Under a wall budget, one prefetched chunk of scores holds at most this share of the budget.
PREFETCH_SHARE = 0.05


@dataclass
class Reply:
    """An oracle's answer: the value, the strategy's extra metrics, the architecture a one-shot
    search selected (encoded), and the cost charged: training-free wall ``seconds`` and training
    ``simulated_seconds`` (the table's recorded time, or a real training's measured time)."""

    value: float
    seconds: float = 0.0
    simulated_seconds: float = 0.0
    extras: dict[str, float] = field(default_factory=dict)
    arch: str | None = None


class Oracle(Protocol):
    """Answers one kind of query. ``kind``: the history rows it writes (score, validate, oneshot);
    ``quantity``: what its values are, for messages ("kcc", "validation accuracy (%)")."""

    kind: str
    quantity: str

    def __call__(self, query: Query, text: str | None) -> Reply: ...

    def cost(self, text: str) -> float | None:
        """The simulated seconds answering ``text`` will be charged, when known in advance."""

    def prefetch(self, texts: list[str]) -> None:
        """Start computing these answers ahead (a parallel scorer); a no-op otherwise."""


@dataclass
class Incumbent:
    """The run's answer so far: the best validated architecture once any was validated, else the
    best scored (one-shot answers count as scored); ties keep the earlier. Values are kept per
    row kind with the oracle's quantity, so a number always says what it is. A validation that
    is not finite (a diverged training) is no accuracy and never becomes the incumbent."""

    best: dict[str, tuple[float, str, str]] = field(default_factory=dict)  # group -> (value, arch, quantity)

    def update(self, row: HistoryRow, quantity: str) -> None:
        group = "validate" if row.kind == "validate" else "score"
        if group == "validate" and not math.isfinite(row.score):
            return
        if group not in self.best or row.score > self.best[group][0]:
            self.best[group] = (row.score, row.arch, quantity)

    @property
    def _entry(self) -> tuple[float, str, str] | None:
        return self.best.get("validate") or self.best.get("score")

    @property
    def arch(self) -> str | None:
        return None if self._entry is None else self._entry[1]

    @property
    def value(self) -> float:
        return float("nan") if self._entry is None else self._entry[0]

    @property
    def quantity(self) -> str:
        return "" if self._entry is None else self._entry[2]

    @property
    def selected_by(self) -> str:
        """``validation`` or ``score``: which oracle's value chose the answer."""
        return "validation" if "validate" in self.best else "score"

    def describe(self) -> str:
        """``kcc=0.9964`` or ``validation accuracy (%)=93.31``."""
        return "" if self._entry is None else f"{self.quantity}={self.value:.4g}"


def incumbent_curve(rows: Iterable[HistoryRow], simulated_only: bool = False) -> list[tuple[float, str]]:
    """(cumulative search cost, incumbent arch) after every row; cost = training-free wall
    seconds + simulated seconds (``simulated_only``: simulated training seconds alone)."""
    incumbent, curve, cost = Incumbent(), [], 0.0
    for row in rows:
        cost += row.simulated_seconds + (0.0 if simulated_only else row.seconds)
        incumbent.update(row, "")
        curve.append((cost, incumbent.arch))
    return curve


@dataclass
class SearchLog:
    """What a driven search produced: every row answered (replayed ones included), the
    incumbent, and the costs charged (``strategy_seconds``: the strategy's own bookkeeping,
    e.g. fitting a GP; reported, not budgeted); ``wall_seconds``: the search's elapsed wall time
    as the wall budget counts it."""

    history: list[HistoryRow]
    incumbent: Incumbent
    seconds: float
    simulated_seconds: float
    strategy_seconds: float
    wall_seconds: float = 0.0

    def count(self, kind: str) -> int:
        return sum(row.kind == kind for row in self.history)

    @property
    def unique_archs(self) -> int:
        return len({row.arch for row in self.history})


class Driver:
    """Runs ``strategy`` against ``oracles`` (query kind -> oracle) within ``budget``.

    ``replay``: rows of an earlier run of the same search to answer from; ``record(row)``: called
    with every newly answered row (the run's history file); ``index(text)``: the architecture's
    benchmark index for the rows (or None); ``progress``: show a progress bar. ``expected``: the
    measured wall seconds of one query by kind (``score``, ``validate``; :mod:`searchkit.plan`),
    the estimate before the run has its own; ``spent_before``: wall seconds already spent on
    this search (the plan's measurements; a finished run's elapsed time when it is resumed,
    with ``charge_replay=False``: its replayed rows are in it already).
    """

    def __init__(self, strategy: Strategy, space: SearchSpace, oracles: Mapping[str, Oracle], budget: BudgetConfig,
                 replay: Sequence[HistoryRow] = (), record: Callable[[HistoryRow], None] = lambda row: None,
                 index: Callable[[str], int | None] = lambda text: None, progress: bool = False,
                 expected: Mapping[str, float] | None = None, spent_before: float = 0.0,
                 charge_replay: bool = True) -> None:
        self.strategy, self.space, self.oracles, self.budget = strategy, space, oracles, budget
        self.replay, self.record, self.index, self.progress = list(replay), record, index, progress
        self.expected, self.charge_replay = dict(expected or {}), charge_replay
        self.history: list[HistoryRow] = []
        self.answered: dict[tuple[str, str], HistoryRow] = {}
        self.incumbent = Incumbent()
        self.spent = {"seconds": 0.0, "simulated_seconds": 0.0, "strategy": 0.0, "wall": spent_before}
        self.repeats = 0
        self.prefetched: set[str] = set()
        self.walls: dict[str, tuple[float, int, float]] = {}  # kind -> (total, count, longest) wall seconds
        self._clock = time.perf_counter()

    def wall(self) -> float:
        """Wall seconds spent on the search: before, replayed, and elapsed in this session."""
        return self.spent["wall"] + time.perf_counter() - self._clock

    def estimate(self, kind: str) -> float:
        """The expected wall seconds of one new query of ``kind`` (see the module docstring): this
        session's mean for scores, its longest for the rest, else ``expected``."""
        if kind not in self.walls:
            return self.expected.get(kind, 0.0)
        total, count, longest = self.walls[kind]
        return total / count if kind == Score.kind else longest

    def run(self) -> SearchLog:
        self._clock = time.perf_counter()
        bar = tqdm(total=self.budget.archs, disable=not self.progress, desc="search", unit="query")
        try:
            stopped = False
            while not stopped and not self.exhausted() and not self._ask_would_overrun():
                start = time.perf_counter()
                asks = self._timed(self.strategy.ask)
                self._charge_wall("ask", time.perf_counter() - start)
                if not asks:
                    break
                for i, query in enumerate(asks):
                    if self.exhausted():
                        break
                    self._prefetch(asks[i:])
                    row = self.answer(query)
                    if row is None:  # the next query would overrun the simulated or the wall budget
                        stopped = True
                        break
                    arch = self.space.decode(row.arch) if isinstance(query, OneShot) else query.arch
                    self._timed(lambda: self.strategy.tell(query, Answer(arch, row.score, row.extras)))
                    bar.update(1)
                    bar.set_postfix_str(f"best {self.incumbent.describe()}")
        finally:
            bar.close()
        return SearchLog(self.history, self.incumbent, self.spent["seconds"], self.spent["simulated_seconds"],
                         self.spent["strategy"], self.wall())

    def exhausted(self) -> bool:
        b, spent = self.budget, self.spent
        return (self.repeats >= MAX_REPEATS or (b.archs is not None and len(self.history) >= b.archs)
                or (b.seconds is not None and spent["seconds"] >= b.seconds)
                or (b.simulated_seconds is not None and spent["simulated_seconds"] >= b.simulated_seconds)
                or (b.wall_seconds is not None and self._live() and self.wall() >= b.wall_seconds))

    def _live(self) -> bool:
        """Whether the search is past its replayed rows and has an answer (the wall budget may
        stop it; a replay is never cut short, it costs nothing)."""
        return bool(self.history) and len(self.history) >= len(self.replay)

    def _ask_would_overrun(self) -> bool:
        """Whether the strategy's next ask (e.g. a GP fit), at its longest so far, and the cheapest
        query after it would overrun the wall budget."""
        if self.budget.wall_seconds is None or not self._live():
            return False
        cheapest = min(self.estimate(kind) for kind in self.oracles)
        return self.wall() + self.estimate("ask") + cheapest > self.budget.wall_seconds

    def _would_overrun(self, oracle: Oracle, query: Query, text: str | None) -> bool:
        """Whether a new answer to ``query`` would overrun the simulated budget (its known cost)
        or the wall budget (its estimated wall time; a one-shot search sizes itself)."""
        cost = None if text is None else oracle.cost(text)
        limit = self.budget.simulated_seconds
        if limit is not None and cost is not None and self.spent["simulated_seconds"] + cost > limit:
            return True
        if self.budget.wall_seconds is None or isinstance(query, OneShot) or text in self.prefetched \
                or (not self.history and isinstance(query, Score)):
            return False
        return self.wall() + self.estimate(query.kind) > self.budget.wall_seconds

    def answer(self, query: Query) -> HistoryRow | None:
        """The row answering ``query`` (replayed, repeated or new), or None when a new answer would
        overrun the simulated or the wall budget. The row is recorded and charged."""
        oracle = self.oracles.get(query.kind)
        if oracle is None:
            raise SearchkitError(f"strategy {self.strategy.name!r} asked a {query.kind} query, which this run "
                                 f"cannot answer (it answers {', '.join(self.oracles)})")
        step = len(self.history)
        text = None if isinstance(query, OneShot) else self.space.encode(query.arch)
        if step < len(self.replay):
            row = self.replay[step]
            if row.kind != oracle.kind or (text is not None and row.arch != text):
                raise SearchkitError(f"cannot resume: the run's history diverges from this search at step {step}")
            if self.charge_replay:
                self.spent["wall"] += row.seconds + (row.simulated_seconds if getattr(oracle, "measured", False) else 0.0)
        elif text is not None and (oracle.kind, text) in self.answered:
            first = self.answered[(oracle.kind, text)]
            row = HistoryRow(step, text, first.index, first.score, 0.0, True, oracle.kind, extras=dict(first.extras))
            self.record(row)
        else:
            if self._would_overrun(oracle, query, text):
                return None
            start = time.perf_counter()
            reply = oracle(query, text)
            if text not in self.prefetched:
                self._charge_wall(query.kind, time.perf_counter() - start)
            text = text if reply.arch is None else reply.arch
            row = HistoryRow(step, text, self.index(text), reply.value, reply.seconds, False, oracle.kind,
                             reply.simulated_seconds, dict(reply.extras))
            self.record(row)
        self.history.append(row)
        self.answered.setdefault((row.kind, row.arch), row)
        self.repeats = self.repeats + 1 if row.cached else 0
        self.spent["seconds"] += row.seconds
        self.spent["simulated_seconds"] += row.simulated_seconds
        self.incumbent.update(row, oracle.quantity)
        return row

    def _charge_wall(self, kind: str, seconds: float, count: int = 1) -> None:
        """Record the wall ``seconds`` of ``count`` new answers (or asks) for :meth:`estimate`."""
        total, done, longest = self.walls.get(kind, (0.0, 0, 0.0))
        self.walls[kind] = (total + seconds, done + count, max(longest, seconds / count))

    def _prefetch(self, pending: list[Query]) -> None:
        """When ``pending[0]`` is a score not yet computed ahead, hand the unanswered score queries
        of ``pending`` (within the arch budget; under a wall budget, a chunk that fits: see the
        module docstring) to the score oracle at once, so a parallel scorer works on them together."""
        oracle = self.oracles.get(Score.kind)
        workers = 1 if oracle is None else getattr(oracle, "parallelism", 1)
        if workers == 1 or not isinstance(pending[0], Score) or self.space.encode(pending[0].arch) in self.prefetched:
            return
        replayed = {row.arch for row in self.replay}
        texts = [t for t in dict.fromkeys(self.space.encode(q.arch) for q in pending if isinstance(q, Score))
                 if (oracle.kind, t) not in self.answered and t not in replayed and t not in self.prefetched]
        if self.budget.archs is not None:
            texts = texts[:max(0, self.budget.archs - len(self.history))]
        first = not self.prefetched  # the first chunk also starts the workers
        if self.budget.wall_seconds is not None:
            per_cell = self.estimate(Score.kind)  # wall seconds per cell, the workers' parallelism included
            room = min(self.budget.wall_seconds - self.wall(), PREFETCH_SHARE * self.budget.wall_seconds)
            texts = texts[:workers if first or per_cell <= 0 else max(workers, int(room / per_cell))]
        if texts:
            start = time.perf_counter()
            oracle.prefetch(texts)
            self.prefetched.update(texts)
            if not first:
                self._charge_wall(Score.kind, time.perf_counter() - start, len(texts))

    def _timed(self, call: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            return call()
        finally:
            self.spent["strategy"] += time.perf_counter() - start
