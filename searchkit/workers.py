"""Scoring many architectures through the score store: in this process, in worker processes, or
on a Ray cluster.

Every backend computes what :meth:`searchkit.scoring.ScoringContext.score` computes in this process: a network is
built from the init seed alone (:func:`~searchkit.runtime.build_network`) and no metric draws
random numbers, so a value does not depend on which worker scored the architecture or when.
Values are bit-identical across backends when every scoring process runs the same number of
torch intra-op threads (``Parallel.threads``): BLAS reductions split differently with more
threads and then differ in the last bits.

The unit of work is a task (architecture text, draw): draw d's network and batch
(:meth:`~searchkit.scoring.ScoringContext.score`).

Only the parent process touches the :class:`~searchkit.store.ScoreStore`: workers return
results and :meth:`searchkit.scoring.ScoreRunner.scores` writes each one as it arrives (one
transaction per architecture), so a killed run keeps every score it received.
"""
from __future__ import annotations

import os
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

import torch

from searchkit.errors import SearchkitError

if TYPE_CHECKING:
    from searchkit.scoring import ScoringContext, ScoringRecipe

BACKENDS = ("serial", "process", "ray")
#: How many times a backend replaces workers that died (a killed process, a lost Ray actor).
MAX_RESTARTS = 3
RAY_MISSING = 'the ray backend needs Ray; install it with: pip install -e ".[ray]"'

#: (architecture text, draw): one network to score.
Task = tuple[str, int]
#: label -> (value, seconds that metric alone took), and the measured seconds of the whole network.
Scored = tuple[dict[str, tuple[float, float]], float]


@dataclass(frozen=True)
class Parallel:
    """How architectures are scored.

    ``backend``: ``serial`` (this process), ``process`` (``workers`` spawned processes on this
    machine; with several CUDA devices, worker k uses ``cuda:k mod count``) or ``ray``
    (``workers`` actors on the Ray cluster at ``address``, a local one when None; each actor
    asks for one CPU, and one GPU when scoring on CUDA). ``threads``: torch intra-op threads
    per scoring process (None: serial keeps torch's setting, worker processes get
    cores // workers, Ray actors 1).
    """

    backend: str = "serial"
    workers: int = 1
    address: str | None = None
    threads: int | None = None

    @classmethod
    def resolve(cls, backend: str | None = None, workers: int | None = None, address: str | None = None,
                threads: int | None = None) -> "Parallel":
        """Check the CLI flags; no backend means ``process`` with more than one worker, else ``serial``."""
        if workers is not None and workers < 1:
            raise SearchkitError(f"--workers must be at least 1, got {workers}")
        if threads is not None and threads < 1:
            raise SearchkitError(f"--threads must be at least 1, got {threads}")
        workers = workers or 1
        backend = backend or ("process" if workers > 1 else "serial")
        if backend not in BACKENDS:
            raise SearchkitError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if backend == "serial" and workers > 1:
            raise SearchkitError("--backend serial scores in this process; drop --workers or use --backend process or ray")
        if address is not None and backend != "ray":
            raise SearchkitError("--address names a Ray cluster; use it with --backend ray")
        return cls(backend, workers, address, threads)


def open_backend(context: ScoringContext, parallel: Parallel) -> Any:
    """The scoring backend ``parallel`` names for ``context`` (:meth:`map` texts -> results, :meth:`close`)."""
    if parallel.backend == "process":
        return _ProcessBackend(context.recipe, parallel)
    if parallel.backend == "ray":
        return _RayBackend(context.recipe, parallel)
    return _SerialBackend(context, parallel.threads)


class _SerialBackend:
    def __init__(self, context: ScoringContext, threads: int | None) -> None:
        self.context, self._threads = context, torch.get_num_threads()
        if threads is not None:
            torch.set_num_threads(threads)

    def map(self, tasks: list[Task]) -> Iterator[tuple[Task, Scored]]:
        return ((task, self.context.score(*task)) for task in tasks)

    def ready(self) -> None:
        """Nothing to start."""

    def close(self) -> None:
        torch.set_num_threads(self._threads)


def _windowed(tasks: list[Task], submit: Callable[[Task], Any], done: Callable[[list], list[tuple[Any, Scored]]],
              window: int) -> Iterator[tuple[Task, Scored]]:
    """Submit ``tasks`` keeping at most ``window`` in flight; yield (task, result) as they complete.
    ``done(handles)`` waits for at least one handle and returns the finished ones with results."""
    pending: dict[Any, Task] = {}

    def finished() -> Iterator[tuple[Task, Scored]]:
        for handle, result in done(list(pending)):
            yield pending.pop(handle), result

    for task in tasks:
        pending[submit(task)] = task
        if len(pending) >= window:
            yield from finished()
    while pending:
        yield from finished()


# --- worker processes on this machine ----------------------------------------------------------

_WORKER: ScoringContext | None = None


