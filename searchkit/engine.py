"""One search run end to end: data -> space -> fitness -> strategy -> evaluation -> run directory.

``run_search(config)`` is the Python API the ``searchkit search`` command wraps.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from searchkit.config import RunConfig, config_from_dict, load_config
from searchkit.data import get_dataset, scoring_batch
from searchkit.data.base import Batch, DatasetSplits
from searchkit.errors import SearchkitError
from searchkit.evaluation import Evaluation, evaluate_arch, open_table
from searchkit.metrics import Metric, get_metric
from searchkit.runtime import build_network, resolve_device
from searchkit.spaces import get_space
from searchkit.spaces.base import SearchSpace
from searchkit.store import HistoryRow, RunDir
from searchkit.strategies import get_strategy


def score_arch(
    space: SearchSpace, arch: Any, metric: Metric, batch: Batch, splits: DatasetSplits,
    seed: int, build: dict, device: torch.device,
) -> float:
    """The training-free fitness of ``arch``: its network at initialisation (seeded) on ``batch``."""
    net = build_network(space, arch, splits, seed, build).to(device)
    return metric(net, batch)


@dataclass
class SearchResult:
    """What a search returns: the selected architecture, its score and final evaluation."""

    arch: str
    index: int | None
    score: float
    metric: str
    evaluation: Evaluation | None
    archs_scored: int
    unique_archs: int
    search_seconds: float
    out: Path
    history: list[HistoryRow] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "arch": self.arch, "index": self.index, "metric": self.metric, "score": self.score,
            "final": None if self.evaluation is None else self.evaluation.to_dict(),
            "search_cost": {"archs_scored": self.archs_scored, "unique_archs": self.unique_archs,
                            "wall_seconds": round(self.search_seconds, 3)},
            "out": str(self.out),
        }


def run_search(
    config: RunConfig | dict | str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    out: str | Path | None = None,
    resume: str | Path | None = None,
    progress: bool = True,
) -> SearchResult:
    """Search, evaluate the selected architecture and write the run directory.

    ``config``: a RunConfig, a nested dict, or a YAML path (None: the defaults). ``resume``: an
    earlier run's directory; its config is reused and its history replayed without re-scoring
    (strategies are deterministic given their seed and scores), so the result equals an
    uninterrupted run's.
    """
    if resume is not None:
        run = RunDir.existing(resume)
        cfg = config_from_dict(run.read_config())
        replay = run.read_history()
    else:
        if isinstance(config, RunConfig):
            cfg = config
        elif isinstance(config, dict):
            cfg = config_from_dict(config)
        else:
            cfg = load_config(config, overrides)
        run = RunDir(out) if out is not None else RunDir.new(cfg.name)
        replay = []
    run.write_config(cfg.to_dict())

    device = resolve_device(cfg.device)
    splits = get_dataset(cfg.data.name, cfg.data.root, **cfg.data.options)
    batch = scoring_batch(splits, cfg.data.batch_size, cfg.data.seed, cfg.data.split).to(device)
    space = get_space(cfg.space.name)
    metric = get_metric(cfg.metric.name, **cfg.metric.options)
    strategy = get_strategy(cfg.strategy.name, space, np.random.default_rng(cfg.seed), **cfg.strategy.options)
    table = open_table(cfg)
    if cfg.budget.archs is None and cfg.budget.seconds is None:
        raise SearchkitError("the budget is unlimited; set budget.archs and/or budget.seconds")

    cache = {row.arch: row.score for row in replay}
    writer = run.history_writer(replay)
    history: list[HistoryRow] = []
    spent = 0.0

    def exhausted() -> bool:
        return (cfg.budget.archs is not None and len(history) >= cfg.budget.archs) or (
            cfg.budget.seconds is not None and spent >= cfg.budget.seconds)

    bar = tqdm(total=cfg.budget.archs, disable=not progress, desc="search", unit="arch")
    try:
        while not exhausted():
            for arch in strategy.ask():
                if exhausted():
                    break
                text, step = space.encode(arch), len(history)
                if step < len(replay):  # resuming: the same proposals come back; reuse their rows
                    row = replay[step]
                    if row.arch != text:
                        raise SearchkitError(f"cannot resume {run.path}: its history diverges from this search at step {step}")
                else:
                    cached = text in cache
                    start = time.perf_counter()
                    value = cache[text] if cached else score_arch(
                        space, arch, metric, batch, splits, cfg.seed, cfg.space.build, device)
                    row = HistoryRow(step, text, table.index_of(text) if table else None, value,
                                     time.perf_counter() - start, cached)
                    cache[text] = value
                    writer.append(row)
                strategy.tell(arch, row.score)
                history.append(row)
                spent += row.seconds
                bar.update(1)
                bar.set_postfix(best=f"{strategy.best_score:.4f}")
    finally:
        bar.close()
        writer.close()

    best_text = space.encode(strategy.best_arch)
    evaluation = evaluate_arch(space, strategy.best_arch, cfg, table, device, splits, progress)
    result = SearchResult(
        arch=best_text, index=table.index_of(best_text) if table else None, score=float(strategy.best_score),
        metric=cfg.metric.name, evaluation=evaluation, archs_scored=len(history),
        unique_archs=len(cache), search_seconds=spent, out=run.path, history=history,
    )
    run.write_json("best.json", result.to_dict())
    return result
