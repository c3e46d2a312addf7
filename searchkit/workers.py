"""Scoring many architectures through the score store: in this process, in worker processes, or
on a Ray cluster.

Every backend computes what :meth:`ScoringContext.score` computes in this process: a network is
built from the init seed alone (:func:`~searchkit.runtime.build_network`) and no metric draws
random numbers, so a value does not depend on which worker scored the architecture or when.
Values are bit-identical across backends when every scoring process runs the same number of
torch intra-op threads (``Parallel.threads``): BLAS reductions split differently with more
threads and then differ in the last bits.

Only the parent process touches the :class:`~searchkit.store.ScoreStore`: workers return
results and :meth:`ScoreRunner.scores` writes each one as it arrives (one transaction per
architecture), so a killed run keeps every score it received.
"""
from __future__ import annotations

import dataclasses
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import torch

from searchkit.config import RunConfig
from searchkit.data import get_dataset, scoring_batch
from searchkit.data.base import Batch, DatasetSplits
from searchkit.errors import SearchkitError
from searchkit.metrics.base import Metric
from searchkit.metrics.scoring import score_metrics
from searchkit.runtime import build_network, score_setting
from searchkit.spaces import get_space
from searchkit.spaces.base import SearchSpace
from searchkit.store import ScoreSetting, ScoreStore, metric_key

BACKENDS = ("serial", "process", "ray")
RAY_MISSING = 'the ray backend needs Ray; install it with: pip install -e ".[ray]"'

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


@dataclass
class ScoringRecipe:
    """Everything that determines a training-free score besides the architecture, in a form a
    worker process can rebuild the parent's :class:`ScoringContext` from (picklable).

    ``metrics``: label -> configured metric; ``seed``: network initialisation seed;
    ``fingerprint``: the parent's scoring batch, checked by every worker (None: not known yet).
    """

    space: str
    dataset: str
    root: str | None
    options: dict
    batch_size: int
    data_seed: int
    split: str
    metrics: dict[str, Metric]
    seed: int
    build: dict
    device: str
    fingerprint: str | None = None

    @classmethod
    def from_config(cls, cfg: RunConfig, metrics: dict[str, Metric], device: torch.device) -> "ScoringRecipe":
        """A run's scoring: its data section, space, build options and ``cfg.network_seed``."""
        return cls(cfg.space.name, cfg.data.name, cfg.data.root, dict(cfg.data.options), cfg.data.batch_size,
                   cfg.data.seed, cfg.data.split, metrics, cfg.network_seed, dict(cfg.space.build), str(device))

    def open(self, space: SearchSpace | None = None, device: str | None = None) -> "ScoringContext":
        """Load the dataset and the scoring batch; ``space`` overrides the registry's (e.g. a pool
        of it), ``device`` the recipe's."""
        splits = get_dataset(self.dataset, self.root, **self.options)
        batch = scoring_batch(splits, self.batch_size, self.data_seed, self.split)
        fingerprint = batch.fingerprint()
        if self.fingerprint is not None and fingerprint != self.fingerprint:
            raise SearchkitError(f"this process built scoring batch {fingerprint}, the run scores on {self.fingerprint}; "
                                 "every worker needs the same dataset files")
        dev = torch.device(device or self.device)
        return ScoringContext(dataclasses.replace(self, fingerprint=fingerprint), space or get_space(self.space),
                              splits, batch.to(dev), dev)


@dataclass
class ScoringContext:
    """A loaded :class:`ScoringRecipe`: the space, the dataset's splits, the scoring batch on ``device``."""

    recipe: ScoringRecipe
    space: SearchSpace
    splits: DatasetSplits
    batch: Batch
    device: torch.device

    @property
    def setting(self) -> ScoreSetting:
        """The store's key for these scores (besides metric and architecture)."""
        r = self.recipe
        return score_setting(r.space, r.build, r.dataset, self.batch, r.seed, self.device)

    def score(self, text: str) -> Scored:
        """Every metric on the seeded network of the architecture ``text`` (one shared NTK)."""
        start = time.perf_counter()
        net = build_network(self.space, self.space.decode(text), self.splits, self.recipe.seed, self.recipe.build)
        result = score_metrics(net.to(self.device), self.batch, self.recipe.metrics)
        return result, time.perf_counter() - start


