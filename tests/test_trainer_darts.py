"""Trainer under the DARTS protocol: presets, cutout, auxiliary loss, drop-path schedule,
resumable checkpoints, and a DARTS search run end to end."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import searchkit.train.trainer as trainer
from searchkit.data.base import DatasetSplits
from searchkit.engine import run_search
from searchkit.errors import SearchkitError
from fakes import PlainData
from searchkit.spaces import get_space
from searchkit.train.trainer import PROTOCOLS, _loss, cutout, get_protocol, train

CLASSES = 3


class Tensors(PlainData):
    """PlainData with the trainer's ``.tensors()`` fast path."""

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x, self.y


def toy_splits(n: int = 48) -> DatasetSplits:
    """32x32 images (the DARTS auxiliary head needs them): a class pattern plus noise."""
    g = torch.Generator().manual_seed(0)
    protos = torch.randn(CLASSES, 3, 32, 32, generator=g)

    def part(m: int) -> Tensors:
        y = torch.arange(m) % CLASSES
        return Tensors(protos[y] + torch.randn(m, 3, 32, 32, generator=g), y)

    return DatasetSplits(name="toy32", num_classes=CLASSES, input_shape=(3, 32, 32),
                         train=part(n), test=part(24), augment=True)


def tiny_darts(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    space = get_space("darts")
    return space.build(space.decode("DARTS_V2"), CLASSES, C=4, layers=3, auxiliary=True)


def tiny_protocol(**kw) -> trainer.Protocol:
    """darts-tiny for 3 epochs at batch 16, kept at 16 on these few-example sets (no small-set adaptation)."""
    return get_protocol("darts-tiny", **{"epochs": 3, "batch_size": 16, "min_steps_per_epoch": 0, **kw})


# ---------------------------------------------------------------- presets
def test_darts_presets_have_the_published_values() -> None:
    p = PROTOCOLS["darts"]
    assert (p.epochs, p.batch_size, p.lr, p.momentum, p.nesterov, p.weight_decay, p.schedule) == (
        600, 96, 0.025, 0.9, False, 3e-4, "cosine")
    assert (p.cutout, p.drop_path, p.auxiliary_weight, p.grad_clip, p.max_train, p.augment) == (
        16, 0.2, 0.4, 5.0, None, True)
    assert p.network == {"C": 36, "layers": 20, "auxiliary": True}
    small, study, tiny = PROTOCOLS["darts-small"], PROTOCOLS["darts-study"], PROTOCOLS["darts-tiny"]
    assert small.network == {"C": 16, "layers": 8, "auxiliary": True} and small.epochs == 10
    assert study.network == {"C": 8, "layers": 5, "auxiliary": True} and (study.epochs, study.max_train) == (8, 5000)
    assert tiny.network == {"C": 8, "layers": 5, "auxiliary": True} and tiny.epochs == 2 and tiny.max_train
    for q in (small, study, tiny):  # the same recipe, scaled down
        assert (q.lr, q.weight_decay, q.cutout, q.drop_path, q.auxiliary_weight, q.grad_clip) == (
            0.025, 3e-4, 16, 0.2, 0.4, 5.0)
    assert PROTOCOLS["nb201"].network == {} and PROTOCOLS["nb201-short"].network == {}
    assert PROTOCOLS["nb201"].cutout == 0 and PROTOCOLS["nb201"].drop_path == 0 and PROTOCOLS["nb201"].max_train is None
    assert get_protocol("darts", epochs=3, cutout=8).cutout == 8
    with pytest.raises(SearchkitError, match="choose one of: nb201, nb201-short, darts, darts-small, darts-study, darts-tiny"):
        get_protocol("darts-huge")


@pytest.mark.parametrize("field, value, fragment", [
    ("cutout", -1, "cutout must be an integer >= 0"),
    ("drop_path", 1.5, "drop_path must be in \\[0, 1\\]"),
    ("auxiliary_weight", -0.4, "auxiliary_weight must be >= 0"),
    ("max_train", 0, "max_train must be a positive integer or None"),
])
def test_new_field_errors(field: str, value, fragment: str) -> None:
    with pytest.raises(SearchkitError, match=fragment):
        get_protocol("darts", **{field: value})


# ---------------------------------------------------------------- cutout
def test_cutout_zeroes_one_clipped_square_per_image() -> None:
    x = torch.rand(64, 3, 32, 32) + 1.0  # no zeros of its own
    out = cutout(x, 16, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    cy, cx = torch.randint(0, 32, (64,), generator=g), torch.randint(0, 32, (64,), generator=g)
    clipped_at_border = 0
    for i in range(64):  # reference: one image at a time, as DARTS' Cutout class does
        y0, y1 = max(int(cy[i]) - 8, 0), min(int(cy[i]) + 8, 32)
        x0, x1 = max(int(cx[i]) - 8, 0), min(int(cx[i]) + 8, 32)
        expected = x[i].clone()
        expected[:, y0:y1, x0:x1] = 0
        assert torch.equal(out[i], expected)
        clipped_at_border += (y1 - y0) * (x1 - x0) < 256
    assert 0 < clipped_at_border < 64
    assert cutout(torch.ones(1, 1, 4, 4), 16, torch.Generator()).sum() == 0  # larger than the image


def test_cutout_runs_only_where_augmentation_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def spy(x, length, generator):
        calls.append(length)
        return cutout(x, length, generator)

    monkeypatch.setattr(trainer, "cutout", spy)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, CLASSES))
    plain = dict(drop_path=0.0, auxiliary_weight=0.0, epochs=1)
    train(net, toy_splits(), tiny_protocol(**plain), device="cpu", progress=False)
    assert calls and set(calls) == {16}
    calls.clear()
    train(net, toy_splits(), tiny_protocol(augment=False, **plain), device="cpu", progress=False)
    train(net, toy_splits(), tiny_protocol(cutout=0, **plain), device="cpu", progress=False)
    assert not calls


