"""The ``searchkit`` command: search | evaluate | export | score | correlate | benchmark | store.

A thin layer over the Python API. Errors a user can cause print one line on stderr and exit 2.
"""
from __future__ import annotations

import argparse
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from searchkit.errors import SearchkitError


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) instead of usage + message, and help epilogs built
    only when help is shown (``epilog`` may be a callable: listing the registries imports torch)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise SearchkitError(f"{message} (see '{self.prog} --help')")

    def format_help(self) -> str:
        if callable(self.epilog):
            self.epilog = self.epilog()
        return super().format_help()


def _names() -> str:
    """The registered names of every pluggable kind, for the help texts."""
    from searchkit.data import DATASETS
    from searchkit.metrics import METRICS
    from searchkit.spaces import SPACES
    from searchkit.strategies import STRATEGIES
    from searchkit.train.trainer import PROTOCOLS

    return "\n".join([
        f"strategies: {', '.join(STRATEGIES.names())}",
        f"metrics:    {', '.join(METRICS.names())}",
        "            (with options: kcc:eps=0.01:bn=eval; several: kcc,synflow)",
        f"spaces:     {', '.join(SPACES.names())}",
        f"datasets:   {', '.join(DATASETS.names())}",
        f"presets:    {', '.join(PROTOCOLS)} (training protocols of evaluate.protocol / --preset)",
    ])


def _epilog(*examples: str):
    """A lazy help epilog: the registered names, then ``examples``."""
    return lambda: _names() + "\n\nexamples:\n" + "\n".join(f"  {example}" for example in examples)


def _parallel(args: argparse.Namespace):
    from searchkit.workers import Parallel

    return Parallel.resolve(args.backend, args.workers, args.address, args.threads)


def _search(args: argparse.Namespace) -> None:
    from searchkit.engine import run_search

    from searchkit.text import plural

    if args.resume and (args.config or args.overrides or args.store or args.overwrite):
        raise SearchkitError("--resume continues an earlier run with its own config and store; "
                             "drop --config, --store, --overwrite and overrides")
    overrides = list(args.overrides) + ([f"store={args.store}"] if args.store else [])
    result = run_search(args.config, overrides, out=args.out, resume=args.resume, progress=not args.quiet,
                        parallel=_parallel(args), overwrite=args.overwrite,
                        on_plan=lambda plan: print(plan.describe(), flush=True))
    index = "" if result.index is None else f" (benchmark index {result.index})"
    print(f"selected architecture: {result.arch}{index}")
    cost = [plural(result.archs_scored, "architecture") + " scored"]
    if result.validations:
        cost.append(plural(result.validations, "validation") + f" ({result.simulated_seconds:.0f} s of training charged, "
                                                                f"{result.training_charged.split(':')[0]})")
    print(f"selected by {result.quantity} = {result.score:.6g}  ({', '.join(cost)}, {result.unique_archs} unique; "
          f"{result.search_seconds:.1f} s of training-free work)")
    if result.validation_split:
        print(result.validation_split)
    wall = _wall_budget(result)
    print(f"search took {result.elapsed_seconds:.1f} s of wall time"
          + ("" if wall is None else f" (budget.wall_seconds={wall:g}; final training not included)"))
    if result.evaluation is not None:
        print(f"final accuracy: {result.evaluation.describe()}")
        if result.evaluation.describe_classes():
            print(result.evaluation.describe_classes())
    if result.model is not None:
        print(f"trained model: {result.model['torchscript']} (TorchScript; what it is: model.json)")
    if result.hardware is not None:
        hw = result.hardware
        limit = [value for key, value in (hw["constraint"] or {}).items() if key != "device"]
        budget = f" (constraint: <= {limit[0]:g} {hw['unit']})" if limit else ""
        print(f"hardware cost: {hw['cost']:.4g} {hw['unit']} {hw['quantity']} on {hw['device']}{budget}")
    if (result.out / "front.csv").is_file():
        print(f"Pareto front: {result.out / 'front.csv'} (plot: front.png)")
    print(f"run directory: {result.out}")


