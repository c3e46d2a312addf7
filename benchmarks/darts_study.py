"""The DARTS study: search the DARTS space with each strategy on a fixed small budget, then train
every genotype found, DARTS_V2 and TENAS_cifar10 under ONE identical reduced protocol.

    python benchmarks/darts_study.py --out results/darts --preset darts-study

Strategies (their search settings in :data:`STRATEGIES`, scoring on the proxy network of
``configs/darts-cifar10.yaml``: 5 cells, C=8, CIFAR-10 batch of 64):

* ``random`` + KCC: the best KCC of 100 uniformly sampled genotypes;
* ``REA`` + KCC: regularized evolution (population 20, tournament 5), 100 genotypes scored;
* ``NASI``: Algorithm 1 of seed 002 through the DARTS supernet at the proxy's size (separate op and
  input choice per node, top-2 retention, appendix B.2-B.3), the trace objective with mu = 2
  (the paper's DARTS setting), T = 30 (the paper: 100), b = the scoring batch (64), nu fixed by eq. 40 on 20 samples
  (the paper's nu = 100 belongs to its own supernet's scale).

Built on the runner every study uses (:class:`searchkit.study.runs.Study`): each search is a run
(:func:`searchkit.run_search`) in ``OUT/runs/search__<strategy>/`` (``search seconds`` is its
measured training-free wall time), each training an evaluation run
(:func:`searchkit.evaluation.run_evaluation`) under the preset (``--epochs`` and ``--max-train``
override its fields) in ``OUT/runs/train__<name>/`` with a resumable checkpoint, and each
finished run a row of ``OUT/runs.csv``. Rerunning the command skips what is finished and resumes
what is not. ``OUT/README.md`` gets the table, the published full-protocol anchors and the command.

``--subset small`` is a smoke test: searches of 3 genotypes / 2 NASI steps, training on 256
images and testing on 512.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from searchkit.config import RunConfig, config_from_dict, load_config
from searchkit.data import get_dataset
from searchkit.data.base import DatasetSplits
from searchkit.errors import SearchkitError
from searchkit.evaluation import evaluation_protocol
from searchkit.rundir import RunDir
from searchkit.spaces import get_space
from searchkit.study.runs import Study, dirname

ROOT = Path(__file__).resolve().parent.parent
BASE_CONFIG = ROOT / "configs" / "darts-cifar10.yaml"

#: label -> (strategy, metric, strategy options, budget in architectures scored).
STRATEGIES: dict[str, tuple[str, str, dict, int | None]] = {
    "random": ("random", "kcc", {}, 100),
    "REA": ("evolution", "kcc", {"population": 20, "sample_size": 5}, 100),
    "NASI": ("nasi", "ntk_trace", {"steps": 30, "mu": 2.0, "nu": "fixed", "nu_samples": 20}, None),
}
#: Published genotypes trained beside the ones found (names in darts/genotypes.json).
REFERENCES = ("DARTS_V2", "TENAS_cifar10")
#: Published full-protocol anchors: CIFAR-10 test error (%) and search cost.
ANCHORS = (
    ("DARTS (2nd order)", "2.76 +- 0.09", "1 GPU-day", "Liu et al. 2019"),
    ("TE-NAS", "2.63", "0.05 GPU-day", "Chen et al. 2021"),
    ("NASI-FIX", "2.79 +- 0.07", "0.24 GPU-hours", "seed 002, table 1"),
    ("ZiCo", "2.45", "0.03 GPU-day", "Li et al. 2023"),
)
SMALL = {"archs": 3, "nasi": {"steps": 2, "nu_samples": 2}, "max_train": 256, "test_images": 512}
#: runs.csv: one row per finished search or training.
FIELDS = ("kind", "name", "arch", "run")


def base_config(config: str | Path | dict | None = None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """The shared run settings (data, proxy network, evaluation seed): ``configs/darts-cifar10.yaml``
    unless another YAML path or config dict is given, with dotted ``overrides``."""
    if isinstance(config, dict):
        return config_from_dict(config)
    return load_config(config or BASE_CONFIG, list(overrides))


def search_config(base: RunConfig, label: str, small: bool) -> RunConfig:
    """The run config of one strategy's search (no evaluation: training happens in the study)."""
    name, metric, options, archs = STRATEGIES[label]
    options = {**options, **(SMALL["nasi"] if small and name == "nasi" else {})}
    if small and archs is not None:
        archs = SMALL["archs"]
    return dataclasses.replace(
        base, name=f"darts-study-{label}",
        metric=dataclasses.replace(base.metric, name=metric, options=base.metric.options if metric == base.metric.name else {}),
        strategy=dataclasses.replace(base.strategy, name=name, options=options),
        budget=dataclasses.replace(base.budget, archs=archs if archs is not None else 1, seconds=None),
        evaluate=dataclasses.replace(base.evaluate, method="none"),
    )


