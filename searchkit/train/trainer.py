"""Train and evaluate a network under a named protocol (NAS-Bench-201's by default).

NAS-Bench-201 protocol (Dong & Yang, ICLR 2020, configs ``200E``/``12E``): SGD, momentum 0.9,
nesterov, lr 0.1 with cosine decay to 0, weight decay 5e-4 on every parameter, batch 256,
cross-entropy, random crop (pad 4) + horizontal flip, 200 epochs (or 12). As in the benchmark's
scheduler, the cosine lr is updated every iteration, not once per epoch.

Choices the benchmark leaves to its image pipeline: inputs arrive already normalised, so the crop
pads with 0, i.e. with the dataset's mean colour rather than black; the last, smaller batch of an
epoch is kept.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from searchkit.data.base import DatasetSplits
from searchkit.errors import SearchkitError

SCHEDULES = ("cosine", "constant")


@dataclass(frozen=True)
class Protocol:
    """Training hyper-parameters. ``schedule``: "cosine" (per-iteration decay to 0) or "constant".

    ``network`` holds build options of the evaluated network that override the search space's
    (e.g. a DARTS preset's cells and channels); NB201 presets leave the network as searched.
    ``augment`` turns on random crop (pad 4) + horizontal flip; it applies only where the
    dataset's ``DatasetSplits.augment`` allows it. ``grad_clip``: max global gradient L2 norm.
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
        if problems:
            raise SearchkitError("invalid training protocol: " + "; ".join(problems))


PROTOCOLS: dict[str, Protocol] = {
    "nb201": Protocol(epochs=200),
    "nb201-short": Protocol(epochs=12),
}


def get_protocol(name: str, **overrides) -> Protocol:
    """A :data:`PROTOCOLS` preset with fields replaced, e.g. ``get_protocol("nb201", epochs=4)``."""
    if name not in PROTOCOLS:
        raise SearchkitError(
            f"unknown training protocol {name!r}; choose one of: {', '.join(sorted(PROTOCOLS))}"
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

    Accuracies in %; ``seconds``: training wall time (evaluation excluded); ``train_loss``: mean
    loss over the last epoch; ``params``: number of trainable parameters.
    """

    test_acc: float
    valid_acc: float | None
    train_loss: float
    seconds: float
    epochs: int
    params: int


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


class _Batches:
    """Mini-batches ``(x (B,C,H,W) float32, y (B,) int64)`` on the CPU from a map-style dataset.

    Datasets with ``.tensors() -> (X (N,C,H,W), Y (N,))`` are batched by tensor indexing;
    any other dataset goes through a single-process DataLoader.
    """

    def __init__(self, dataset: Dataset, indices: torch.Tensor | None = None) -> None:
        self.tensors = None
        if hasattr(dataset, "tensors"):
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


def _accuracy(net: nn.Module, batches: _Batches, device: torch.device, batch_size: int) -> float:
    if len(batches) == 0:
        raise SearchkitError("cannot evaluate on an empty dataset")
    was_training = net.training
    net.eval()
    correct = 0
    with torch.no_grad():
        for x, y in batches(batch_size):
            logits = net(x.to(device, non_blocking=True))
            correct += int((logits.argmax(1).cpu() == y).sum())
    net.train(was_training)
    return 100.0 * correct / len(batches)


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
    return _accuracy(net.to(device), _Batches(dataset), device, batch_size)


def train(
    net: nn.Module,
    splits: DatasetSplits,
    protocol: Protocol | str,
    device: torch.device | str | None = None,
    seed: int = 0,
    progress: bool = True,
    max_train: int | None = None,
) -> TrainResult:
    """Train ``net`` ((B,C,H,W) -> (B, num_classes) logits) in place and evaluate it.

    ``protocol`` is a :class:`Protocol` or a :data:`PROTOCOLS` name. ``seed`` drives the shuffle,
    the augmentation and the ``max_train`` subset (a seeded random subset of the training split,
    since folder-backed splits are ordered by class); weight initialisation is the caller's.
    The same net, seed and machine give the same result (CUDA kernels may add nondeterminism).
    Reports test accuracy, and validation accuracy when ``splits.valid`` exists.
    """
    if isinstance(protocol, str):
        protocol = get_protocol(protocol)
    device = torch.device(device) if device is not None else default_device()
    generator = torch.Generator().manual_seed(seed)
    indices = None
    if max_train is not None:
        if max_train < 1:
            raise SearchkitError(f"max_train must be a positive integer (got {max_train!r})")
        indices = torch.randperm(len(splits.train), generator=generator)[:max_train]
    train_batches = _Batches(splits.train, indices)
    if len(train_batches) == 0:
        raise SearchkitError(f"the training split of {splits.name} is empty")
    augment = protocol.augment and splits.augment

    net.to(device).train()
    optimizer = torch.optim.SGD(
        net.parameters(), lr=protocol.lr, momentum=protocol.momentum,
        nesterov=protocol.nesterov, weight_decay=protocol.weight_decay,
    )
    total_steps = protocol.epochs * math.ceil(len(train_batches) / protocol.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(protocol, step, total_steps)
    )
    criterion = nn.CrossEntropyLoss(label_smoothing=protocol.label_smoothing)

    start = time.perf_counter()
    loss_sum = torch.zeros((), device=device)
    bar = tqdm(range(protocol.epochs), desc=f"train {splits.name}", disable=not progress,
               unit="epoch")
    for _ in bar:
        loss_sum = torch.zeros((), device=device)
        for x, y in train_batches(protocol.batch_size, generator):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if augment:
                x = augment_batch(x, generator)
            loss = criterion(net(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if protocol.grad_clip is not None:
                nn.utils.clip_grad_norm_(net.parameters(), protocol.grad_clip)
            optimizer.step()
            scheduler.step()
            loss_sum += loss.detach() * len(y)
        bar.set_postfix(loss=f"{loss_sum.item() / len(train_batches):.4f}",
                        lr=f"{optimizer.param_groups[0]['lr']:.4g}")
    seconds = time.perf_counter() - start

    bs = protocol.batch_size
    valid = _accuracy(net, _Batches(splits.valid), device, bs) if splits.valid is not None else None
    return TrainResult(
        test_acc=_accuracy(net, _Batches(splits.test), device, bs),
        valid_acc=valid,
        train_loss=loss_sum.item() / len(train_batches),
        seconds=seconds,
        epochs=protocol.epochs,
        params=sum(p.numel() for p in net.parameters() if p.requires_grad),
    )
