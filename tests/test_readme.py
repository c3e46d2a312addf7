"""Every command in README.md's ```bash blocks works as written (issue 29: the README must not drift).

Each command is run in-process through ``searchkit.cli.main`` in one temporary directory (``configs/``,
``benchmarks/`` and ``results/`` linked in, ``~`` a temporary home), in README order, so that
``--resume`` and ``store stats`` find what the commands before them wrote. To stay fast, budgets are
cut, as a user would by adding overrides; how each command is exercised:

- ``search``: run, with ``budget.archs=2 data.batch_size=16 evaluate.epochs=1
  evaluate.overrides.max_train=32`` appended (DARTS: networks of 3 cells, C=4; NASI: one step of
  batch 8, nu from 2 samples; measured CPU latency: 1 repeat, no warm-up); a ``--resume`` of an
  example directory resumes the first search run here instead (a finished run: replayed, same answer).
- ``evaluate``: run, 1 epoch on at most 32 training images (DARTS: a network of 3 cells, C=4).
- ``correlate``: run on 10 architectures (the least it accepts) instead of ``--n``'s, scoring batch 16.
- ``benchmark``: its config is loaded and checked whole; the run itself uses a copy cut to one seed,
  the first two strategies, ``synflow`` and a 12-cell pool (nothing imported from ``score_cache``).
- ``store``: run on the store the commands before it filled; ``export``: run on the own-images search's
  run directory; ``python -c``: run in a subprocess in that directory.
- own images: ``images/`` holds 2 classes of 12 random 16x16 PNGs in train/ and 4 in test/.
- ``python benchmarks/darts_study.py``: its arguments are parsed and its base config loaded with its
  overrides (a dry path: the smoke test alone takes minutes).
- ``pip install``, ``pytest``: only the quick start's, the CPU build of torch installed first.

CIFAR-10's test split is cut to its first 100 images (trainings evaluate on it); scoring batches are
drawn from the real training split. A command none of these rules knows fails the test, so a new README command needs one.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from searchkit import cli
from searchkit.data import DATASETS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SHARED = ROOT.parent / "shared" / "data"

pytestmark = pytest.mark.usefixtures("one_thread")


def readme_blocks() -> list[list[list[str]]]:
    """The README's ```bash blocks, each a list of commands (argv; continuations joined, comments dropped)."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), re.S)
    return [[shlex.split(line, comments=True) for line in block.replace("\\\n", " ").splitlines()
             if shlex.split(line, comments=True)] for block in blocks]


def readme_commands() -> list[list[str]]:
    """Every command of the README's bash blocks, environment assignments (``OMP_NUM_THREADS=1``) dropped."""
    commands = []
    for block in readme_blocks():
        for line in block:
            while "&&" in line:
                commands.append(line[:line.index("&&")])
                line = line[line.index("&&") + 1:]
            while line and re.fullmatch(r"[A-Z_]+=\S*", line[0]):
                line = line[1:]
            commands.append(line)
    return commands


SEARCH_BUDGET = ["budget.archs=2", "data.batch_size=16", "evaluate.epochs=1", "evaluate.overrides.max_train=32"]
#: DARTS networks cut to 3 cells of C=4: the scoring proxy (and NASI's supernet) and every training's.
DARTS_SMALL = ["space.build={C: 4, layers: 3}", "evaluate.overrides.network={C: 4, layers: 3}"]


def _replace_flag(argv: list[str], flag: str, value: str) -> list[str]:
    """``argv`` with ``flag``'s value set to ``value`` (added when absent)."""
    if flag in argv:
        i = argv.index(flag)
        return argv[:i + 1] + [value] + argv[i + 2:]
    return argv + [flag, value]


def fast_argv(argv: list[str], state: dict) -> list[str]:
    """The ``searchkit`` command ``argv`` with its budget cut (see the module docstring)."""
    command = argv[0]
    if command == "search" and "--resume" in argv:
        return _replace_flag(argv, "--resume", str(state["first_search"]))
    if command == "search":
        extra = list(SEARCH_BUDGET)
        if "configs/darts-cifar10.yaml" in argv:
            extra += DARTS_SMALL
        if "strategy.name=nasi" in argv:
            extra += ["strategy.options.steps=1", "strategy.options.nu_samples=2", "strategy.options.batch_size=8"]
        if any(arg.startswith("constraint=") and "cpu" in arg for arg in argv):
            extra += ["hardware.repeats=1", "hardware.warmup=0"]
        elif any(arg.startswith("constraint") for arg in argv):  # strategy auto: the warm-up hybrid, which
            extra += ["budget.seconds=3"]                       # ignores budget.archs; its screen cut to 3 s
        out = [] if "--out" in argv else ["--out", f"runs/search-{len(state['searches'])}"]
        return [command, *out, "--quiet", *argv[1:], *extra]  # flags first: overrides may end the line
    if command == "evaluate":
        small = ["evaluate.overrides.max_train=32", *(DARTS_SMALL[1:] if "darts" in argv else [])]
        return [command, *_replace_flag(argv[1:], "--epochs", "1"), "--quiet", *small]
    if command == "correlate" and "--n" in argv:
        return _replace_flag(_replace_flag(argv, "--n", "10"), "--batch-size", "16") + ["--quiet"]
    if command == "correlate":
        return argv + ["--quiet"]
    if command == "benchmark":
        return _replace_flag(argv, "--config", str(_small_benchmark(argv[argv.index("--config") + 1]))) + ["--quiet"]
    if command in ("store", "export"):
        return argv
    raise AssertionError(f"README command 'searchkit {shlex.join(argv)}' has no rule in tests/test_readme.py")


