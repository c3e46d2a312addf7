"""Train and evaluate a network under a named protocol (NAS-Bench-201's by default).

NAS-Bench-201 protocol (Dong & Yang, ICLR 2020, configs ``200E``/``12E``): SGD, momentum 0.9,
nesterov, lr 0.1 with cosine decay to 0, weight decay 5e-4 on every parameter, batch 256,
cross-entropy, random crop (pad 4) + horizontal flip, 200 epochs (or 12). As in the benchmark's
scheduler, the cosine lr is updated every iteration, not once per epoch.

Choices the benchmark leaves to its image pipeline: inputs arrive already normalised, so the crop
pads with 0, i.e. with the dataset's mean colour rather than black; the last, smaller batch of an
epoch is kept.

DARTS CIFAR protocol (Liu et al., ICLR 2019, Sec. 3.3 / 4; NASI appendix B.4): SGD momentum 0.9
(no nesterov), lr 0.025 cosine to 0, weight decay 3e-4, batch 96, 600 epochs, gradient norm
clipped at 5, crop + flip + Cutout 16 (DeVries & Taylor 2017), drop path rising linearly from 0
to 0.2 (epoch e of E uses 0.2 * e / E), auxiliary head loss weight 0.4, network C=36, 20 cells.
Our cosine is per iteration (DARTS steps it per epoch; the difference is negligible).

Networks opt into the DARTS extras through two attributes, set here and restored afterwards:
``drop_path_prob`` (float, drop-path probability in training mode) and ``return_aux`` (bool:
training-mode forward returns ``(logits, aux_logits)``). On CUDA, training runs in float16
autocast with loss scaling (``Protocol.amp``); the CPU path is plain float32.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from searchkit.data.base import DatasetSplits
from searchkit.errors import SearchkitError
from searchkit.rundir import write_atomic
from searchkit.train.per_class import confusion_matrix

SCHEDULES = ("cosine", "constant")


@dataclass(frozen=True)
class Protocol:
    """Training hyper-parameters. ``schedule``: "cosine" (per-iteration decay to 0) or "constant".

    ``network`` holds build options of the evaluated network that override the search space's
    (e.g. a DARTS preset's cells and channels); NB201 presets leave the network as searched.
    ``augment`` turns on random crop (pad 4) + horizontal flip; it applies only where the
    dataset's ``DatasetSplits.augment`` allows it. ``grad_clip``: max global gradient L2 norm.

    DARTS extras (0 = off): ``cutout``: side of the square zeroed per image after crop + flip
    (only where augmentation applies); ``drop_path``: the final drop-path probability, raised
    linearly per epoch on networks with a ``drop_path_prob`` attribute; ``auxiliary_weight``:
    weight of the auxiliary-head loss for networks with a ``return_aux`` attribute.
    ``max_train``: train on a seeded random subset of this many training examples (None: all).
    ``amp``: float16 autocast + loss scaling when training on CUDA (ignored on CPU).
    ``min_steps_per_epoch``: a training set too small for ``batch_size`` to give this many steps
    per epoch trains with a smaller batch and learning rate (:func:`plan_batches`); 0 keeps
    ``batch_size`` and ``lr`` always.
    """

    epochs: int
    batch_size: int = 256
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    augment: bool = True
    label_smoothing: float = 0.0
    grad_clip: float | None = None
    network: dict = field(default_factory=dict)
    cutout: int = 0
    drop_path: float = 0.0
    auxiliary_weight: float = 0.0
    max_train: int | None = None
    amp: bool = True
    min_steps_per_epoch: int = 10

    def __post_init__(self) -> None:
        problems = []
        if not (isinstance(self.epochs, int) and self.epochs >= 1):
            problems.append(f"epochs must be a positive integer (got {self.epochs!r})")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            problems.append(f"batch_size must be a positive integer (got {self.batch_size!r})")
        if self.lr < 0 or self.weight_decay < 0 or self.momentum < 0:
            problems.append("lr, weight_decay and momentum must be >= 0")
        if self.nesterov and self.momentum == 0:
            problems.append("nesterov needs momentum > 0")
        if self.schedule not in SCHEDULES:
            problems.append(
                f"schedule must be one of {', '.join(SCHEDULES)} (got {self.schedule!r})"
            )
        if not 0 <= self.label_smoothing < 1:
            problems.append(f"label_smoothing must be in [0, 1) (got {self.label_smoothing!r})")
        if self.grad_clip is not None and self.grad_clip <= 0:
            problems.append(f"grad_clip must be > 0 or None (got {self.grad_clip!r})")
        if not (isinstance(self.cutout, int) and self.cutout >= 0):
            problems.append(f"cutout must be an integer >= 0 (got {self.cutout!r})")
        if not 0 <= self.drop_path <= 1:
            problems.append(f"drop_path must be in [0, 1] (got {self.drop_path!r})")
        if self.auxiliary_weight < 0:
            problems.append(f"auxiliary_weight must be >= 0 (got {self.auxiliary_weight!r})")
        if self.max_train is not None and not (isinstance(self.max_train, int) and self.max_train >= 1):
            problems.append(f"max_train must be a positive integer or None (got {self.max_train!r})")
        if not (isinstance(self.min_steps_per_epoch, int) and self.min_steps_per_epoch >= 0):
            problems.append(
                f"min_steps_per_epoch must be an integer >= 0 (got {self.min_steps_per_epoch!r})"
            )
        if problems:
            raise SearchkitError("invalid training protocol: " + "; ".join(problems))


_DARTS = Protocol(
    epochs=600, batch_size=96, lr=0.025, nesterov=False, weight_decay=3e-4, grad_clip=5.0,
    cutout=16, drop_path=0.2, auxiliary_weight=0.4, network={"C": 36, "layers": 20, "auxiliary": True},
)
PROTOCOLS: dict[str, Protocol] = {
    "nb201": Protocol(epochs=200),
    "nb201-short": Protocol(epochs=12),
    "darts": _DARTS,
    # The DARTS recipe scaled down to finish on a CPU: DARTS' search-network size (8 cells,
    # C=16) for 10 epochs on 5k images; the proxy network's size (5 cells, C=8) for 8 epochs on
    # 5k images, about 6 minutes of one CPU core (DARTS_V2: ~6 min CPU time, 47.6 % test accuracy;
    # benchmarks/darts_study.py trains every genotype with it); and a 2-epoch smoke test on 2k images.
    "darts-small": dataclasses.replace(_DARTS, epochs=10, max_train=5_000,
                                       network={"C": 16, "layers": 8, "auxiliary": True}),
    "darts-study": dataclasses.replace(_DARTS, epochs=8, max_train=5_000,
                                       network={"C": 8, "layers": 5, "auxiliary": True}),
    "darts-tiny": dataclasses.replace(_DARTS, epochs=2, max_train=2_000,
                                      network={"C": 8, "layers": 5, "auxiliary": True}),
}


def get_protocol(name: str, **overrides) -> Protocol:
    """A :data:`PROTOCOLS` preset with fields replaced, e.g. ``get_protocol("nb201", epochs=4)``."""
    if name not in PROTOCOLS:
        raise SearchkitError(
            f"unknown training protocol {name!r}; choose one of: {', '.join(PROTOCOLS)}"
        )
    fields = {f.name for f in dataclasses.fields(Protocol)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise SearchkitError(
            f"unknown training protocol field(s) {', '.join(unknown)}; "
            f"valid fields: {', '.join(sorted(fields))}"
        )
    return dataclasses.replace(PROTOCOLS[name], **overrides)


@dataclass
class TrainResult:
    """Outcome of :func:`train`.

    Accuracies in %; ``seconds``: training wall time (evaluation and checkpoint writes excluded,
    summed over resumed sessions); ``train_loss``: mean loss over the last epoch (auxiliary term
    included); ``params``: number of trainable parameters. ``steps``: optimiser steps taken in
    all; ``batch_size`` and ``lr``: the training batch size and peak learning rate used;
    ``batch_note``: the one-line warning when they differ from the protocol's
    (:func:`plan_batches`), else None. ``test_confusion``, ``valid_confusion``: the confusion matrices
    (rows: true class, columns: predicted; :mod:`searchkit.train.per_class`) behind the accuracies.
    """

    test_acc: float
    valid_acc: float | None
    train_loss: float
    seconds: float
    epochs: int
    params: int
    steps: int = 0
    batch_size: int = 0
    lr: float = 0.0
    batch_note: str | None = None
    test_confusion: list[list[int]] | None = None
    valid_confusion: list[list[int]] | None = None


class TrainingDiverged(SearchkitError):
    """The training loss became NaN or infinite: the network has no accuracy to report.

    ``epoch``: the epoch (1-based) whose mean loss was not finite; ``loss``: that value;
    ``seconds``: the training time spent, all sessions. The checkpoint keeps the last finite
    epoch (``epoch - 1``)."""

    def __init__(self, epoch: int, epochs: int, loss: float, seconds: float) -> None:
        self.epoch, self.loss, self.seconds = epoch, loss, seconds
        super().__init__(f"training diverged: the mean loss of epoch {epoch} of {epochs} is {loss}; no accuracy is "
                         "reported for it; lower the protocol's learning rate or clip gradients, e.g. "
                         "evaluate.overrides={lr: 0.01, grad_clip: 5}")

    def record(self) -> dict:
        """What best.json / evaluation.json / a history row's extras say about it."""
        return {"diverged": True, "epoch": self.epoch, "train_loss": str(self.loss),
                "seconds": round(self.seconds, 2), "message": str(self)}


MIN_BATCH = 8
"""The smallest batch :func:`plan_batches` adapts to (BatchNorm's batch statistics degrade below
about 8 examples: Wu & He, "Group Normalization", ECCV 2018, Sec. 1 and Fig. 1)."""


class SmallTrainingSetWarning(UserWarning):
    """The training set is small for the protocol's batch size; batch and learning rate were reduced."""


@dataclass(frozen=True)
class BatchPlan:
    """The batch size and learning rate a training uses, its steps per epoch, and the warning when
    they were adapted."""

    batch_size: int
    lr: float
    steps_per_epoch: int
    note: str | None = None


def plan_batches(n_train: int, protocol: Protocol) -> BatchPlan:
    """The training batch size and learning rate for ``n_train`` examples under ``protocol``.

    Rule: with ``B = protocol.batch_size`` and ``m = protocol.min_steps_per_epoch``, keep B and
    the protocol's lr when ``ceil(n_train / B) >= m`` (or m = 0); otherwise use the largest power
    of two b < B with ``ceil(n_train / b) >= m``, never below :data:`MIN_BATCH`, and scale the lr
    by sqrt(b / B) (the square-root rule: Krizhevsky 2014, "One weird trick for parallelizing
    convolutional neural networks"; Hoffer, Hubara & Soudry, "Train longer, generalize
    better", NeurIPS 2017). E.g. 240 images under the NB201 protocol (B = 256, lr 0.1, m = 10):
    b = 16, lr 0.025, 15 steps per epoch instead of 1; CIFAR-10's 50,000 images keep 256.

    Measured (benchmarks/small_data_lr.py, results/small-data: 240 CIFAR-10 images of 3 classes,
    5 epochs, 2 cells x 3 seeds): batch 256 reached 41 % test accuracy (chance 33 %); batch 16
    reached 60 % with lr 0.1 kept, 68 % with the square-root rule and 66-70 % with the linear rule
    (lr 0.1 * b / B; Goyal et al. 2017, sec. 2.1). The square-root rule was never worse than the
    best by more than the seed spread, and trained an easy set to a lower loss than the linear one.
    ``note`` is the one-line warning (None when B is kept); it also says when even
    :data:`MIN_BATCH` gives fewer than m steps.
    """
    batch, wanted = protocol.batch_size, protocol.min_steps_per_epoch
    steps = math.ceil(n_train / batch)
    if wanted == 0 or steps >= wanted or batch <= MIN_BATCH:
        return BatchPlan(batch, protocol.lr, steps)
    small = 1 << (batch - 1).bit_length() - 1  # the largest power of two below batch
    while small > MIN_BATCH and math.ceil(n_train / small) < wanted:
        small //= 2
    small = max(small, MIN_BATCH)
    lr = protocol.lr * math.sqrt(small / batch)
    new_steps = math.ceil(n_train / small)
    note = (
        f"the training set has {n_train} images, {steps} step{'s' * (steps != 1)} per epoch at the "
        f"protocol's batch size {batch}: training with batch size {small} and learning rate {lr:.4g} "
        f"(was {protocol.lr:g}, scaled by sqrt({small}/{batch})) instead, {new_steps} steps per epoch, "
        f"{new_steps * protocol.epochs} in all; set the protocol's min_steps_per_epoch=0 to keep {batch}"
    )
    if new_steps < wanted:
        note += f"; fewer than {wanted} steps per epoch even so: add training images for reliable results"
    return BatchPlan(small, lr, new_steps, note)


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def lr_factor(protocol: Protocol, step: int, total_steps: int) -> float:
    """Multiplier of ``protocol.lr`` at iteration ``step`` of ``total_steps``.

    cosine: 0.5 * (1 + cos(pi * step / total_steps)), 1 at step 0 and 0 at ``total_steps``.
    """
    if protocol.schedule == "constant":
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))