class ScoreRunner:
    """Scores architectures through ``store``: what it holds for every metric is served without
    computing; the rest is scored by the backend ``parallel`` names and written to the store as
    each result arrives. Use as a context manager (workers are stopped on exit)."""

    def __init__(self, context: ScoringContext, store: ScoreStore | None, parallel: Parallel = Parallel()) -> None:
        self.context, self.store, self.parallel = context, store, parallel
        self.setting = context.setting
        self.keys = {label: metric_key(metric) for label, metric in context.recipe.metrics.items()}
        self._backend: Any = None  # started when something needs computing

    def __enter__(self) -> "ScoreRunner":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()

    def stored(self, text: str) -> dict[str, tuple[float, float]] | None:
        """label -> (value, seconds) from the store, or None unless it holds every metric of ``text``."""
        return None if self.store is None else self.store.get_all(self.setting, self.keys, text)

    def scores(self, texts: Iterable[str]) -> Iterator[tuple[str, dict[str, tuple[float, float]], float | None]]:
        """(arch, label -> (value, seconds), measured seconds or None if served by the store) for
        every distinct arch of ``texts``: stored ones first, in order, then the computed ones in
        the order they complete (at most two per worker in flight, so memory stays bounded)."""
        missing = []
        for text in dict.fromkeys(texts):
            held = self.stored(text)
            if held is None:
                missing.append(text)
            else:
                yield text, held, None
        if missing and self._backend is None:
            self._backend = _open_backend(self.context, self.parallel)
        for text, (result, seconds) in (self._backend.map(missing) if missing else ()):
            if self.store is not None:
                self.store.put_many(self.setting, [(self.keys[label], text, value, alone)
                                                   for label, (value, alone) in result.items()])
            yield text, result, seconds


def _open_backend(context: ScoringContext, parallel: Parallel) -> Any:
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

    def map(self, texts: list[str]) -> Iterator[tuple[str, Scored]]:
        return ((text, self.context.score(text)) for text in texts)

    def close(self) -> None:
        torch.set_num_threads(self._threads)


def _windowed(texts: list[str], submit: Callable[[str], Any], done: Callable[[list], list[tuple[Any, Scored]]],
              window: int) -> Iterator[tuple[str, Scored]]:
    """Submit ``texts`` keeping at most ``window`` in flight; yield (text, result) as they complete.
    ``done(handles)`` waits for at least one handle and returns the finished ones with results."""
    pending: dict[Any, str] = {}

    def finished() -> Iterator[tuple[str, Scored]]:
        for handle, result in done(list(pending)):
            yield pending.pop(handle), result

    for text in texts:
        pending[submit(text)] = text
        if len(pending) >= window:
            yield from finished()
    while pending:
        yield from finished()


# --- worker processes on this machine ----------------------------------------------------------

_WORKER: ScoringContext | None = None


def _init_worker(recipe: ScoringRecipe, threads: int, slots: Any) -> None:
    global _WORKER
    torch.set_num_threads(threads)
    slot = slots.get()
    device = recipe.device
    if device == "cuda" and torch.cuda.device_count() > 1:
        device = f"cuda:{slot % torch.cuda.device_count()}"
    _WORKER = recipe.open(device=device)


def _score_in_worker(text: str) -> Scored:
    return _WORKER.score(text)


class _ProcessBackend:
    def __init__(self, recipe: ScoringRecipe, parallel: Parallel) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        slots = context.Queue()
        for slot in range(parallel.workers):
            slots.put(slot)
        threads = parallel.threads or max(1, (os.cpu_count() or 1) // parallel.workers)
        self.workers = parallel.workers
        self._pool = ProcessPoolExecutor(parallel.workers, mp_context=context, initializer=_init_worker,
                                         initargs=(recipe, threads, slots))

    def map(self, texts: list[str]) -> Iterator[tuple[str, Scored]]:
        def done(futures: list) -> list[tuple[Any, Scored]]:
            return [(f, f.result()) for f in wait(futures, return_when=FIRST_COMPLETED).done]

        return _windowed(texts, lambda text: self._pool.submit(_score_in_worker, text), done, 2 * self.workers)

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)


# --- Ray actors ------------------------------------------------------------------------------------

class _RayScorer:
    """A Ray actor holding one loaded :class:`ScoringContext`."""

    def __init__(self, recipe: ScoringRecipe, threads: int) -> None:
        torch.set_num_threads(threads)
        self.context = recipe.open()

    def score(self, text: str) -> Scored:
        return self.context.score(text)


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
        actor = ray.remote(num_cpus=threads, num_gpus=gpus)(_RayScorer)
        self._actors = [actor.remote(recipe, threads) for _ in range(parallel.workers)]
        self._next = 0

    def _submit(self, text: str) -> Any:
        self._next += 1
        return self._actors[self._next % len(self._actors)].score.remote(text)

    def map(self, texts: list[str]) -> Iterator[tuple[str, Scored]]:
        ray = self._ray

        def done(refs: list) -> list[tuple[Any, Scored]]:
            ready, _ = ray.wait(refs, num_returns=1)
            return [(ref, ray.get(ref)) for ref in ready]

        return _windowed(texts, self._submit, done, 2 * self.workers)

    def close(self) -> None:
        for actor in self._actors:
            self._ray.kill(actor)
        if self._started:
            self._ray.shutdown()
