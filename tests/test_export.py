"""A model to take away (issue 24): a search that trains its selection writes model.pt (TorchScript,
loadable by torch alone) and model.json; ``searchkit.load`` rebuilds the trained module;
``searchkit export`` writes TorchScript, ONNX and a state_dict whose outputs equal the trainer's
logits to 1e-5, and the loaded model's test predictions are the trainer's."""
import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import searchkit
from searchkit.cli import main
from searchkit.config import config_from_dict
from searchkit.data import get_dataset
from searchkit.evaluation import Evaluation, evaluation_protocol
from searchkit.export import load, save_model
from searchkit.runtime import build_network
from searchkit.spaces import get_space
from searchkit.train.trainer import train

pytestmark = pytest.mark.usefixtures("one_thread")
ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
BUILD = {"C": 4, "N": 1}
SEARCH = ["data.name=digits", "data.batch_size=16", "space.build={C: 4, N: 1}", "budget.archs=3",
          "strategy.name=random", "evaluate.epochs=1"]


@pytest.fixture(scope="module")
def digits():
    return get_dataset("digits")


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
    """(the trainer's network, the directory its model files were written to)."""
    cfg = config_from_dict({"evaluate": {"epochs": 1}})
    space = get_space("nb201")
    net = build_network(space, space.decode(ARCH), digits, 0, BUILD)
    result = train(net, digits, evaluation_protocol(cfg), device="cpu", progress=False)
    out = tmp_path_factory.mktemp("model")

    evaluation = Evaluation(result.test_acc, result.valid_acc, "trained", "digits", {"epochs": 1, "protocol": "nb201"})
    save_model(out, net, "nb201", ARCH, BUILD, digits, evaluation)
    return net.eval(), out


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> tuple[Path, str]:
    """(a search's run directory, what the command printed)."""
    out, printed = tmp_path_factory.mktemp("search") / "run", io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["search", "--quiet", "--out", str(out), *SEARCH]) == 0
    return out, printed.getvalue()


def test_torchscript_and_the_loaded_module_give_the_trainers_logits(trained, digits):
    net, out = trained
    x, _ = digits.test.tensors()
    with torch.no_grad():
        expected = net(x)
        scripted = torch.jit.load(str(out / "model.pt"))(x)
        rebuilt = load(out)(x)
    assert torch.allclose(scripted, expected, atol=1e-5, rtol=0) and torch.allclose(rebuilt, expected, atol=1e-5, rtol=0)
    assert isinstance(load(out), torch.nn.Module) and not load(out).training


def test_the_model_card_says_what_the_model_is(trained, digits):
    card = json.loads((trained[1] / "model.json").read_text())
    assert card["arch"] == ARCH and card["build"] == BUILD and card["space"] == "nb201"
    assert card["input_shape"] == [1, 8, 8] and card["classes"] == [str(i) for i in range(10)]
    assert card["normalisation"]["mean"] == pytest.approx(list(digits.info["mean"]))
    assert card["normalisation"]["std"] == pytest.approx(list(digits.info["std"]))
    assert 0 <= card["accuracy"]["test"] <= 100 and card["files"] == {"torchscript": "model.pt"}


def test_model_pt_loads_with_plain_torch_without_searchkit(trained):
    code = ("import sys, torch; m = torch.jit.load(sys.argv[1]); y = m(torch.zeros(3, 1, 8, 8)); "
            "assert tuple(y.shape) == (3, 10) and not any(k.startswith('searchkit') for k in sys.modules); print('ok')")
    done = subprocess.run([sys.executable, "-c", code, str(trained[1] / "model.pt")], capture_output=True, text=True,
                          cwd=trained[1], env={"PATH": "", "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_onnx_export_equals_the_trainers_logits(trained, digits, tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="ONNX check needs onnxruntime: pip install 'searchkit[export]'")
    pytest.importorskip("onnx", reason="ONNX export needs onnx: pip install 'searchkit[export]'")
    net, out = trained
    assert main(["export", str(out), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 0
    x, _ = digits.test.tensors()
    logits = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        expected = net(x).numpy()
    assert logits.shape == expected.shape and np.abs(logits - expected).max() <= 1e-5


def test_state_dict_and_torchscript_exports_round_trip(trained, digits, tmp_path):
    net, out = trained
    assert main(["export", str(out), "--format", "state_dict", "--out", str(tmp_path / "w.pt")]) == 0
    assert main(["export", str(out), "--format", "torchscript", "--out", str(tmp_path / "m.pt")]) == 0
    space = get_space("nb201")
    fresh = space.build(space.decode(ARCH), 10, in_channels=1, **BUILD)
    fresh.load_state_dict(torch.load(tmp_path / "w.pt"))
    x, _ = digits.test.tensors()
    with torch.no_grad():
        expected = net(x)
        assert torch.allclose(fresh.eval()(x), expected, atol=1e-5, rtol=0)
        assert torch.allclose(torch.jit.load(str(tmp_path / "m.pt"))(x), expected, atol=1e-5, rtol=0)


def test_a_search_that_trains_its_selection_leaves_a_model_whose_predictions_are_the_trainers(searched, digits):
    searched, _ = searched
    best = json.loads((searched / "best.json").read_text())
    assert best["model"] == {"torchscript": str(searched / "model.pt"), "card": str(searched / "model.json")}
    net = searchkit.load(searched)
    x, y = digits.test.tensors()
    with torch.no_grad():
        correct = int((net(x).argmax(1) == y).sum())
    assert 100.0 * correct / len(y) == best["final"]["test_accuracy"]  # the trainer's count, to the image
    assert json.loads((searched / "model.json").read_text())["arch"] == best["arch"]


def test_the_search_prints_its_plan_first_and_the_model_last(searched):
    run, out = searched
    assert out.startswith("plan (random; measured on this machine in ")
    assert "  score     3 cells, " in out and "  final     1 epoch x 17 steps of batch 64 + 4 evaluation batches: ~" in out
    assert "(after the search, outside the budget)" in out
    assert out.splitlines()[-2] == f"trained model: {run / 'model.pt'} (TorchScript; what it is: model.json)"


def test_export_without_a_trained_model_is_one_line_and_exit_2(capsys, tmp_path):
    (tmp_path / "run").mkdir()
    assert main(["export", str(tmp_path / "run"), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("searchkit: error: ") and "holds no trained model" in err and "\n" not in err
    assert not (tmp_path / "m.onnx").exists()