def random_crop(x: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad x (B, C, H, W) by ``pad`` and crop back to (H, W) at a per-sample random offset.

    One gather over the batch; offsets are drawn on the CPU ``generator`` (uniform in 0..2*pad).
    """
    b, c, h, w = x.shape
    padded = nn.functional.pad(x, (pad, pad, pad, pad))
    oy, ox = (torch.randint(0, 2 * pad + 1, (2, b), generator=generator)).to(x.device)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (B,1,H,1)
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (B,1,1,W)
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image of x (B, C, H, W) horizontally with probability 1/2."""
    flip = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def augment_batch(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """The benchmark's training augmentation: random crop (pad 4) then horizontal flip."""
    return random_flip(random_crop(x, pad, generator), generator)


def cutout(x: torch.Tensor, length: int, generator: torch.Generator) -> torch.Tensor:
    """Cutout (DeVries & Taylor 2017, as in DARTS): zero one ``length`` x ``length`` square per
    image of x (B, C, H, W), all channels, centred at a pixel drawn uniformly on the CPU
    ``generator``; rows cy - length // 2 .. cy - length // 2 + length - 1 (likewise columns),
    clipped at the borders. Inputs are normalised, so 0 is the mean colour (as in DARTS, which
    cuts after normalising). One mask over the batch, no per-image loop.
    """
    b, _, h, w = x.shape
    top = torch.randint(0, h, (b,), generator=generator).to(x.device)[:, None] - length // 2
    left = torch.randint(0, w, (b,), generator=generator).to(x.device)[:, None] - length // 2
    rows = torch.arange(h, device=x.device)[None, :]
    cols = torch.arange(w, device=x.device)[None, :]
    in_rows = (rows >= top) & (rows < top + length)  # (B, H)
    in_cols = (cols >= left) & (cols < left + length)  # (B, W)
    return x.masked_fill((in_rows[:, :, None] & in_cols[:, None, :])[:, None], 0.0)


class _Batches:
    """Mini-batches ``(x (B,C,H,W) float32, y (B,) int64)`` on the CPU from a map-style dataset.

    Datasets with ``.tensors() -> (X (N,C,H,W), Y (N,))`` are batched by tensor indexing;
    any other dataset goes through a single-process DataLoader.
    """

    def __init__(self, dataset: Dataset, indices: torch.Tensor | None = None) -> None:
        self.tensors = None
        if hasattr(dataset, "tensors"):
            if indices is not None and hasattr(dataset, "subset"):  # decode only the examples kept
                dataset, indices = dataset.subset(indices.numpy()), None
            x, y = dataset.tensors()
            self.tensors = (x, y) if indices is None else (x[indices], y[indices])
            self.n = len(self.tensors[1])
        else:
            self.dataset = dataset if indices is None else Subset(dataset, indices.tolist())
            self.n = len(self.dataset)

    def __len__(self) -> int:
        return self.n

    def __call__(
        self, batch_size: int, generator: torch.Generator | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One pass; shuffled with ``generator`` when given, in order otherwise."""
        if self.tensors is None:
            loader = DataLoader(self.dataset, batch_size=batch_size, shuffle=generator is not None,
                                generator=generator, num_workers=0)
            for x, y in loader:
                yield x.float(), torch.as_tensor(y).long()
            return
        x, y = self.tensors
        order = torch.randperm(self.n, generator=generator) if generator is not None else None
        for start in range(0, self.n, batch_size):
            if order is None:
                yield x[start:start + batch_size].float(), y[start:start + batch_size].long()
            else:
                idx = order[start:start + batch_size]
                yield x[idx].float(), y[idx].long()


def _confusion(net: nn.Module, batches: _Batches, device: torch.device, batch_size: int) -> torch.Tensor:
    """The (classes, classes) confusion matrix of ``net`` on ``batches`` in eval mode (rows: true class)."""
    if len(batches) == 0:
        raise SearchkitError("cannot evaluate on an empty dataset")
    was_training = net.training
    net.eval()
    targets, predictions, classes = [], [], 0
    with torch.no_grad():
        for x, y in batches(batch_size):
            logits = net(x.to(device, non_blocking=True))
            targets.append(y)
            predictions.append(logits.argmax(1).cpu())
            classes = logits.shape[1]
    net.train(was_training)
    return confusion_matrix(torch.cat(targets), torch.cat(predictions), classes)


def _accuracy(confusion: torch.Tensor) -> float:
    """Top-1 accuracy (%) of a confusion matrix."""
    return 100.0 * int(confusion.diagonal().sum()) / int(confusion.sum())


def evaluate(
    net: nn.Module,
    dataset: Dataset,
    device: torch.device | str | None = None,
    batch_size: int = 256,
) -> float:
    """Top-1 accuracy (%) of ``net`` on ``dataset`` in eval mode (BN running statistics).

    Moves ``net`` to ``device`` (default: :func:`default_device`); restores its train/eval mode.
    """
    device = torch.device(device) if device is not None else default_device()
    return _accuracy(_confusion(net.to(device), _Batches(dataset), device, batch_size))


def _loss(criterion: nn.Module, out: torch.Tensor | tuple[torch.Tensor, torch.Tensor], y: torch.Tensor,
          auxiliary_weight: float) -> torch.Tensor:
    """Cross-entropy of the logits, plus ``auxiliary_weight`` x that of the auxiliary logits when the
    network returns ``(logits, aux_logits)``."""
    if isinstance(out, tuple):
        logits, aux = out
        return criterion(logits, y) + auxiliary_weight * criterion(aux, y)
    return criterion(out, y)


def _network_seed(seed: int) -> int:
    """Seed of the global torch RNG during training (network-internal randomness such as drop
    path), a stream independent of the data generator seeded with ``seed``."""
    return int(np.random.SeedSequence(seed).spawn(1)[0].generate_state(1)[0])


def _save_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` atomically (:func:`~searchkit.rundir.write_atomic`). It is serialised in
    memory first, so a full disk or a file-size limit is a one-line error naming the file, not
    a torch serialisation traceback, and the previous epoch's checkpoint stays."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomic(path, buffer.getvalue())


def _finite(net: nn.Module) -> bool:
    """Whether every parameter of ``net`` is finite."""
    return all(bool(torch.isfinite(p).all()) for p in net.parameters())


def read_checkpoint(path: Path) -> dict:
    """The state :func:`train` saved in ``path``; a damaged or foreign file is a SearchkitError."""
    try:
        state = torch.load(path, map_location="cpu")
    except Exception as err:  # torch raises many types for a damaged or foreign file
        state = err
    if not isinstance(state, dict) or not isinstance(state.get("run"), dict):
        reason = type(state).__name__ if isinstance(state, Exception) else "not a searchkit checkpoint"
        raise SearchkitError(f"cannot read checkpoint {path} ({reason}); delete it to train from epoch 0 "
                             "(nothing else is lost)")
    return state


def train(
    net: nn.Module,
    splits: DatasetSplits,
    protocol: Protocol | str,
    device: torch.device | str | None = None,
    seed: int = 0,
    progress: bool = True,
    max_train: int | None = None,
    checkpoint: str | Path | None = None,
    identity: dict | None = None,
) -> TrainResult:
    """Train ``net`` ((B,C,H,W) -> (B, num_classes) logits) in place and evaluate it.

    ``protocol`` is a :class:`Protocol` or a :data:`PROTOCOLS` name. ``seed`` drives the shuffle,
    the augmentation, the ``max_train`` subset (a seeded random subset of the training split,
    since folder-backed splits are ordered by class; the argument overrides ``protocol.max_train``)
    and, through a forked global torch RNG, randomness inside the network (drop path); weight
    initialisation is the caller's. The same net, seed and machine give the same result (CUDA
    kernels may add nondeterminism). Reports test accuracy, and validation accuracy when
    ``splits.valid`` exists.

    ``checkpoint``: a file written atomically after every epoch (model, optimizer, scheduler, loss
    scaler, epoch, RNG states). If it exists, training resumes from it, and the result equals that
    of an uninterrupted run (``seconds`` adds up the sessions); a finished checkpoint only
    re-evaluates. A checkpoint from a different protocol, seed or training set is refused, as is
    one whose ``identity`` (JSON-like fields naming what is trained, e.g. the architecture) differs.

    A NaN or infinite mean loss over an epoch stops the training with :class:`TrainingDiverged`
    (checked once per epoch: one host sync, no per-step cost). Under float16 autocast a step whose
    forward overflows is skipped by the loss scaler and the weights stay finite, so there the
    weights must have become non-finite too.
    """
    if isinstance(protocol, str):
        protocol = get_protocol(protocol)
    device = torch.device(device) if device is not None else default_device()
    max_train = protocol.max_train if max_train is None else max_train
    generator = torch.Generator().manual_seed(seed)
    train_batches = _training_batches(splits, max_train, generator)
    _check_drop_path(net, protocol)
    plan = plan_batches(len(train_batches), protocol)
    if plan.note is not None:
        warnings.warn(plan.note, SmallTrainingSetWarning, stacklevel=2)
    eval_batch = protocol.batch_size
    protocol = dataclasses.replace(protocol, batch_size=plan.batch_size, lr=plan.lr)
    run = {"protocol": dataclasses.asdict(protocol), "seed": seed, "max_train": max_train,
           "dataset": splits.name, "train_size": len(train_batches), **({"identity": identity} if identity else {})}
    session = _Session.open(net, protocol, device, generator, run, augment=protocol.augment and splits.augment)
    path = Path(checkpoint).expanduser() if checkpoint is not None else None
    saved = {name: getattr(net, name) for name in ("drop_path_prob", "return_aux") if hasattr(net, name)}
    if protocol.auxiliary_weight > 0 and "return_aux" in saved:
        net.return_aux = True

    with torch.random.fork_rng(devices=session.cuda_devices):
        torch.manual_seed(_network_seed(seed))
        start_epoch, seconds, train_loss = session.restore(path)
        try:
            seconds, train_loss = session.epochs(train_batches, start_epoch, seconds, train_loss, path, progress)
        finally:
            for name, value in saved.items():
                setattr(net, name, value)

    valid = _confusion(net, _Batches(splits.valid), device, eval_batch) if splits.valid is not None else None
    test = _confusion(net, _Batches(splits.test), device, eval_batch)
    return TrainResult(
        test_acc=_accuracy(test),
        valid_acc=None if valid is None else _accuracy(valid),
        test_confusion=test.tolist(),
        valid_confusion=None if valid is None else valid.tolist(),
        train_loss=train_loss,
        seconds=seconds,
        epochs=protocol.epochs,
        params=sum(p.numel() for p in net.parameters() if p.requires_grad),
        steps=session.scheduler.last_epoch,
        batch_size=plan.batch_size,
        lr=plan.lr,
        batch_note=plan.note,
    )


def _training_batches(splits: DatasetSplits, max_train: int | None, generator: torch.Generator) -> _Batches:
    """The training split, or its seeded random subset of ``max_train`` examples (drawn from ``generator``)."""
    indices = None
    if max_train is not None:
        if max_train < 1:
            raise SearchkitError(f"max_train must be a positive integer (got {max_train!r})")
        indices = torch.randperm(len(splits.train), generator=generator)[:max_train]
    train_batches = _Batches(splits.train, indices)
    if len(train_batches) == 0:
        raise SearchkitError(f"the training split of {splits.name} is empty")
    return train_batches


def _check_drop_path(net: nn.Module, protocol: Protocol) -> None:
    """SearchkitError when the protocol drops paths and the network cannot (no ``drop_path_prob``)."""
    if protocol.drop_path > 0 and not hasattr(net, "drop_path_prob"):
        raise SearchkitError(
            f"protocol drop_path={protocol.drop_path} needs a network with a drop_path_prob attribute "
            "(DARTS networks have one); use a protocol with drop_path=0"
        )


@dataclass
class _Session:
    """The moving parts of one :func:`train` run: what an epoch steps and a checkpoint holds.

    ``run``: the fields that identify the run (a checkpoint of another run is refused);
    ``generator``: shuffle, augmentation (and subset) randomness."""

    net: nn.Module
    protocol: Protocol
    device: torch.device
    generator: torch.Generator
    run: dict
    augment: bool
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    criterion: nn.Module

    @classmethod
    def open(cls, net: nn.Module, protocol: Protocol, device: torch.device, generator: torch.Generator, run: dict,
             augment: bool) -> _Session:
        """Move ``net`` to ``device`` in training mode and build the optimizer (SGD), the LR schedule
        over ``run["train_size"]`` examples per epoch, the float16 loss scaler and the loss."""
        net.to(device).train()
        optimizer = torch.optim.SGD(
            net.parameters(), lr=protocol.lr, momentum=protocol.momentum,
            nesterov=protocol.nesterov, weight_decay=protocol.weight_decay,
        )
        total_steps = protocol.epochs * math.ceil(run["train_size"] / protocol.batch_size)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_factor(protocol, step, total_steps)
        )
        amp = protocol.amp and device.type == "cuda"
        return cls(net, protocol, device, generator, run, augment, optimizer, scheduler,
                   torch.amp.GradScaler("cuda", enabled=amp), nn.CrossEntropyLoss(label_smoothing=protocol.label_smoothing))

    @property
    def amp(self) -> bool:
        """Whether steps run under float16 autocast (``protocol.amp`` on a CUDA device)."""
        return self.protocol.amp and self.device.type == "cuda"

    @property
    def cuda_devices(self) -> list[torch.device]:
        return [self.device] if self.device.type == "cuda" else []

    def parts(self) -> dict[str, object]:
        return {"model": self.net, "optimizer": self.optimizer, "scheduler": self.scheduler, "scaler": self.scaler}

    def restore(self, path: Path | None) -> tuple[int, float, float]:
        """(first epoch to train, seconds spent, last train loss): from the checkpoint at ``path``
        when it exists (every part and RNG state loaded), else (0, 0.0, NaN)."""
        if path is None or not path.exists():
            return 0, 0.0, float("nan")
        state = read_checkpoint(path)
        if state.get("run") != self.run:
            raise SearchkitError(
                f"checkpoint {path} belongs to another training run (protocol, seed, training data or "
                "architecture differ); "
                "delete it or pass another checkpoint path"
            )
        for key, part in self.parts().items():
            part.load_state_dict(state[key])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["rng"])
        if self.cuda_devices:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        return state["epoch"], state["seconds"], state["train_loss"]

    def epoch(self, epoch: int, train_batches: _Batches) -> float:
        """Train one epoch (0-based ``epoch`` sets the drop-path probability); the mean training loss."""
        protocol, net, device, generator = self.protocol, self.net, self.device, self.generator
        if protocol.drop_path > 0:
            net.drop_path_prob = protocol.drop_path * epoch / protocol.epochs
        loss_sum = torch.zeros((), device=device)
        for x, y in train_batches(protocol.batch_size, generator):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if self.augment:
                x = augment_batch(x, generator)
                if protocol.cutout:
                    x = cutout(x, protocol.cutout, generator)
            with torch.autocast("cuda", dtype=torch.float16) if self.amp else contextlib.nullcontext():
                loss = _loss(self.criterion, net(x), y, protocol.auxiliary_weight)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if protocol.grad_clip is not None:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(net.parameters(), protocol.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            loss_sum += loss.detach() * len(y)
        return loss_sum.item() / len(train_batches)

    def epochs(self, train_batches: _Batches, start_epoch: int, seconds: float, train_loss: float,
               path: Path | None, progress: bool) -> tuple[float, float]:
        """Train the epochs from ``start_epoch`` on, checkpointing each to ``path``; (seconds, last
        train loss), adding to those given. :class:`TrainingDiverged` on a non-finite loss."""
        protocol = self.protocol
        bar = tqdm(range(start_epoch, protocol.epochs), desc=f"train {self.run['dataset']}", disable=not progress,
                   unit="epoch", initial=start_epoch, total=protocol.epochs)
        try:
            for epoch in bar:
                start = time.perf_counter()
                train_loss = self.epoch(epoch, train_batches)
                seconds += time.perf_counter() - start
                if not math.isfinite(train_loss) and (not self.amp or not _finite(self.net)):
                    # stopped before the checkpoint, which keeps the last finite epoch
                    raise TrainingDiverged(epoch + 1, protocol.epochs, train_loss, seconds)
                bar.set_postfix(loss=f"{train_loss:.4f}", lr=f"{self.optimizer.param_groups[0]['lr']:.4g}")
                if path is not None:
                    self.save(path, epoch + 1, seconds, train_loss)
        finally:
            bar.close()
        return seconds, train_loss

    def save(self, path: Path, epochs_done: int, seconds: float, train_loss: float) -> None:
        """Checkpoint the run after ``epochs_done`` epochs (atomically)."""
        _save_checkpoint(path, {
            "run": self.run, "epoch": epochs_done, "seconds": seconds, "train_loss": train_loss,
            **{key: part.state_dict() for key, part in self.parts().items()},
            "generator": self.generator.get_state(), "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.cuda_devices else None,
        })
