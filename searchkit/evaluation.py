"""Final accuracy of a selected architecture: a lookup in the space's tabular benchmark or a real
training; :func:`run_evaluation` is ``searchkit evaluate`` (run directory, resume) as an API."""
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
from searchkit.paths import portable
from searchkit.runtime import build_network
from searchkit.spaces.base import Benchmark, SearchSpace
from searchkit.text import plural
from searchkit.train.per_class import CONFUSION_PNG, class_report, describe_classes, plot_confusion
from searchkit.train.trainer import Protocol, TrainingDiverged, get_protocol, train

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
        epochs = plural(self.details["epochs"], "epoch")
        steps = f" = {plural(self.details['steps'], 'step')} of batch {self.details['batch_size']}" \
            if self.details.get("steps") else ""
        how = (f"{self.details.get('benchmark', 'benchmark')} table, {epochs}" if self.source == "table"
               else f"trained {epochs}{steps}, protocol {self.details['protocol']}, "
                    f"{self.details.get('inference_params', self.details.get('params', 0)):,} parameters")
        return f"{self.test_accuracy:.2f}% test accuracy on {self.dataset} ({how})"

    def describe_classes(self) -> str | None:
        """A trained evaluation's per-class line (balanced accuracy, lowest recalls; :mod:`searchkit.train.per_class`)
        and the validation accuracy with its split, or None for a table lookup."""
        if "classes" not in self.details:
            return None
        valid = "" if self.valid_accuracy is None else \
            f"\nvalidation accuracy: {self.valid_accuracy:.2f}% on the {self.details['evaluated_on']['valid']}"
        return f"per class: {describe_classes(self.details['classes'])}; confusion matrix: {CONFUSION_PNG}{valid}"

    def write_plots(self, out: Path) -> None:
        """``out/confusion.png`` for a trained evaluation (nothing for a table lookup)."""
        if "classes" in self.details:
            plot_confusion(self.details["classes"], out / CONFUSION_PNG,
                           f"{self.dataset}, {self.details['evaluated_on']['test']}")


def open_benchmark(cfg: RunConfig, space: SearchSpace) -> Benchmark | None:
    """The space's tabular benchmark when the run can use it, else None.

    A table the user named (``table:``) or one that ``evaluate.method: table`` needs must load;
    at the default location (``../shared/data``, ``SEARCHKIT_DATA``) it is optional.
    """
    if cfg.evaluate.method not in METHODS:
        raise SearchkitError(f"unknown evaluate.method {cfg.evaluate.method!r}; choose one of {', '.join(METHODS)}")
    try:
        return space.benchmark(cfg.table)
    except SearchkitError:
        if cfg.table is not None or cfg.evaluate.method == "table":
            raise
        return None


def target_dataset(cfg: RunConfig) -> str:
    """The dataset the run searches for: ``data.target`` when set (validation, table evaluation and
    hardware costs are that dataset's), else ``data.name`` (whose images are scored either way)."""
    return cfg.data.target or cfg.data.name


def table_dataset(cfg: RunConfig, table: Benchmark | None, purpose: str) -> str:
    """The table's dataset for the run's :func:`target_dataset`; SearchkitError when ``purpose``
    needs a table lookup that the space or the dataset does not offer."""
    name = target_dataset(cfg)
    dataset = None if table is None else table.dataset_for(name)
    if dataset is None:
        raise SearchkitError(
            f"{purpose} needs a space with a tabular benchmark and one of its datasets; the {cfg.space.name} space "
            f"{'has no table here' if table is None else 'table has no results for ' + repr(name)}"
            + (" (data.target names one of the table's datasets, e.g. cifar10, cifar100, ImageNet16-120)"
               if cfg.data.target else ""))
    return dataset