# ---------------------------------------------------------------- auxiliary loss and drop path
def test_auxiliary_loss() -> None:
    criterion = nn.CrossEntropyLoss()
    logits, aux, y = torch.randn(5, 3), torch.randn(5, 3), torch.tensor([0, 1, 2, 0, 1])
    assert torch.equal(_loss(criterion, logits, y, 0.4), criterion(logits, y))
    assert torch.allclose(_loss(criterion, (logits, aux), y, 0.4), criterion(logits, y) + 0.4 * criterion(aux, y))


def test_drop_path_schedule_and_aux_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    net = tiny_darts()
    seen = []
    real_loss = trainer._loss

    def spy(criterion, out, y, weight):
        seen.append((net.drop_path_prob, isinstance(out, tuple), weight))
        return real_loss(criterion, out, y, weight)

    monkeypatch.setattr(trainer, "_loss", spy)
    train(net, toy_splits(n=32), tiny_protocol(epochs=4), device="cpu", progress=False)
    assert [p for p, _, _ in seen] == [0.2 * e / 4 for e in range(4) for _ in range(2)]  # 2 batches per epoch
    assert all(is_tuple and w == 0.4 for _, is_tuple, w in seen)
    assert net.drop_path_prob == 0.0 and net.return_aux is False  # restored
    seen.clear()
    train(net, toy_splits(n=32), tiny_protocol(epochs=1, auxiliary_weight=0.0, drop_path=0.0), device="cpu",
          progress=False)
    assert all(not is_tuple and p == 0.0 for p, is_tuple, _ in seen)
    with pytest.raises(SearchkitError, match="drop_path=0.2 needs a network with a drop_path_prob attribute"):
        train(nn.Sequential(nn.Flatten(), nn.Linear(3072, CLASSES)), toy_splits(), tiny_protocol(), progress=False)