def train_config(base: RunConfig, preset: str, epochs: int | None, max_train: int | None) -> RunConfig:
    """The one training protocol every genotype gets: ``preset`` with ``epochs`` / ``max_train``."""
    overrides = {**base.evaluate.overrides, **({"max_train": max_train} if max_train is not None else {})}
    return dataclasses.replace(base, evaluate=dataclasses.replace(
        base.evaluate, method="train", protocol=preset, epochs=epochs, overrides=overrides))


def run_searches(study: Study, base: RunConfig, small: bool) -> dict[str, dict]:
    """Each strategy's search in ``runs/search__<label>/`` (resumed if interrupted, skipped if done)."""
    done, found = study.done(), {}
    for label in STRATEGIES:
        name = dirname("search", label)
        if name not in done:
            print(f"[darts-study] search {label}", file=sys.stderr)
            result = study.search(name, search_config(base, label, small))
            study.record({"kind": "search", "name": label, "arch": result.arch, "run": f"runs/{name}"})
        run = RunDir(study.path(name))
        result, config = json.loads((run.path / "best.json").read_text()), run.read_config()
        found[label] = {"arch": result["arch"], "search_seconds": result["search_cost"]["wall_seconds"],
                        "score": result["score"], "metric": result["metric"], "strategy": config["strategy"],
                        "metric_options": config["metric"]["options"],
                        "archs_scored": result["search_cost"]["archs_scored"]}
    return found


def study_splits(base: RunConfig, test_images: int | None) -> DatasetSplits:
    """The dataset of ``base.data``; with ``test_images``, a seeded random subset of its test split."""
    splits = get_dataset(base.data.name, base.data.root, **base.data.options)
    if test_images is None or test_images >= len(splits.test):
        return splits
    if not hasattr(splits.test, "subset"):
        raise SearchkitError(f"cannot take a test subset of {splits.name}; run without --subset small")
    idx = np.sort(np.random.default_rng(0).choice(len(splits.test), size=test_images, replace=False))
    return dataclasses.replace(splits, test=splits.test.subset(idx))


def run_trainings(study: Study, cfg: RunConfig, genotypes: dict[str, str], splits: DatasetSplits) -> dict[str, dict]:
    """Train each genotype under ``cfg.evaluate`` in ``runs/train__<name>/`` (checkpointed; skipped if done)."""
    done, results = study.done(), {}
    for label, text in genotypes.items():
        name = dirname("train", label)
        if name not in done:
            print(f"[darts-study] train {label}", file=sys.stderr)
            study.evaluate(name, cfg, text, splits)
            study.record({"kind": "train", "name": label, "arch": text, "run": f"runs/{name}"})
        results[label] = json.loads((study.path(name) / "evaluation.json").read_text())
    return results


ABBREVIATIONS = {"max_pool_3x3": "mp3", "avg_pool_3x3": "ap3", "skip_connect": "skip", "sep_conv_3x3": "sep3",
                 "sep_conv_5x5": "sep5", "dil_conv_3x3": "dil3", "dil_conv_5x5": "dil5", "none": "none"}


def short(text: str) -> str:
    """A genotype in one table cell: ``sep3<0 sep3<1 ... / mp3<0 ...`` (op < input node, 8 pairs per cell)."""
    genotype = get_space("darts").decode(text)
    return " / ".join(" ".join(f"{ABBREVIATIONS[op]}<{j}" for op, j in cell) for cell in (genotype.normal, genotype.reduce))


def machine_name(device: str) -> str:
    """The GPU's name, or the CPU model and the number of torch threads."""
    if device != "cpu" and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (float16 autocast)"
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "CPU") if Path("/proc/cpuinfo").exists() \
        else (platform.processor() or "CPU")
    return f"{model}, {torch.get_num_threads()} torch thread(s), float32 (the protocol's amp applies on CUDA only)"


