"""Final accuracy of a selected architecture: NAS-Bench-201 table lookup or real training."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from searchkit.config import RunConfig
from searchkit.data import get_dataset
from searchkit.data.base import DatasetSplits
from searchkit.errors import SearchkitError
from searchkit.runtime import build_network
from searchkit.spaces.base import SearchSpace
from searchkit.tabular import NB201Table
from searchkit.train.trainer import Protocol, get_protocol, train

#: Our dataset names -> the NAS-Bench-201 table's dataset for the 200-epoch lookup.
TABLE_DATASETS = {"cifar10": "cifar10", "cifar10-valid": "cifar10", "cifar100": "cifar100",
                  "ImageNet16-120": "ImageNet16-120"}
METHODS = ("auto", "table", "train", "none")


@dataclass
class Evaluation:
    """Final accuracy (%) of an architecture and how it was obtained (``source``: table or trained)."""

    test_accuracy: float
    valid_accuracy: float | None
    source: str
    dataset: str
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        how = (f"NAS-Bench-201 table, {self.details['epochs']} epochs" if self.source == "table"
               else f"trained {self.details['epochs']} epochs, protocol {self.details['protocol']}, "
                    f"{self.details.get('inference_params', self.details.get('params', 0)):,} parameters")
        return f"{self.test_accuracy:.2f}% test accuracy on {self.dataset} ({how})"


def open_table(cfg: RunConfig) -> NB201Table | None:
    """The NB201 table when the run can use it (NB201 space), else None.

    A table the user named (``table:``) or one that ``evaluate.method: table`` needs must load;
    at the default location (``../shared/data``, ``SEARCHKIT_DATA``) it is optional.
    """
    if cfg.evaluate.method not in METHODS:
        raise SearchkitError(f"unknown evaluate.method {cfg.evaluate.method!r}; choose one of {', '.join(METHODS)}")
    if cfg.space.name != "nb201":
        return None
    try:
        return NB201Table.load(cfg.table)
    except SearchkitError:
        if cfg.table is not None or cfg.evaluate.method == "table":
            raise
        return None


def will_train(cfg: RunConfig, table: NB201Table | None) -> bool:
    """Whether :func:`evaluate_arch` trains (rather than looks up, or skips) under ``cfg.evaluate``."""
    method = cfg.evaluate.method
    lookup = method == "table" or (method == "auto" and table is not None and cfg.data.name in TABLE_DATASETS)
    return method != "none" and not lookup


def inference_params(net: torch.nn.Module) -> int:
    """Trainable parameters outside a training-only auxiliary head (``auxiliary_head``): the count
    DARTS-space papers report (DARTS_V2 at C=36, 20 cells: 3.3M)."""
    return sum(p.numel() for name, p in net.named_parameters()
               if p.requires_grad and not name.startswith("auxiliary_head."))


def evaluation_protocol(cfg: RunConfig) -> Protocol:
    """The training protocol of ``cfg.evaluate``: the named preset with ``overrides`` (``network``
    merged into the preset's network options) and ``epochs`` applied."""
    overrides = dict(cfg.evaluate.overrides)
    if "network" in overrides:
        if not isinstance(overrides["network"], dict):
            raise SearchkitError(f"evaluate.overrides.network must be a mapping of network options, "
                                 f"got {overrides['network']!r}")
        overrides["network"] = {**get_protocol(cfg.evaluate.protocol).network, **overrides["network"]}
    if cfg.evaluate.epochs is not None:
        overrides["epochs"] = cfg.evaluate.epochs
    return get_protocol(cfg.evaluate.protocol, **overrides)


def evaluate_arch(
    space: SearchSpace, arch: Any, cfg: RunConfig, table: NB201Table | None, device: torch.device,
    splits: DatasetSplits | None = None, progress: bool = True, checkpoint: str | Path | None = None,
) -> Evaluation | None:
    """Look the architecture up (``table``/``auto`` on a benchmark dataset) or train it (``train``/``auto``).

    ``splits``: the run's dataset if already loaded; training loads ``cfg.data`` otherwise, and a
    table lookup never needs the images. ``checkpoint``: the training's resumable checkpoint file
    (see :func:`searchkit.train.trainer.train`; its identity includes the architecture), e.g. in
    the run directory, so that an interrupted training continues where it stopped.
    """
    method = cfg.evaluate.method
    if method == "none":
        return None
    dataset = TABLE_DATASETS.get(cfg.data.name)
    if not will_train(cfg, table):
        if table is None or dataset is None:
            raise SearchkitError(
                f"evaluate.method=table needs the NB201 space, the NB201 table and one of its datasets "
                f"({', '.join(TABLE_DATASETS)}); got space {cfg.space.name!r}, dataset {cfg.data.name!r}")
        index = table.index_of(space.encode(arch))
        return Evaluation(
            test_accuracy=table.accuracy(index, dataset, "test", 200),
            valid_accuracy=table.accuracy(index, dataset, "valid", 200),
            source="table", dataset=dataset,
            details={"table": table.source, "index": index, "epochs": 200,
                     "params_m": table.params(index, dataset)},
        )
    protocol = evaluation_protocol(cfg)
    if splits is None:
        splits = get_dataset(cfg.data.name, cfg.data.root, **cfg.data.options)
    build = {**cfg.space.build, **protocol.network}
    net = build_network(space, arch, splits, cfg.evaluate.seed, build)
    result = train(net, splits, protocol, device=device, seed=cfg.evaluate.seed, progress=progress,
                   checkpoint=checkpoint, identity={"space": space.name, "arch": space.encode(arch), "build": build})
    return Evaluation(
        test_accuracy=result.test_acc, valid_accuracy=result.valid_acc, source="trained", dataset=splits.name,
        details={"protocol": cfg.evaluate.protocol, "overrides": dict(cfg.evaluate.overrides), "epochs": result.epochs,
                 "seconds": round(result.seconds, 2), "params": result.params, "inference_params": inference_params(net),
                 "train_loss": result.train_loss, "seed": cfg.evaluate.seed},
    )
