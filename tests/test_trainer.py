"""Trainer: learning on a separable toy problem, schedule, augmentation, determinism, errors."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

import searchkit.train.trainer as trainer
from searchkit.data.base import DatasetSplits
from searchkit.errors import SearchkitError
from searchkit.train import PROTOCOLS, Protocol, evaluate, get_protocol, train
from fakes import PlainData
from searchkit.train.trainer import augment_batch, lr_factor, random_crop, random_flip

SHAPE = (3, 8, 8)
CLASSES = 4




class TensorData(PlainData):
    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x, self.y


def make_splits(
    fast: bool = True, augment: bool = False, valid: bool = True, n: int = 512
) -> DatasetSplits:
    """Four classes, each a fixed random +-1 pattern plus Gaussian noise (sd 0.5): separable."""
    g = torch.Generator().manual_seed(123)
    protos = torch.randint(0, 2, (CLASSES, *SHAPE), generator=g).float() * 2 - 1

    def part(m: int) -> Dataset:
        y = torch.randint(0, CLASSES, (m,), generator=g)
        x = protos[y] + 0.5 * torch.randn(m, *SHAPE, generator=g)
        return (TensorData if fast else PlainData)(x, y)

    return DatasetSplits(
        name="toy", num_classes=CLASSES, input_shape=SHAPE, train=part(n), test=part(256),
        valid=part(128) if valid else None, augment=augment,
    )


def make_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(192, 32), nn.ReLU(), nn.Linear(32, CLASSES))


def short(**kw) -> Protocol:
    """A 3-epoch protocol at batch 64 (8 steps per epoch on the 512-example toy set: kept as it is,
    tests/test_small_data_training.py covers the small-set adaptation)."""
    return get_protocol("nb201-short", **{"epochs": 3, "batch_size": 64, "min_steps_per_epoch": 0, **kw})


# ---------------------------------------------------------------- learning
@pytest.mark.parametrize("fast", [True, False], ids=["tensors", "dataloader"])
def test_learns_separable_data(fast: bool) -> None:
    net = make_net()
    result = train(net, make_splits(fast=fast), short(), device="cpu", progress=False)
    assert result.test_acc > 95 and result.valid_acc is not None and result.valid_acc > 95
    assert result.train_loss < 0.3
    assert result.epochs == 3 and result.seconds > 0
    assert result.params == 192 * 32 + 32 + 32 * CLASSES + CLASSES


def test_no_valid_split_and_conv_net_with_augmentation() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.Flatten(), nn.Linear(8 * 64, CLASSES))
    result = train(net, make_splits(valid=False, augment=True), short(epochs=2), progress=False)
    assert result.valid_acc is None
    assert 0 <= result.test_acc <= 100


def test_augmentation_only_when_both_flags_allow(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def spy(x, generator, pad=4):
        calls.append(x.shape)
        return augment_batch(x, generator, pad)

    monkeypatch.setattr(trainer, "augment_batch", spy)
    cases = [(True, True, True), (True, False, False), (False, True, False)]
    for protocol_aug, split_aug, expected in cases:
        calls.clear()
        train(make_net(), make_splits(augment=split_aug), short(epochs=1, augment=protocol_aug),
              progress=False)
        assert bool(calls) == expected
    train(make_net(), make_splits(augment=True), short(epochs=1), progress=False)
    assert calls[0] == (64, *SHAPE)


def test_max_train_uses_a_seeded_subset() -> None:
    splits = make_splits(n=256)
    a = train(make_net(), splits, short(epochs=1), progress=False, max_train=40)
    b = train(make_net(), splits, short(epochs=1), progress=False, max_train=40)
    assert a.train_loss == b.train_loss
    with pytest.raises(SearchkitError, match="max_train"):
        train(make_net(), splits, short(), progress=False, max_train=0)


# ---------------------------------------------------------------- schedule
def test_cosine_factor() -> None:
    p = short()
    assert lr_factor(p, 0, 100) == 1.0
    assert lr_factor(p, 50, 100) == pytest.approx(0.5)
    assert lr_factor(p, 100, 100) == pytest.approx(0.0)
    assert lr_factor(short(schedule="constant"), 99, 100) == 1.0


def test_training_lr_decays_to_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    lrs: list[float] = []

    class RecordingSGD(torch.optim.SGD):
        def step(self, closure=None):
            lrs.append(self.param_groups[0]["lr"])
            return super().step(closure)

    monkeypatch.setattr(torch.optim, "SGD", RecordingSGD)
    train(make_net(), make_splits(n=500), short(epochs=4), progress=False)
    assert len(lrs) == 4 * 8  # ceil(500 / 64) = 8 steps per epoch
    assert lrs[0] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert lrs[-1] < 1e-3


# ---------------------------------------------------------------- augmentation
def test_flip_permutes_pixels() -> None:
    x = torch.randn(16, *SHAPE)
    out = random_flip(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    flipped = [bool(torch.equal(o, xi.flip(-1))) for o, xi in zip(out, x)]
    kept = [bool(torch.equal(o, xi)) for o, xi in zip(out, x)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert any(flipped) and any(kept)
    assert torch.equal(out.flatten().sort().values, x.flatten().sort().values)


def test_crop_matches_reference() -> None:
    x = torch.randn(16, *SHAPE)
    out = random_crop(x, 4, torch.Generator().manual_seed(1))
    assert out.shape == x.shape and not torch.equal(out, x)
    g = torch.Generator().manual_seed(1)
    oy, ox = torch.randint(0, 9, (2, 16), generator=g)
    padded = nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(16):  # reference: one image at a time
        assert torch.equal(out[i], padded[i, :, oy[i]:oy[i] + 8, ox[i]:ox[i] + 8])


def test_augment_batch_shape_and_change() -> None:
    x = torch.randn(32, 3, 16, 16)
    out = augment_batch(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype and not torch.equal(out, x)


# ---------------------------------------------------------------- determinism
def test_same_seed_same_result() -> None:
    splits = make_splits(augment=True)
    net = make_net()
    nets = [copy.deepcopy(net) for _ in range(3)]
    results = [train(n, splits, short(epochs=2), seed=s, progress=False)
               for n, s in zip(nets, [7, 7, 8])]
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        assert torch.equal(a, b)
    assert results[0].train_loss == results[1].train_loss
    assert results[0].test_acc == results[1].test_acc
    assert any(not torch.equal(a, b) for a, b in zip(nets[0].parameters(), nets[2].parameters()))


# ---------------------------------------------------------------- evaluate
def test_evaluate_matches_manual_and_restores_mode() -> None:
    splits = make_splits()
    net = make_net().train()
    x, y = splits.test.tensors()
    with torch.no_grad():
        manual = 100.0 * (net(x).argmax(1) == y).float().mean().item()
    assert evaluate(net, splits.test, "cpu", batch_size=50) == pytest.approx(manual)
    assert evaluate(net, PlainData(x, y), batch_size=256) == pytest.approx(manual)
    assert net.training
    with pytest.raises(SearchkitError, match="empty"):
        evaluate(net, PlainData(x[:0], y[:0]), "cpu")


# ---------------------------------------------------------------- protocols
def test_presets() -> None:
    p = PROTOCOLS["nb201"]
    assert (p.epochs, p.batch_size, p.lr, p.momentum, p.nesterov, p.weight_decay) == (
        200, 256, 0.1, 0.9, True, 5e-4
    )
    assert p.schedule == "cosine" and p.augment and p.label_smoothing == 0 and p.grad_clip is None
    assert PROTOCOLS["nb201-short"].epochs == 12
    assert get_protocol("nb201-short", epochs=5).epochs == 5


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda: get_protocol("imagenet"), "'imagenet'; choose one of: nb201, nb201-short"),
        (lambda: get_protocol("nb201", epoch=3), "unknown training protocol field.*valid fields"),
        (lambda: get_protocol("nb201", schedule="step"), "schedule must be one of cosine"),
        (lambda: get_protocol("nb201", epochs=0), "epochs must be a positive integer"),
        (lambda: get_protocol("nb201", momentum=0.0), "nesterov needs momentum"),
        (lambda: train(make_net(), make_splits(), "nope", progress=False), "unknown training"),
    ],
)
def test_protocol_errors(call, fragment: str) -> None:
    with pytest.raises(SearchkitError, match=fragment):
        call()