def test_protocol_max_train_and_cpu_amp_flag() -> None:
    splits = toy_splits(n=96)
    base = dict(epochs=1, drop_path=0.0, auxiliary_weight=0.0)
    make = lambda: nn.Sequential(nn.Flatten(), nn.Linear(3072, CLASSES))  # noqa: E731
    torch.manual_seed(0)
    net = make()
    a = train(copy.deepcopy(net), splits, tiny_protocol(max_train=20, **base), device="cpu", progress=False)
    b = train(copy.deepcopy(net), splits, tiny_protocol(max_train=None, **base), device="cpu", progress=False,
              max_train=20)
    c = train(copy.deepcopy(net), splits, tiny_protocol(max_train=20, amp=False, **base), device="cpu", progress=False)
    assert a.train_loss == b.train_loss == c.train_loss  # amp is a no-op on the CPU


# ---------------------------------------------------------------- checkpoints
def test_checkpoint_resume_equals_an_uninterrupted_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    splits, protocol = toy_splits(), tiny_protocol(epochs=3)
    reference_net = tiny_darts()
    reference = train(reference_net, splits, protocol, device="cpu", seed=4, progress=False)

    path = tmp_path / "ckpt" / "run.pt"
    real_save = trainer._save_checkpoint

    def interrupt_after_first_epoch(p: Path, state: dict) -> None:
        real_save(p, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "_save_checkpoint", interrupt_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_darts(), splits, protocol, device="cpu", seed=4, progress=False, checkpoint=path)
    assert torch.load(path)["epoch"] == 1 and not path.with_name("run.pt.tmp").exists()
    monkeypatch.setattr(trainer, "_save_checkpoint", real_save)

    resumed_net = tiny_darts(seed=99)  # other initial weights: the checkpoint's replace them
    resumed = train(resumed_net, splits, protocol, device="cpu", seed=4, progress=False, checkpoint=path)
    for a, b in zip(reference_net.state_dict().values(), resumed_net.state_dict().values()):
        assert torch.equal(a, b)
    assert (resumed.train_loss, resumed.test_acc, resumed.epochs) == (reference.train_loss, reference.test_acc, 3)
    assert torch.load(path)["epoch"] == 3

    again = train(tiny_darts(seed=7), splits, protocol, device="cpu", seed=4, progress=False, checkpoint=path)
    assert (again.train_loss, again.test_acc, again.seconds) == (resumed.train_loss, resumed.test_acc, resumed.seconds)
    with pytest.raises(SearchkitError, match="belongs to another training run"):
        train(tiny_darts(), splits, protocol, device="cpu", seed=5, progress=False, checkpoint=path)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(SearchkitError, match="cannot read checkpoint .*delete it to train from epoch 0"):
        train(tiny_darts(), splits, protocol, device="cpu", seed=4, progress=False, checkpoint=path)


# ---------------------------------------------------------------- end to end
def test_darts_search_and_training_end_to_end(tmp_path: Path) -> None:
    config = {
        "name": "darts-e2e", "device": "cpu",
        "data": {"name": "synthetic", "batch_size": 8,
                 "options": {"num_classes": CLASSES, "n_train": 32, "n_valid": 0, "n_test": 16}},
        "space": {"name": "darts", "build": {"C": 4, "layers": 3}},
        "strategy": {"name": "evolution", "options": {"population": 2, "sample_size": 1}},
        "budget": {"archs": 3},
        "evaluate": {"method": "train", "protocol": "darts-tiny", "epochs": 1},
    }
    result = run_search(config, out=tmp_path / "run", progress=False)
    space = get_space("darts")
    assert space.encode(space.decode(result.arch)) == result.arch and result.index is None
    assert result.archs_scored == 3 and 0.0 <= result.score <= 1.0
    assert result.evaluation is not None and result.evaluation.source == "trained"
    assert result.evaluation.details["params"] == sum(
        p.numel() for p in space.build(space.decode(result.arch), CLASSES, C=8, layers=5, auxiliary=True).parameters())
    assert np.isfinite(result.evaluation.details["train_loss"])