def _wall_budget(result) -> float | None:
    """The run's ``budget.wall_seconds`` from its recorded config."""
    import yaml

    return yaml.safe_load((result.out / "config.yaml").read_text())["budget"].get("wall_seconds")


def _export(args: argparse.Namespace) -> None:
    from searchkit.export import export

    out = export(args.run_dir, args.format, args.out)
    print(f"{args.format} model written to {out}")


def _single_arch_config(args: argparse.Namespace, extra: dict):
    """A RunConfig for commands about one architecture, from the shared flags."""
    from searchkit.config import load_config
    from searchkit.spaces import get_space

    overrides = [f"space.name={args.space}", f"device={args.device}"]
    if args.dataset or not args.config:  # else the config's dataset stands
        overrides.append(f"data.name={args.dataset or get_space(args.space).default_dataset}")
    if args.data_root:
        overrides.append(f"data.root={args.data_root}")
    for key, value in extra.items():
        if value is not None:
            overrides.append(f"{key}={value}")
    return load_config(args.config, overrides + list(args.overrides))


def _evaluate(args: argparse.Namespace) -> None:
    from searchkit.evaluation import run_evaluation

    if args.resume:
        if args.arch or args.config or args.overrides or args.out:
            raise SearchkitError("--resume continues an earlier evaluation with its own config and architecture; "
                                 "drop --arch, --out, --config and overrides")
        done = run_evaluation(None, resume=args.resume, progress=not args.quiet)
    else:
        if not args.arch:
            raise SearchkitError("give --arch ARCH (or --resume RUN_DIR)")
        cfg = _single_arch_config(args, {"table": args.table, "evaluate.method": args.method,
                                         "evaluate.epochs": args.epochs, "evaluate.protocol": args.preset})
        done = run_evaluation(cfg, args.arch, out=args.out, overwrite=args.overwrite, progress=not args.quiet)
    print(f"architecture: {done.arch}")
    print(f"final accuracy: {done.evaluation.describe()}" if done.evaluation else "no evaluation (evaluate.method=none)")
    if done.evaluation is not None and done.evaluation.describe_classes():
        print(done.evaluation.describe_classes())
    if done.out is not None:
        print(f"run directory: {done.out}")


def _score(args: argparse.Namespace) -> None:
    from searchkit.metrics import parse_metric
    from searchkit.runtime import resolve_device
    from searchkit.scoring import ScoreRunner, ScoringRecipe

    cfg = _single_arch_config(args, {"data.batch_size": args.batch_size, "seed": args.seed})
    specs = [spec for spec in args.metric.split(",") if spec]
    metrics = {spec: parse_metric(spec) for spec in specs}
    context = ScoringRecipe.from_config(cfg, metrics, resolve_device(cfg.device)).open()
    text = context.space.encode(context.space.decode(args.arch))
    with ScoreRunner(context, None) as runner:
        ((_, result, _),) = runner.scores([text])
    draws = f", mean of {cfg.scoring.draws} draws" if cfg.scoring.draws > 1 else ""
    print(f"{text}  ({cfg.data.name}, scoring batch of {cfg.data.batch_size}, init seed {cfg.network_seed}{draws})")
    for spec, metric in metrics.items():
        value, seconds = result[spec]
        print(f"{spec}: {value:.6g}  [{metric.quantity}; {seconds:.2f} s]")


#: correlate flags that decide what is scored (default values); --resume takes them from settings.yaml.
CORRELATE_DEFAULTS = {"metrics": None, "n": None, "archs": None, "seed": 0, "dataset": "cifar10", "batch_size": 64,
                      "data_seed": 0, "init_seed": 0, "build": None, "data_root": None, "table": None,
                      "device": "auto", "out": None, "store": None, "draws": 1}