def write_readme(path: Path, command: str, protocol: dict, found: dict[str, dict], trained: dict[str, dict],
                 test_size: int, machine: str) -> None:
    """The study's table, the anchors, the command and the caveats."""
    def row(name: str, strategy: str, seconds: str) -> str:
        t = trained[name]
        d = t["details"]
        return (f"| {strategy} | {short(t['arch'])} | {seconds} | {d['inference_params'] / 1e6:.3f} | "
                f"{t['test_accuracy']:.2f} | {d['seconds']:.0f} |")

    lines = [
        "# DARTS space: strategies under one reduced training protocol",
        "",
        f"Command (from the repository root): `{command}`",
        "",
        f"Machine: {machine}. Every genotype below was trained with the same protocol, seed and data:",
        f"`{json.dumps(protocol, sort_keys=True)}`; test accuracy on {test_size} CIFAR-10 test images.",
        "",
        "| strategy | genotype (normal / reduce: op<input per pair) | search seconds | params (M, no aux head) "
        "| test accuracy (%) | training seconds |",
        "|---|---|---|---|---|---|",
    ]
    for label, item in found.items():
        lines.append(row(label, label, f"{item['search_seconds']:.1f}"))
    for name in REFERENCES:
        lines.append(row(name, f"{name} (published)", "-"))
    lines += ["", "Genotypes (the DARTS code's text):", ""]
    lines += [f"- {label} ({item['metric']} {item['score']:.4g}): `{item['arch']}`" for label, item in found.items()]
    lines += [f"- {name}: `{trained[name]['arch']}`" for name in REFERENCES]
    lines += ["", "Search settings (scoring on the proxy network of the base config, `configs/darts-cifar10.yaml`):", ""]
    lines += [f"- {label}: strategy `{item['strategy']['name']}`, metric `{item['metric']}` "
              f"`{json.dumps(item['metric_options'], sort_keys=True)}`, strategy options "
              f"`{json.dumps(item['strategy']['options'], sort_keys=True)}`"
              + (f", {item['archs_scored']} architectures scored" if item["archs_scored"] else "")
              for label, item in found.items()]
    lines += ["", "Published full-protocol anchors (600 epochs, 20 cells, C=36; CIFAR-10 test error, search cost):", "",
              "| method | test error (%) | search cost | source |", "|---|---|---|---|"]
    lines += [f"| {a} | {e} | {c} | {s} |" for a, e, c, s in ANCHORS]
    lines += [
        "",
        "Caveat: the accuracies above come from a reduced protocol (few epochs, a subset of the training",
        "images, a small network) chosen so that the whole study runs on one CPU core. They rank the",
        "genotypes under that protocol only and are NOT comparable to the 600-epoch anchors (about 97% accuracy);",
        "short training favours cells that learn fast (e.g. parameter-light, skip-heavy ones), which the full",
        "protocol may rank differently. Each genotype is trained once (one seed): the seed-to-seed spread of",
        "this protocol was not measured, so gaps of a few points between rows are not established differences.",
        "Search seconds are measured on this machine (training-free work only).",
        "",
    ]
    path.write_text("\n".join(lines))


def run_study(out: Path, preset: str, epochs: int | None = None, max_train: int | None = None,
              small: bool = False, config: str | Path | dict | None = None, overrides: list[str] | tuple[str, ...] = (),
              command: str = "", progress: bool = True) -> Path:
    """Searches, trainings and ``out/README.md``; returns the README's path. Resumable."""
    base = base_config(config, overrides)
    cfg = train_config(base, preset, epochs, SMALL["max_train"] if small and max_train is None else max_train)
    protocol = dataclasses.asdict(evaluation_protocol(cfg))
    out.mkdir(parents=True, exist_ok=True)
    study = Study(out, FIELDS, progress)
    found = run_searches(study, base, small)
    splits = study_splits(base, SMALL["test_images"] if small else None)
    space = get_space("darts")
    genotypes = {label: item["arch"] for label, item in found.items()}
    genotypes.update({name: space.encode(space.named(name)) for name in REFERENCES})
    trained = run_trainings(study, cfg, genotypes, splits)
    readme = out / "README.md"
    write_readme(readme, command, protocol, found, trained, len(splits.test), machine_name(cfg.device))
    return readme


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="study directory (rerun the command to resume)")
    parser.add_argument("--preset", default="darts-study", help="training preset every genotype gets (default: darts-study)")
    parser.add_argument("--epochs", type=int, help="override the preset's epochs")
    parser.add_argument("--max-train", type=int, help="override the preset's number of training images")
    parser.add_argument("--subset", choices=("full", "small"), default="full",
                        help="small: a smoke test (tiny searches, 256 training and 512 test images)")
    parser.add_argument("--config", type=Path, help=f"base run config (default: {BASE_CONFIG.relative_to(ROOT)})")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("overrides", nargs="*", help="dotted overrides of the base config, e.g. data.root=DIR device=cpu")
    args = parser.parse_args(argv)
    command = "python benchmarks/darts_study.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    start = time.perf_counter()
    try:
        readme = run_study(args.out, args.preset, args.epochs, args.max_train, args.subset == "small", args.config,
                           args.overrides, command, progress=not args.quiet)
    except SearchkitError as err:
        print(f"darts_study: error: {err}", file=sys.stderr)
        return 2
    print(readme.read_text())
    print(f"[darts-study] done in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