def will_train(cfg: RunConfig, table: Benchmark | None) -> bool:
    """Whether :func:`evaluate_arch` trains (rather than looks up, or skips) under ``cfg.evaluate``."""
    method = cfg.evaluate.method
    lookup = method == "table" or (method == "auto" and (cfg.data.target is not None or (
        table is not None and table.dataset_for(cfg.data.name) is not None)))
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
    space: SearchSpace, arch: Any, cfg: RunConfig, table: Benchmark | None, device: torch.device,
    splits: DatasetSplits | None = None, progress: bool = True, checkpoint: str | Path | None = None,
    model_dir: str | Path | None = None,
) -> Evaluation | None:
    """Look the architecture up (``table``/``auto`` on a benchmark dataset) or train it (``train``/``auto``).

    ``splits``: the run's dataset if already loaded; training loads ``cfg.data`` otherwise, and a
    table lookup never needs the images. ``checkpoint``: the training's resumable checkpoint file
    (see :func:`searchkit.train.trainer.train`; its identity includes the architecture), e.g. in
    the run directory, so that an interrupted training continues where it stopped. ``model_dir``:
    where a trained network is written as ``model.pt`` + ``model.json`` (:mod:`searchkit.export`;
    ``details["model"]`` then names the files).
    """
    method = cfg.evaluate.method
    if method == "none":
        return None
    if not will_train(cfg, table):
        dataset = table_dataset(cfg, table, "evaluate.method=table")
        index = table.index_of(space.encode(arch))
        return Evaluation(
            test_accuracy=table.accuracy(index, dataset, "test", 200),
            valid_accuracy=table.accuracy(index, dataset, "valid", 200),
            source="table", dataset=dataset,
            details={"benchmark": table.name, "table": portable(table.source), "index": index, "epochs": 200,
                     "params_m": table.params(index, dataset)},
        )
    protocol = evaluation_protocol(cfg)
    if splits is None:
        splits = get_dataset(cfg.data.name, cfg.data.root, **cfg.data.options)
    build = {**cfg.space.build, **protocol.network}
    net = build_network(space, arch, splits, cfg.evaluate.seed, build)
    result = train(net, splits, protocol, device=device, seed=cfg.evaluate.seed, progress=progress,
                   checkpoint=checkpoint, identity={"space": space.name, "arch": space.encode(arch), "build": build})
    evaluation = Evaluation(
        test_accuracy=result.test_acc, valid_accuracy=result.valid_acc, source="trained", dataset=splits.name,
        details={"protocol": cfg.evaluate.protocol, "overrides": dict(cfg.evaluate.overrides), "epochs": result.epochs,
                 "seconds": round(result.seconds, 2), "params": result.params, "inference_params": inference_params(net),
                 "train_loss": result.train_loss, "seed": cfg.evaluate.seed, "steps": result.steps,
                 "batch_size": result.batch_size, "lr": result.lr, "batch_note": result.batch_note,
                 "validation_split": splits.info.get("valid_split"), "dataset": splits.describe(),
                 "evaluated_on": {"test": f"test split: {len(splits.test)} images",
                                  "valid": splits.describe_valid() if splits.valid is not None else None},
                 "classes": class_report(result.test_confusion, splits.info.get("classes")),
                 "valid_classes": None if result.valid_confusion is None
                 else class_report(result.valid_confusion, splits.info.get("classes"))},
    )
    if model_dir is not None:
        from searchkit.export import save_model

        evaluation.details["model"] = save_model(model_dir, net, space.name, space.encode(arch), build, splits,
                                                 evaluation)
    return evaluation


@dataclass
class EvaluationRun:
    """What :func:`run_evaluation` did: the architecture (encoded), its evaluation (None for
    ``evaluate.method: none``) and the run directory (None for a table lookup without ``out``)."""

    arch: str
    evaluation: Evaluation | None
    out: Path | None


def run_evaluation(cfg: RunConfig, arch_text: str | None = None, out: str | Path | None = None,
                   resume: str | Path | None = None, overwrite: bool = False, progress: bool = True,
                   splits: DatasetSplits | None = None) -> EvaluationRun:
    """``searchkit evaluate`` as an API: the final accuracy of one architecture.

    A training gets a run directory (``out``, default ``runs/<time>-evaluate-SPACE/``) holding the
    config (with the architecture), a checkpoint written every epoch and ``evaluation.json``; a
    table lookup gets one only when ``out`` is given. ``resume``: an interrupted evaluation's
    directory; its config and architecture are reused and the training continues from its
    checkpoint (``cfg`` and ``arch_text`` are then ignored). ``splits``: the dataset, if not
    ``cfg.data``'s (e.g. a study's test subset). Inputs are checked before anything is written.
    A training that diverges writes ``evaluation.json`` with ``diverged: true`` and no accuracy,
    and raises :class:`~searchkit.train.trainer.TrainingDiverged`.
    """
    from searchkit.config import config_from_dict
    from searchkit.rundir import TRAIN_CHECKPOINT, RunDir
    from searchkit.runtime import resolve_device
    from searchkit.spaces import get_space

    run = None
    if resume is not None:
        run = RunDir.existing(resume)
        config = run.read_config()
        arch_text, cfg = config.pop("arch", None), config_from_dict(config)
        if not isinstance(arch_text, str):
            raise SearchkitError(f"cannot resume {resume}: its config.yaml names no arch; it is not an evaluate run")
    elif arch_text is None:
        raise SearchkitError("give the architecture to evaluate (--arch ARCH) or --resume RUN_DIR")
    space = get_space(cfg.space.name)
    arch = space.decode(arch_text)
    device = resolve_device(cfg.device)
    table = open_benchmark(cfg, space)
    if run is None and (out is not None or will_train(cfg, table)):
        run = RunDir.fresh(out, overwrite) if out is not None else RunDir.new(f"evaluate-{cfg.space.name}")
        if will_train(cfg, table):
            evaluation_protocol(cfg)  # a bad protocol or override fails before the directory exists
        run.start()
    if run is not None:
        run.write_config({**cfg.to_dict(), "arch": space.encode(arch)})
    try:
        evaluation = evaluate_arch(space, arch, cfg, table, device, splits, progress=progress,
                                   checkpoint=None if run is None else run.path / TRAIN_CHECKPOINT,
                                   model_dir=None if run is None else run.path)
    except TrainingDiverged as diverged:  # recorded instead of an accuracy, then reported
        run.write_json("evaluation.json", {"arch": space.encode(arch), **diverged.record()})
        raise
    if run is not None and evaluation is not None:
        run.write_json("evaluation.json", {"arch": space.encode(arch), **evaluation.to_dict()})
        evaluation.write_plots(run.path)
    return EvaluationRun(space.encode(arch), evaluation, None if run is None else run.path)