def _open_quietly(recipe: ScoringRecipe, device: str | None = None) -> ScoringContext:
    """``recipe.open`` in a worker, without the dataset's warnings (class imbalance, skipped files):
    the parent opened the same recipe first and said them once."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return recipe.open(device=device)


def _init_worker(recipe: ScoringRecipe, threads: int, slots: Any) -> None:
    global _WORKER
    torch.set_num_threads(threads)
    slot = slots.get()
    device = recipe.device
    if device == "cuda" and torch.cuda.device_count() > 1:
        device = f"cuda:{slot % torch.cuda.device_count()}"
    _WORKER = _open_quietly(recipe, device)


def _score_in_worker(task: Task) -> Scored:
    return _WORKER.score(*task)


def _worker_ready(_: int) -> int:
    """A task that holds its worker a moment, so that ``workers`` of them start every worker."""
    time.sleep(0.1)
    return os.getpid()


class _ProcessBackend:
    """``workers`` spawned processes. A worker that dies (killed, out of memory) breaks the pool:
    the pool is started again and the architectures not yet returned are scored again, at most
    :data:`MAX_RESTARTS` times per backend; every result returned before was already written."""

    def __init__(self, recipe: ScoringRecipe, parallel: Parallel) -> None:
        self.recipe, self.workers, self.restarts = recipe, parallel.workers, 0
        self.threads = parallel.threads or max(1, (os.cpu_count() or 1) // parallel.workers)
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        slots = context.Queue()
        for slot in range(self.workers):
            slots.put(slot)
        return ProcessPoolExecutor(self.workers, mp_context=context, initializer=_init_worker,
                                   initargs=(self.recipe, self.threads, slots))

    def map(self, tasks: list[Task]) -> Iterator[tuple[Task, Scored]]:
        def done(futures: list) -> list[tuple[Any, Scored]]:
            return [(f, f.result()) for f in wait(futures, return_when=FIRST_COMPLETED).done]

        left = dict.fromkeys(tasks)
        while True:
            try:
                for task, result in _windowed(list(left), lambda t: self._pool.submit(_score_in_worker, t), done,
                                              2 * self.workers):
                    del left[task]
                    yield task, result
                return
            except BrokenProcessPool:
                self.restarts += 1
                if self.restarts > MAX_RESTARTS:
                    raise SearchkitError(f"scoring worker processes died {self.restarts} times (killed, or out of "
                                         "memory: try fewer --workers); every score returned before is stored, "
                                         "resume the run") from None
                warnings.warn(f"a scoring worker process died (killed, or out of memory); restarting the workers "
                              f"and scoring the {len(left)} unfinished (architecture, draw) tasks again", stacklevel=2)
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._start()

    def ready(self) -> None:
        """Start every worker process (each loads the dataset once) and wait until they are up."""
        list(self._pool.map(_worker_ready, range(self.workers)))

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)


# --- Ray actors ------------------------------------------------------------------------------------

class _RayScorer:
    """A Ray actor holding one loaded :class:`ScoringContext`."""

    def __init__(self, recipe: ScoringRecipe, threads: int) -> None:
        torch.set_num_threads(threads)
        self.context = _open_quietly(recipe)

    def score(self, text: str, draw: int = 0) -> Scored:
        return self.context.score(text, draw)

    def ready(self) -> bool:
        return True


def _check_reachable(address: str | None, timeout: float = 10.0) -> None:
    """SearchkitError unless a ``HOST:PORT`` address accepts a TCP connection (Ray itself would
    retry for minutes). Other forms (``auto``, ``ray://...``) are left to Ray."""
    import socket

    host, sep, port = (address or "").rpartition(":")
    if not sep or "/" in address or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        raise SearchkitError(f"cannot reach the Ray cluster at {address} ({err}); start one with 'ray start --head' "
                             "or drop --address to start a local one") from None


class _RayBackend:
    def __init__(self, recipe: ScoringRecipe, parallel: Parallel) -> None:
        try:
            import ray
        except ImportError:
            raise SearchkitError(RAY_MISSING) from None
        self._ray, self.workers = ray, parallel.workers
        threads = parallel.threads or 1
        self._started = not ray.is_initialized()
        if self._started:
            _check_reachable(parallel.address)
            try:
                if parallel.address is None:
                    ray.init(num_cpus=parallel.workers * threads, include_dashboard=False, log_to_driver=False,
                             logging_level="ERROR")
                else:
                    ray.init(address=parallel.address, log_to_driver=False, logging_level="ERROR")
            except (ConnectionError, RuntimeError, ValueError) as err:
                raise SearchkitError(f"cannot start or reach the Ray cluster {parallel.address or '(local)'}: "
                                     f"{str(err).splitlines()[0]}") from None
        gpus = 1 if recipe.device.startswith("cuda") else 0
        # A killed actor is restarted and its unfinished calls retried (Ray's fault tolerance).
        actor = ray.remote(num_cpus=threads, num_gpus=gpus, max_restarts=MAX_RESTARTS,
                           max_task_retries=MAX_RESTARTS)(_RayScorer)
        self._actors = [actor.remote(recipe, threads) for _ in range(parallel.workers)]
        self._next = 0

    def _submit(self, task: Task) -> Any:
        self._next += 1
        return self._actors[self._next % len(self._actors)].score.remote(*task)

    def map(self, tasks: list[Task]) -> Iterator[tuple[Task, Scored]]:
        ray = self._ray

        def done(refs: list) -> list[tuple[Any, Scored]]:
            ready, _ = ray.wait(refs, num_returns=1)
            return [(ref, ray.get(ref)) for ref in ready]

        return _windowed(tasks, self._submit, done, 2 * self.workers)

    def ready(self) -> None:
        """Wait until every actor has loaded its scoring context."""
        self._ray.get([actor.ready.remote() for actor in self._actors])

    def close(self) -> None:
        for actor in self._actors:
            self._ray.kill(actor)
        if self._started:
            self._ray.shutdown()
