"""A trained selection to take away: ``model.pt`` and ``model.json`` in its run directory,
:func:`load` and :func:`export` (``searchkit export RUN_DIR --format torchscript|onnx|state_dict``).

``model.pt`` is the trained network traced to TorchScript in eval mode (BatchNorm's running
statistics), on the CPU: ``torch.jit.load("model.pt")(x)`` with ``x: (B, C, H, W)`` float32,
normalised as ``model.json`` says, returns ``(B, num_classes)`` logits, without searchkit.
``model.json`` (:func:`model_card`) records what the file is: the space, architecture and build
options that rebuild it, the classes in logit order, the input size, the normalisation and the
accuracy the training reached. :func:`load` rebuilds the searchkit ``nn.Module`` from the card and
loads the traced module's weights (a traced module keeps the original's parameter names), so the
one file serves TorchScript users and fine-tuning alike.
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from searchkit.data.base import DatasetSplits
from searchkit.errors import SearchkitError
from searchkit.rundir import MODEL_CARD, MODEL_FILE

FORMATS = ("torchscript", "onnx", "state_dict")
CARD_FORMAT = "searchkit-model/1"


def normalisation(splits: DatasetSplits) -> dict | None:
    """How the dataset normalised its inputs: the record the dataset keeps (``info["normalisation"]``),
    else its per-channel ``mean``/``std`` of pixels scaled to [0, 1]; None when it records neither."""
    record = splits.info.get("normalisation")
    if isinstance(record, dict):
        return dict(record)
    if "mean" in splits.info and "std" in splits.info:
        return {"mean": [float(v) for v in splits.info["mean"]], "std": [float(v) for v in splits.info["std"]],
                "input": "pixels scaled to [0, 1], then (x - mean) / std per channel"}
    return None


def model_card(space_name: str, arch: str, build: dict, splits: DatasetSplits, evaluation: Any) -> dict:
    """``model.json``: what ``model.pt`` is and how well it does (``evaluation``: the training's
    :class:`~searchkit.evaluation.Evaluation`)."""
    classes = splits.info.get("classes")
    return {
        "format": CARD_FORMAT,
        "space": space_name, "arch": arch, "build": dict(build),
        "num_classes": splits.num_classes,
        "classes": [str(c) for c in classes] if classes is not None else [str(i) for i in range(splits.num_classes)],
        "input_shape": list(splits.input_shape),
        "normalisation": normalisation(splits),
        "dataset": splits.name,
        "accuracy": {"test": evaluation.test_accuracy, "valid": evaluation.valid_accuracy,
                     "epochs": evaluation.details.get("epochs"), "protocol": evaluation.details.get("protocol")},
        "files": {"torchscript": MODEL_FILE},
        "usage": f"torch.jit.load('{MODEL_FILE}')(x), x: (B, C, H, W) float32 normalised as above -> (B, "
                 f"num_classes) logits; searchkit.load(RUN_DIR) rebuilds the nn.Module",
    }


def trace(net: nn.Module, input_shape: tuple[int, ...] | list[int]) -> torch.jit.ScriptModule:
    """``net`` traced in eval mode on the CPU (a copy; ``net`` is untouched), batch size free.
    torch 2.13 deprecates TorchScript in favour of ``torch.export``, but still loads and runs it
    everywhere with ``torch.jit.load``; the deprecation warning is not the user's to act on."""
    net = copy.deepcopy(net).cpu().eval()
    example = torch.zeros(2, *input_shape)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.trace(net, example)


def save_model(directory: str | Path, net: nn.Module, space_name: str, arch: str, build: dict,
               splits: DatasetSplits, evaluation: Any) -> dict:
    """Write ``model.pt`` (TorchScript) and ``model.json`` into ``directory``; returns their paths."""
    directory = Path(directory)
    card = model_card(space_name, arch, build, splits, evaluation)
    tmp = directory / (MODEL_FILE + ".tmp")
    trace(net, splits.input_shape).save(str(tmp))
    tmp.replace(directory / MODEL_FILE)
    (directory / MODEL_CARD).write_text(json.dumps(card, indent=2) + "\n")
    return {"torchscript": str(directory / MODEL_FILE), "card": str(directory / MODEL_CARD)}


def read_card(run_dir: str | Path) -> dict:
    """A run directory's ``model.json``; SearchkitError when it has no trained model."""
    run_dir = Path(run_dir).expanduser()
    card_path, model_path = run_dir / MODEL_CARD, run_dir / MODEL_FILE
    if not card_path.is_file() or not model_path.is_file():
        raise SearchkitError(f"{run_dir} holds no trained model ({MODEL_FILE} and {MODEL_CARD}); a search writes them "
                             "when it trains its selection (evaluate.method=train or auto without a table)")
    try:
        card = json.loads(card_path.read_text())
    except json.JSONDecodeError as err:
        raise SearchkitError(f"{card_path} is not valid JSON ({err.msg}); rerun the search's final training") from None
    if card.get("format") != CARD_FORMAT:
        raise SearchkitError(f"{card_path} is not a searchkit model card (format {card.get('format')!r})")
    return card


def load(run_dir: str | Path) -> nn.Module:
    """The trained network of a run directory as its searchkit ``nn.Module``, in eval mode on the CPU."""
    from searchkit.spaces import get_space

    card = read_card(run_dir)
    space = get_space(card["space"])
    with torch.random.fork_rng(devices=[]):
        net = space.build(space.decode(card["arch"]), card["num_classes"], in_channels=card["input_shape"][0],
                          **card["build"])
    net.load_state_dict(torch.jit.load(str(Path(run_dir).expanduser() / MODEL_FILE), map_location="cpu").state_dict())
    return net.eval()


def export(run_dir: str | Path, fmt: str, out: str | Path) -> Path:
    """Write the run's trained network to ``out`` as ``fmt`` (:data:`FORMATS`): TorchScript (a copy
    of ``model.pt``), ONNX (torch's ``torch.export``-based exporter, dynamic batch; needs ``pip
    install searchkit[export]``) or a PyTorch ``state_dict`` (for :func:`load`'s module)."""
    if fmt not in FORMATS:
        raise SearchkitError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    card = read_card(run_dir)
    out = Path(out).expanduser()
    if out.is_dir():
        raise SearchkitError(f"--out {out} is a directory; give the file to write, e.g. {out / 'model.onnx'}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "torchscript":
        shutil.copyfile(Path(run_dir).expanduser() / MODEL_FILE, out)
    elif fmt == "state_dict":
        torch.save(load(run_dir).state_dict(), out)
    else:
        _export_onnx(load(run_dir), card["input_shape"], out)
    return out


def _export_onnx(net: nn.Module, input_shape: list[int], out: Path) -> None:
    """``net`` as ONNX at ``out``: input ``input`` (batch, C, H, W), output ``logits`` (batch, classes)."""
    try:
        import onnx  # noqa: F401  (the exporter writes through them)
        import onnxscript  # noqa: F401
    except ImportError:
        raise SearchkitError("ONNX export needs the onnx package: pip install 'searchkit[export]' "
                             "(onnx, onnxscript; onnxruntime to check the file)") from None
    example = torch.zeros(2, *input_shape)
    batch = torch.export.Dim("batch")
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # the exporter's progress lines and warnings are not the user's to act on
        torch.onnx.export(net, (example,), str(out), input_names=["input"], output_names=["logits"],
                          dynamic_shapes=({0: batch},), dynamo=True, external_data=False)