def _correlate(args: argparse.Namespace) -> None:
    from searchkit.config import parse_override
    from searchkit.correlate import rank_table, read_indices, resume_correlate, run_correlate, sample_indices
    from searchkit.spaces import get_space

    given = [name for name in CORRELATE_DEFAULTS if getattr(args, name) is not None]
    if args.resume:
        if given:
            raise SearchkitError(f"--resume continues an earlier run with its own settings; drop "
                                 f"{', '.join('--' + name.replace('_', '-') for name in given)}")
        out = resume_correlate(args.resume, progress=not args.quiet, parallel=_parallel(args))
        print((out / "correlation.md").read_text())
        return
    for name, default in CORRELATE_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    if not args.metrics or args.out is None:
        raise SearchkitError("correlate needs --metrics and --out (or --resume DIR)")
    if (args.n is None) == (args.archs is None):
        raise SearchkitError("give exactly one of --n N (a seeded sample) or --archs FILE (table indices)")
    total = len(rank_table(get_space(args.space), args.table))
    indices = sample_indices(args.n, args.seed, total) if args.n else read_indices(args.archs, total)
    build = {}
    for text in args.build or []:
        build.update(parse_override(text))
    out = run_correlate(
        [m for m in args.metrics.split(",") if m], indices, args.out, dataset=args.dataset,
        data_root=args.data_root, batch_size=args.batch_size, data_seed=args.data_seed,
        init_seed=args.init_seed, build=build, table_path=args.table, device=args.device, progress=not args.quiet,
        store=args.store, parallel=_parallel(args), space=args.space, draws=args.draws)
    print((out / "correlation.md").read_text())


def _benchmark(args: argparse.Namespace) -> None:
    from searchkit.study.benchmark import resume_benchmark, run_benchmark

    if args.seeds is not None and args.seeds < 1:
        raise SearchkitError(f"--seeds must be at least 1, got {args.seeds}")
    if args.resume:
        if args.config or args.out or args.seeds is not None or args.store:
            raise SearchkitError("--resume continues an earlier benchmark with its own config and store; "
                                 "drop --config, --out, --seeds and --store")
        out = resume_benchmark(args.resume, progress=not args.quiet, parallel=_parallel(args))
    elif args.config is None or args.out is None:
        raise SearchkitError("benchmark needs --config FILE and --out DIR (or --resume DIR)")
    else:
        out = run_benchmark(args.config, args.out, seeds=args.seeds, progress=not args.quiet, store=args.store,
                            parallel=_parallel(args))
    print((out / "summary.md").read_text())


def _store(args: argparse.Namespace) -> None:
    from searchkit.store import ScoreStore

    with ScoreStore(args.store, create=False) as store:
        if args.action == "export":
            if args.path is None:
                raise SearchkitError("store export needs the CSV path to write, e.g. searchkit store export scores.csv")
            count = store.export(args.path)
            print(f"{count} rows written to {args.path}")
            return
        if args.path is not None:
            raise SearchkitError(f"store stats takes no path (got {args.path}); use --store PATH for the store")
        groups = store.stats()
        print(f"{args.store}: {sum(g['rows'] for g in groups)} scores, {sum(g['seconds'] for g in groups):.1f} s "
              f"of scoring, {len(groups)} (setting, metric) groups")
        for g in groups:
            print(f"{g['rows']:>8}  {g['seconds']:>10.1f} s  {g['space']} {g['build']} {g['dataset']} "
                  f"batch={g['batch']} seed={g['seed']} {g['device']}  {g['metric']} {g['options']}")


def _add_single_arch_flags(parser: argparse.ArgumentParser, required_arch: bool = True) -> None:
    parser.add_argument("--space", default="nb201", help="search space (default: nb201)")
    parser.add_argument("--arch", required=required_arch,
                        help="architecture: an NB201 '|op~0|+|...|' string, a DARTS Genotype(...) text or name (DARTS_V2)")
    parser.add_argument("--dataset", help="dataset name (default: the config's, else the space's: digits for "
                                           "nb201, cifar10 for darts)")
    parser.add_argument("--data-root", help="where the dataset's files are (default: built in or ../shared/data)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--config", type=Path, help="a YAML config supplying further defaults")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("overrides", nargs="*", help="dotted config overrides, e.g. space.build.C=8")


