"""Per-class honesty beside the accuracy (issue 29): confusion matrix, balanced accuracy, per-class
table and plot, written for every trained evaluation."""
import json

import numpy as np
import pytest
import torch

from searchkit.cli import main
from searchkit.train.per_class import class_report, confusion_matrix, describe_classes

pytestmark = pytest.mark.usefixtures("one_thread")


def test_confusion_matrix_counts_true_rows_against_predicted_columns():
    target = torch.tensor([0, 0, 1, 2, 2, 2])
    predicted = torch.tensor([0, 1, 1, 2, 0, 2])
    assert confusion_matrix(target, predicted, 4).tolist() == [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]]


def test_a_never_predicted_small_class_shows_in_balanced_accuracy():
    """The issue's 200/40/10 folder: the small class is never predicted. Accuracy 96 %, balanced 66.67 %."""
    confusion = np.array([[200, 0, 0], [0, 40, 0], [6, 4, 0]])
    report = class_report(confusion, ["big", "mid", "small"])
    assert report["balanced_accuracy"] == pytest.approx(200 / 3, abs=0.01)
    small = report["per_class"][2]
    assert small == {"class": "small", "support": 10, "recall": 0.0, "predicted": 0, "precision": None}
    assert report["per_class"][0]["precision"] == pytest.approx(100 * 200 / 206, abs=0.01)
    assert describe_classes(report).startswith("balanced test accuracy 66.67% over 3 classes; lowest recall: "
                                               "small 0.00% (10 images, predicted 0 times)")


def test_a_class_without_test_images_is_left_out_of_the_mean():
    report = class_report([[3, 1], [0, 0]])
    assert report["balanced_accuracy"] == 75.0 and report["per_class"][1]["recall"] is None


def test_a_trained_evaluation_writes_the_table_and_the_confusion_plot(tmp_path, capsys):
    out = tmp_path / "eval"
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    assert main(["evaluate", "--arch", arch, "--dataset", "synthetic", "--epochs", "1", "--out", str(out), "--quiet",
                 "data.options={num_classes: 3, shape: [3, 8, 8], n_train: 48, n_valid: 12, n_test: 30}",
                 "space.build={C: 4, N: 1}", "evaluate.overrides={min_steps_per_epoch: 0}"]) == 0
    printed = capsys.readouterr().out
    details = json.loads((out / "evaluation.json").read_text())
    classes = details["details"]["classes"]
    confusion = np.array(classes["confusion"])
    assert confusion.shape == (3, 3) and confusion.sum() == 30 and [row["support"] for row in classes["per_class"]] == [10] * 3
    assert details["test_accuracy"] == pytest.approx(100 * np.trace(confusion) / 30)
    assert classes["balanced_accuracy"] == pytest.approx(np.mean(100 * np.diag(confusion) / 10), abs=0.01)
    assert np.array(details["details"]["valid_classes"]["confusion"]).sum() == 12
    assert details["details"]["evaluated_on"] == {"test": "test split: 30 images", "valid": "validation split: 12 images"}
    assert (out / "confusion.png").stat().st_size > 0
    assert f"per class: balanced test accuracy {classes['balanced_accuracy']:.2f}% over 3 classes" in printed
    assert "validation accuracy: " in printed and "% on the validation split: 12 images" in printed


def test_digits_says_which_split_its_validation_accuracy_is_measured_on(tmp_path):
    """Issue 29: digits' best.json had valid_accuracy equal to the test accuracy with nothing saying
    what the validation split was (its own 360 images, apart from the 360 test images)."""
    from searchkit.engine import run_search

    result = run_search(None, ["budget.archs=2", "evaluate.epochs=1", "evaluate.overrides.max_train=64",
                               "space.build={C: 4, N: 1}"], out=tmp_path / "run", progress=False)
    final = json.loads((tmp_path / "run" / "best.json").read_text())["final"]
    assert final["details"]["evaluated_on"] == {"test": "test split: 360 images", "valid": "validation split: 360 images"}
    assert sum(map(sum, final["details"]["valid_classes"]["confusion"])) == 360
    assert final["valid_accuracy"] == result.evaluation.valid_accuracy
