"""Small training sets: the protocol's batch adapts (with a warning) and results report steps."""
from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from searchkit.data import get_dataset
from searchkit.data.base import DatasetSplits
from searchkit.spaces import get_space
from searchkit.train import get_protocol, train
from searchkit.train.trainer import MIN_BATCH, SmallTrainingSetWarning, plan_batches
from fakes import PlainData

NB201 = get_protocol("nb201")
CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def write_tints(root: Path, n_train: int, n_test: int, size: int = 8, seed: int = 0) -> None:
    """3 classes of noise PNGs, each class with its own colour tint; no valid/ folder."""
    rng = np.random.default_rng(seed)
    for c, tint in enumerate(([60, 0, 0], [0, 60, 0], [0, 0, 60])):
        for split, n in (("train", n_train), ("test", n_test)):
            (root / split / f"class{c}").mkdir(parents=True, exist_ok=True)
            for k in range(n):
                image = np.clip(rng.normal(100, 40, (size, size, 3)) + tint, 0, 255).astype(np.uint8)
                Image.fromarray(image).save(root / split / f"class{c}" / f"{k:03d}.png")


@pytest.mark.parametrize("n, protocol, expected", [
    (240, NB201, (16, 15)),  # issue 18: 1 step per epoch at 256
    (50_000, NB201, (256, 196)),  # CIFAR-10: unchanged
    (2_560, NB201, (256, 10)),  # exactly 10 steps: unchanged
    (2_304, NB201, (128, 18)),  # 9 steps at 256
    (500, get_protocol("darts"), (32, 16)),  # 96 -> powers of two below it: 64 gives 8 steps, 32 gives 16
    (30, NB201, (MIN_BATCH, 4)),  # the floor: fewer steps than wanted, said in the note
    (240, dataclasses.replace(NB201, min_steps_per_epoch=0), (256, 1)),  # adaptation off
    (40, dataclasses.replace(NB201, batch_size=8), (8, 5)),  # already at the floor
])
def test_batch_plan_rule(n, protocol, expected) -> None:
    plan = plan_batches(n, protocol)
    assert (plan.batch_size, plan.steps_per_epoch) == expected
    assert (plan.note is None) == (plan.batch_size == protocol.batch_size)


def test_batch_plan_scales_the_learning_rate_by_the_square_root() -> None:
    assert plan_batches(240, NB201).lr == pytest.approx(0.1 * (16 / 256) ** 0.5) == pytest.approx(0.025)
    assert plan_batches(2_304, NB201).lr == pytest.approx(0.1 / 2 ** 0.5)
    assert plan_batches(50_000, NB201).lr == 0.1
    assert plan_batches(240, dataclasses.replace(NB201, min_steps_per_epoch=0)).lr == 0.1


def test_batch_plan_note_is_one_clear_line() -> None:
    note = plan_batches(240, dataclasses.replace(NB201, epochs=5)).note
    assert note == ("the training set has 240 images, 1 step per epoch at the protocol's batch size 256: training "
                    "with batch size 16 and learning rate 0.025 (was 0.1, scaled by sqrt(16/256)) instead, 15 steps "
                    "per epoch, 75 in all; set the protocol's min_steps_per_epoch=0 to keep 256")
    assert "add training images" in plan_batches(30, NB201).note and "\n" not in plan_batches(30, NB201).note


def test_min_steps_option_is_validated() -> None:
    with pytest.raises(Exception, match="min_steps_per_epoch must be an integer >= 0"):
        get_protocol("nb201", min_steps_per_epoch=-1)


def test_a_small_folder_trains_well_above_chance(tmp_path: Path) -> None:
    """240 images (no valid/): 24 validation images are carved, 216 train; batch 256 would be 1
    step per epoch, the adapted batch 16 (lr 0.025) gives 14."""
    write_tints(tmp_path, n_train=80, n_test=20)
    splits = get_dataset("imagefolder", root=tmp_path)
    assert splits.info["valid_split"]["per_class"] == [8, 8, 8] and len(splits.train) == 216
    space = get_space("nb201")

    def run(protocol):
        torch.manual_seed(0)
        net = space.build(space.decode(CELL), 3, C=4, N=1)
        return train(net, splits, protocol, device="cpu", progress=False)

    with pytest.warns(SmallTrainingSetWarning, match="216 images, 1 step per epoch .* batch size 16 and learning rate 0.025"):
        adapted = run(get_protocol("nb201", epochs=3))
    assert (adapted.batch_size, adapted.steps, adapted.epochs, adapted.lr) == (16, 42, 3, pytest.approx(0.025))
    assert adapted.batch_note is not None and adapted.test_acc >= 90 and adapted.valid_acc >= 90
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kept = run(get_protocol("nb201", epochs=3, min_steps_per_epoch=0))
    assert (kept.batch_size, kept.steps, kept.lr, kept.batch_note) == (256, 3, 0.1, None)
    assert kept.train_loss > adapted.train_loss


def test_a_large_enough_set_keeps_the_protocol() -> None:
    g = torch.Generator().manual_seed(0)
    data = PlainData(torch.randn(2_560, 3, 4, 4, generator=g), torch.randint(0, 3, (2_560,), generator=g))
    splits = DatasetSplits("plain", 3, (3, 4, 4), train=data, test=data, augment=False)
    net = nn.Sequential(nn.Flatten(), nn.Linear(48, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = train(net, splits, get_protocol("nb201", epochs=1), device="cpu", progress=False)
    assert (result.batch_size, result.steps, result.batch_note) == (256, 10, None)