def _add_resumable_output_flags(parser: argparse.ArgumentParser, resumed: str, store_default: str) -> None:
    """--out/--resume/--store, the parallel-scoring flags and --quiet of correlate and benchmark."""
    parser.add_argument("--out", type=Path, help="output directory (rerun it to resume)")
    parser.add_argument("--resume", type=Path, help=f"continue an interrupted {resumed}")
    parser.add_argument("--store", help=f"score store shared across runs (default: {store_default})")
    _add_parallel_flags(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_parallel_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, help="score with N worker processes or Ray actors (default: 1)")
    parser.add_argument("--backend", choices=("serial", "process", "ray"),
                        help="serial (this process), process (workers on this machine) or ray (default: process "
                             'with --workers > 1, else serial; ray needs pip install -e ".[ray]")')
    parser.add_argument("--address", help="Ray cluster HOST:PORT (default: start a local one)")
    parser.add_argument("--threads", type=int,
                        help="torch threads per scoring process (default: serial keeps torch's, workers cores/N, "
                             "Ray 1); values are bit-identical across backends at equal --threads")


def build_parser() -> argparse.ArgumentParser:
    from searchkit import __version__

    parser = _Parser(prog="searchkit", description="Neural architecture search with training-free fitness.",
                     epilog=_epilog("searchkit search", "searchkit search --help"))
    parser.add_argument("--version", action="version", version=f"searchkit {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in (_add_search, _add_evaluate, _add_export, _add_score, _add_correlate, _add_benchmark, _add_store):
        add(commands)
    return parser


#: an NB201 cell for the examples of evaluate and score
EXAMPLE_ARCH = "'|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|'"


def _add_search(commands: Any) -> None:
    """The ``search`` subcommand."""
    search = commands.add_parser(
        "search", help="run a search, evaluate the selected architecture",
        description="Search a space with a strategy and a training-free metric (config: configs/default.yaml), "
                    "then evaluate the selected architecture.",
        epilog=_epilog("searchkit search budget.archs=50 strategy.name=random",
                       "searchkit search --config configs/nb201-cifar10.yaml strategy.name=hnas "
                       "'budget={archs: null, simulated_seconds: 3000}'",
                       "searchkit search metric.name=kcc:eps=0.001 --out runs/kcc --workers 2",
                       "searchkit search data.name=imagefolder data.root=~/images evaluate.epochs=20",
                       "searchkit search data.name=imagefolder data.root=~/images strategy.name=hnas "
                       "budget.wall_seconds=3600 --out runs/mine",
                       "searchkit search --resume runs/kcc"))
    search.add_argument("--config", type=Path, help="YAML config (default: built-in defaults = configs/default.yaml)")
    search.add_argument("--out", type=Path, help="run directory (default: runs/<time>-<name>/)")
    search.add_argument("--resume", type=Path, help="continue an interrupted run from its directory")
    search.add_argument("--overwrite", action="store_true", help="replace the run in --out if it holds one")
    search.add_argument("--store", help="score store shared across runs (default: RUN_DIR/scores.db)")
    _add_parallel_flags(search)
    search.add_argument("--quiet", action="store_true", help="no progress bars")
    search.add_argument("overrides", nargs="*",
                        help="dotted config overrides, e.g. budget.archs=50 metric.options.eps=0.1; a mapping merges "
                             "(space.build={C: 4}), key:=value replaces it (strategy.options:={}); naming another "
                             "strategy/metric/dataset/space drops the config's options for the old one")
    search.set_defaults(func=_search)


def _add_evaluate(commands: Any) -> None:
    """The ``evaluate`` subcommand."""
    evaluate = commands.add_parser(
        "evaluate", help="final accuracy of one architecture (table lookup or training)",
        epilog=_epilog(f"searchkit evaluate --arch {EXAMPLE_ARCH} --dataset cifar10",
                       f"searchkit evaluate --arch {EXAMPLE_ARCH} --dataset digits --epochs 20",
                       "searchkit evaluate --space darts --arch DARTS_V2 --preset darts-small --out runs/v2",
                       "searchkit evaluate --resume runs/v2"))
    _add_single_arch_flags(evaluate, required_arch=False)
    evaluate.add_argument("--method", choices=("auto", "table", "train"), help="default: auto")
    evaluate.add_argument("--epochs", type=int, help="training epochs (overrides the protocol's)")
    evaluate.add_argument("--preset", help="training protocol preset (listed below; default: nb201); override "
                                           "fields with evaluate.overrides={...}")
    evaluate.add_argument("--out", type=Path, help="run directory for the config, the resumable training checkpoint "
                                                   "and evaluation.json (default when training: runs/<time>-evaluate-SPACE/)")
    evaluate.add_argument("--resume", type=Path, help="continue an interrupted evaluation from its run directory")
    evaluate.add_argument("--overwrite", action="store_true", help="replace the run in --out if it holds one")
    evaluate.add_argument("--table", help="NAS-Bench-201 table: nb201_table.csv or NAS-Bench-201-v1_*.pth")
    evaluate.set_defaults(func=_evaluate)


def _add_export(commands: Any) -> None:
    """The ``export`` subcommand."""
    export = commands.add_parser(
        "export", help="a search's trained model as TorchScript, ONNX or a state_dict",
        description="Write the trained selection of a run directory (its model.pt, described by model.json) "
                    "in another format. ONNX needs pip install 'searchkit[export]'.",
        epilog=_epilog("searchkit export runs/mine --format onnx --out mine.onnx",
                       "searchkit export runs/mine --format state_dict --out mine.pt"))
    export.add_argument("run_dir", type=Path, help="a search (or evaluate) run directory holding model.pt")
    export.add_argument("--format", required=True, choices=("torchscript", "onnx", "state_dict"),
                        help="torchscript (model.pt as is), onnx (dynamic batch) or state_dict (searchkit.load's module)")
    export.add_argument("--out", type=Path, required=True, help="the file to write")
    export.set_defaults(func=_export)


def _add_score(commands: Any) -> None:
    """The ``score`` subcommand."""
    score = commands.add_parser(
        "score", help="training-free scores of one architecture",
        epilog=_epilog(f"searchkit score --arch {EXAMPLE_ARCH} --dataset cifar10 --metric kcc,synflow,params",
                       f"searchkit score --arch {EXAMPLE_ARCH} --metric kcc:eps=0.001:bn=eval --batch-size 128"))
    _add_single_arch_flags(score)
    score.add_argument("--metric", "--metrics", dest="metric", default="kcc",
                       help="metric spec(s), comma-separated, e.g. kcc:eps=0.01,synflow (default: kcc)")
    score.add_argument("--batch-size", type=int, help="scoring batch size (default: 64)")
    score.add_argument("--seed", type=int, help="network initialisation seed (default: 0)")
    score.set_defaults(func=_score)


def _add_correlate(commands: Any) -> None:
    """The ``correlate`` subcommand."""
    correlate = commands.add_parser(
        "correlate", help="score architectures of a space's ranking table and correlate metrics with accuracy",
        epilog=_epilog("searchkit correlate --metrics kcc,naswot,synflow --n 200 --seed 0 --out runs/corr",
                       "searchkit correlate --space darts --metrics params,naswot --n 20 --build C=8 --out runs/darts",
                       "searchkit correlate --resume runs/corr --workers 2"))
    correlate.add_argument("--space", default="nb201", help="a space with a ranking table: nb201 (NAS-Bench-201) or "
                                                            "darts (1,000 trained cells, rank use only) (default: nb201)")
    correlate.add_argument("--dataset", help="scoring dataset (default: cifar10)")
    correlate.add_argument("--metrics", help="comma-separated metric specs, e.g. kcc,synflow,kcc:eps=0.05:bn=eval")
    correlate.add_argument("--n", type=int, help="score a seeded uniform sample of N architectures")
    correlate.add_argument("--seed", type=int, help="seed of that sample (default: 0)")
    correlate.add_argument("--archs", type=Path, help="file with one table index per line")
    correlate.add_argument("--batch-size", type=int, help="scoring batch size (default: 64)")
    correlate.add_argument("--data-seed", type=int, help="which images form the batch (default: 0)")
    correlate.add_argument("--init-seed", type=int, help="network initialisation seed (default: 0)")
    correlate.add_argument("--build", action="append", help="network option, e.g. --build C=8 (default: the space's, NB201 C=16, N=5)")
    correlate.add_argument("--data-root", help="where the dataset's files are")
    correlate.add_argument("--table", help="the space's ranking table (default: ../shared/data/nb201/nb201_table.csv, "
                                           "../shared/data/darts/darts_1000_cifar10_valid.csv)")
    correlate.add_argument("--device", help="auto, cpu or cuda (default: auto)")
    correlate.add_argument("--draws", type=int, help="a score is the mean over K draws of init seed and batch "
                           "(draw d: seeds + d; default 1); rerun with a larger K to add draws")
    _add_resumable_output_flags(correlate, "run in DIR with its recorded settings", "OUT/scores.db")
    correlate.set_defaults(func=_correlate)


def _add_benchmark(commands: Any) -> None:
    """The ``benchmark`` subcommand."""
    benchmark = commands.add_parser(
        "benchmark", help="strategies x metrics x seeds on a benchmark table (summary, anytime plot)",
        epilog=_epilog("searchkit benchmark --config configs/bench-nb201.yaml --out results/benchmark-nb201",
                       "searchkit benchmark --resume results/benchmark-nb201 --workers 2"))
    benchmark.add_argument("--config", type=Path, help="benchmark YAML, e.g. configs/bench-nb201.yaml")
    benchmark.add_argument("--seeds", type=int, help="runs per (strategy, metric), seeds 0..N-1; an entry's own seeds: are capped at N "
                                                  "(default: the config's)")
    _add_resumable_output_flags(benchmark, "benchmark in DIR with its recorded config",
                                "the config's store, else OUT/scores.db")
    benchmark.set_defaults(func=_benchmark)


def _add_store(commands: Any) -> None:
    """The ``store`` subcommand."""
    store = commands.add_parser("store", help="the score store: rows per setting and metric, or export to CSV")
    store.add_argument("action", choices=("stats", "export"), help="stats: rows per group and totals; export PATH.csv")
    store.add_argument("path", nargs="?", help="export: the CSV file to write")
    store.add_argument("--store", required=True,
                       help="the store file: a run's or correlate's scores.db, or a shared store")
    store.set_defaults(func=_store)


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings as one line on stderr, like errors: ``searchkit: warning: <message>``."""
    return f"searchkit: warning: {message}\n"


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is so that it stops like on Ctrl-C: every finished
    epoch's checkpoint, history row and stored score is kept, and the run resumes."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


@contextmanager
def _sigterm_stops_like_ctrl_c() -> Iterator[None]:
    """While a command runs, SIGTERM raises :class:`Terminated`; the previous handler is restored
    afterwards. (A file-size limit needs nothing: Python ignores SIGXFSZ, so the write fails with
    an OSError that :func:`searchkit.rundir.writing` reports in one line.)"""
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _how_to_resume(command: str | None) -> str:
    """What the interrupted ``command`` tells the user: how to continue it, with its run directory."""
    from searchkit.rundir import RunDir

    if command in ("correlate", "benchmark"):
        return "; rerun the same command to resume"
    if command not in ("search", "evaluate"):
        return ""
    if RunDir.started is None:
        return "; nothing was written yet: rerun the same command"
    return f"; continue with 'searchkit {command} --resume {RunDir.started}'"


def main(argv: list[str] | None = None) -> int:
    import warnings

    from searchkit.rundir import RunDir

    warnings.formatwarning = _one_line_warning
    command, RunDir.started = None, None
    try:
        with _sigterm_stops_like_ctrl_c():
            args = build_parser().parse_args(argv)
            command = args.command
            args.func(args)
    except SearchkitError as err:
        print(f"searchkit: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        terminated = isinstance(stop, Terminated)
        print(f"searchkit: {'terminated (SIGTERM)' if terminated else 'interrupted'}{_how_to_resume(command)}",
              file=sys.stderr)
        return 128 + (signal.SIGTERM if terminated else signal.SIGINT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