def _small_benchmark(path: str) -> Path:
    """A copy of the benchmark config ``path``, checked whole first, cut to a seconds-long run."""
    from searchkit.study.benchmark_config import load_benchmark_config

    load_benchmark_config(path)
    data = yaml.safe_load(Path(path).read_text())
    bench = data["benchmark"]
    bench.update(seeds=1, score_cache=[], metrics=["synflow"], strategies=bench["strategies"][:2],
                 pool={"n": 12, "seed": 0, "scored_only": False})
    data["budget"] = {**data.get("budget", {}), "archs": 5}
    small = Path("small-" + Path(path).name)
    small.write_text(yaml.safe_dump(data))
    return small


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A directory like a checkout's root (configs/, benchmarks/, results/ linked in), and a home for ``~``."""
    work = tmp_path_factory.mktemp("readme")
    for name in ("configs", "benchmarks", "results"):
        (work / name).symlink_to(ROOT / name)
    (work / "home").mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 4)):
        for cls in ("ant", "bee"):
            (work / "images" / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(work / "images" / split / cls / f"{i}.png")
    return work


@pytest.fixture
def at_workdir(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("HOME", str(workdir / "home"))
    monkeypatch.setenv("SEARCHKIT_DATA", str(SHARED))
    cifar10 = DATASETS.get("cifar10")

    def small_test_split(*args, **kwargs):
        splits = cifar10(*args, **kwargs)
        splits.test = splits.test.subset(range(100))
        return splits

    monkeypatch.setitem(DATASETS._factories, "cifar10", small_test_split)
    return workdir


STATE: dict = {"searches": []}
COMMANDS = readme_commands()
#: The commands run here; ``pip`` and ``pytest`` lines are checked by the install test instead.
RUN = [argv for argv in COMMANDS if argv[0] not in ("pip", "pytest")]


def test_the_quick_start_installs_the_cpu_build_of_torch_first():
    first = readme_blocks()[0]
    assert first[0] == ["pip", "install", "torch==2.13.0"], first
    assert first[1][:3] == ["pip", "install", "-e"] and first[1][3].startswith(".[dev]"), first
    assert [argv for argv in COMMANDS if argv[0] in ("pip", "pytest")] == [first[0], first[1], ["pytest"]]


@pytest.mark.skipif(not (SHARED / "nb201").is_dir(), reason="needs ../shared/data")
@pytest.mark.parametrize("argv", RUN, ids=[shlex.join(argv)[:80] for argv in RUN])
def test_readme_command_works(argv, at_workdir, monkeypatch, capsys):
    if argv[:2] == ["python", "benchmarks/darts_study.py"]:
        _dry_darts_study(argv[2:], monkeypatch)
        return
    if argv[:2] == ["python", "-c"]:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))}
        done = subprocess.run([sys.executable, *argv[1:]], cwd=at_workdir, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-500:]
        return
    assert argv[0] == "searchkit", f"README command {shlex.join(argv)!r} has no rule in tests/test_readme.py"
    args = [str(Path(a).expanduser()) if a.startswith("~") else a for a in fast_argv(argv[1:], STATE)]
    code = cli.main(args)
    captured = capsys.readouterr()
    assert code == 0, f"searchkit {shlex.join(args)} exited {code}: {captured.err.strip()[-500:]}"
    if argv[1] == "search" and "--resume" not in argv:
        STATE["searches"].append(args)
        STATE.setdefault("first_search", at_workdir / args[args.index("--out") + 1])


def _dry_darts_study(argv: list[str], monkeypatch) -> None:
    """Parse the study's arguments and load its base config with its overrides, without running it."""
    import importlib.util

    from searchkit.config import load_config

    spec = importlib.util.spec_from_file_location("darts_study", ROOT / "benchmarks" / "darts_study.py")
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    called = {}
    monkeypatch.setattr(study, "run_study", lambda *args, **kwargs: called.setdefault("args", args) and 1 / 0)
    with pytest.raises(ZeroDivisionError):
        study.main(argv)
    out, preset, epochs, max_train, small, config, overrides, *_ = called["args"]
    load_config(config or study.BASE_CONFIG, overrides)
    from searchkit.train.trainer import get_protocol
    get_protocol(preset)


def test_every_readme_search_command_has_a_valid_config():
    """Every ``searchkit search`` line's config and overrides load (no data needed): the NASI-on-DARTS
    line keeps none of the config's evolution and KCC options (issue 29)."""
    from searchkit.cli import build_parser
    from searchkit.config import load_config

    searches = [argv for argv in COMMANDS if argv[:2] == ["searchkit", "search"] and "--resume" not in argv]
    assert len(searches) >= 8
    for argv in searches:
        args = build_parser().parse_args(argv[1:])
        config = args.config if args.config is None else ROOT / args.config
        cfg = load_config(config, args.overrides)
        if cfg.strategy.name == "nasi":
            assert cfg.strategy.options == {"steps": 30, "mu": 2.0} and cfg.metric.options == {}
