"""``searchkit correlate``: score architectures of a space's ranking table with several metrics and
correlate them with the table's accuracies.

Any space that offers a ranking table (:meth:`searchkit.spaces.base.BaseSpace.rank_table`: its
benchmark, e.g. NAS-Bench-201's, or DARTS' 1,000 trained cells) can be correlated; an index is a
row of that table.

Scores go through the score store (``OUT/scores.db`` or ``--store PATH``): what it holds is not
computed again, the rest is computed (in this process, worker processes or on Ray, see
:mod:`searchkit.workers`) and written to it as each architecture completes. ``OUT/scores.csv`` is
the store's export of this run's recipe: one row is appended as each architecture completes, and
the file is rewritten from the store in the order of the requested indices at the start and at
the end, so its content does not depend on the backend or on interruptions. Committed with
``OUT/settings.yaml`` (the recipe, :class:`~searchkit.scoring.ScoringRecipe`), it is the portable
form of those scores: a rerun into the same directory (``--resume OUT``, or the same command)
imports it into the store first, so a fresh clone continues where the last run stopped.

With ``--draws K`` (K > 1) a score is the mean over K draws (:mod:`searchkit.scoring`): ``scores.csv``
then holds the means (what the report correlates) and ``OUT/draws.csv`` each draw's values (index,
arch_str, draw, metrics, seconds), rewritten and appended alike; it is what a rerun imports. A rerun
with a larger K into the same directory computes only the new draws.
"""
from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from searchkit.errors import SearchkitError
from searchkit.metrics import parse_metric
from searchkit.paths import portable
from searchkit.rundir import check_writable, read_yaml, write_atomic, writing
from searchkit.runtime import resolve_device
from searchkit.scoring import ScoreRunner, ScoringRecipe, draws_header, import_scores, scores_header
from searchkit.spaces import get_space
from searchkit.spaces.base import BaseSpace, RankTable
from searchkit.store import ScoreStore
from searchkit.workers import Parallel

#: What to do about a damaged settings.yaml.
SETTINGS_FIX = "delete it and rerun the original command with --out (the scores in scores.csv and the store are kept)"

#: Fewer distinct architectures than this give no meaningful rank correlation.
MIN_ARCHS = 10


def sample_indices(n: int, seed: int, total: int) -> list[int]:
    """``n`` distinct benchmark indices drawn uniformly with ``seed`` (the same seed gives the same list)."""
    if not 1 <= n <= total:
        raise SearchkitError(f"--n must be between 1 and {total}, got {n}")
    return [int(i) for i in np.random.default_rng(seed).choice(total, size=n, replace=False)]


def read_indices(path: str | Path, total: int) -> list[int]:
    """One benchmark index per line (blank lines and #-comments ignored)."""
    path = Path(path)
    if not path.is_file():
        raise SearchkitError(f"architecture list not found: {path}; give a file with one benchmark index per line")
    indices = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = line.split("#")[0].strip()
        if not text:
            continue
        if not text.isdigit() or not 0 <= int(text) < total:
            raise SearchkitError(f"{path}:{number}: {text!r} is not a benchmark index 0..{total - 1}")
        indices.append(int(text))
    return indices


def distinct(indices: list[int]) -> tuple[list[int], str | None]:
    """The indices without repeats (first occurrence kept), and a note when some were dropped;
    SearchkitError when fewer than :data:`MIN_ARCHS` remain (a rank correlation over so few
    architectures means nothing: two points always have Spearman +-1)."""
    unique = list(dict.fromkeys(indices))
    if len(unique) < MIN_ARCHS:
        raise SearchkitError(f"a correlation over {len(unique)} distinct architectures is not meaningful; "
                             f"give at least {MIN_ARCHS} (--n N or more lines in --archs)")
    dropped = len(indices) - len(unique)
    return unique, (f"{dropped} repeated {'index' if dropped == 1 else 'indices'} dropped; "
                    f"{len(unique)} distinct architectures") if dropped else None


def read_scores(path: str | Path) -> dict[int, dict[str, float]]:
    """index -> {column: value} of a ``scores.csv`` (metric and ``<metric>_s`` columns); a torn
    last line is skipped. Read-only: safe while a correlate run is appending to the file."""
    from searchkit.rundir import complete_lines

    reader = csv.DictReader(complete_lines(Path(path)))
    rows = {}
    for row in reader:
        try:
            rows[int(row["index"])] = {k: float(v) for k, v in row.items() if k not in ("index", "arch_str")}
        except (TypeError, ValueError):
            break
    return rows


def score_line(index: int, arch: str, result: dict[str, tuple[float, float]], labels: list[str],
               draw: int | None = None) -> list:
    """One scores.csv row (or, with ``draw``, one draws.csv row) of ``result``: label -> (value, seconds)."""
    return [index, arch, *([] if draw is None else [draw]), *(repr(result[label][0]) for label in labels),
            *(f"{result[label][1]:.4f}" for label in labels)]


def export_scores(runner: ScoreRunner, table: RankTable, indices: list[int], out: Path) -> dict[int, dict[str, float]]:
    """Rewrite ``out/scores.csv`` (and, with several draws, ``out/draws.csv``) from the runner's store:
    the requested indices it holds every metric and draw of, in that order. Returns index ->
    {column: value} of the scores.csv rows (means over draws)."""
    labels = list(runner.context.recipe.metrics)
    by_draw = len(runner.settings) > 1
    rows, text, draws_text = {}, io.StringIO(), io.StringIO()
    writer, draws_writer = csv.writer(text), csv.writer(draws_text)
    writer.writerow(scores_header(labels))
    draws_writer.writerow(draws_header(labels))
    for index in indices:
        arch = table.arch_str(index)
        held = runner.stored(arch)
        if held is None:
            continue
        rows[index] = {**{label: held[label][0] for label in labels}, **{f"{label}_s": held[label][1] for label in labels}}
        writer.writerow(score_line(index, arch, held, labels))
        if by_draw:
            draws_writer.writerows(score_line(index, arch, r, labels, d) for d, r in enumerate(runner.stored_draws(arch)))
    write_atomic(out / "scores.csv", text.getvalue())
    if by_draw:
        write_atomic(out / "draws.csv", draws_text.getvalue())
    return rows


def check_same_run(out: Path, recipe: ScoringRecipe) -> None:
    """SearchkitError when ``out`` holds a correlate run of another recipe or other metrics."""
    settings = out / "settings.yaml"
    if not settings.is_file():
        return
    before = ScoringRecipe.from_dict(read_yaml(settings, SETTINGS_FIX))
    if list(before.metrics) != list(recipe.metrics):
        raise SearchkitError(f"{out} was written for other metrics ({', '.join(before.metrics)}); "
                             "use another --out or the same --metrics")
    mine, theirs = recipe.setting(), before.setting()
    differ = [name for name in ("space", "build", "dataset", "batch", "seed", "device")
              if getattr(mine, name) != getattr(theirs, name)]
    if differ:
        raise SearchkitError(f"{out} was scored with other settings ({', '.join(differ)} differ); "
                             f"use another --out, or --resume {out} to continue it")


def run_correlate(
    metric_specs: list[str], indices: list[int], out: str | Path, dataset: str = "cifar10",
    data_root: str | None = None, batch_size: int = 64, data_seed: int = 0, init_seed: int = 0,
    build: dict | None = None, table_path: str | None = None, device: str = "auto", progress: bool = True,
    store: str | Path | None = None, parallel: Parallel = Parallel(), space: str = "nb201", draws: int = 1,
) -> Path:
    """Score ``indices`` with every metric; write ``out/scores.csv``, ``correlation.md`` and the plots.

    Returns the output directory. ``indices`` are rows of the space's ranking table
    (:meth:`~searchkit.spaces.base.BaseSpace.rank_table`; ``table_path``: the user's copy). Networks are
    the space's with its own build defaults (NB201: C=16, N=5) where ``build`` says nothing, initialised from ``init_seed``; the scoring batch is ``batch_size`` training
    images drawn with ``data_seed``. ``store``: the score store (None: ``out/scores.db``);
    ``parallel``: the scoring backend; ``draws``: a score is the mean over that many draws of the
    initialisation and the batch (module docstring). ``out/settings.yaml`` (the recipe) and ``out/indices.txt``
    record the call for :func:`resume_correlate`; a rerun into ``out`` with another recipe is refused.
    """
    from searchkit.correlation_report import write_correlation_report

    out = Path(out)
    search_space = get_space(space)
    table = rank_table(search_space, table_path)
    indices, note = distinct(indices)
    metrics = {spec: parse_metric(spec) for spec in metric_specs}
    check_writable(out)
    dev = resolve_device(device)
    build = {} if build is None else build
    context = ScoringRecipe(space, dataset, data_root, {}, batch_size, data_seed, "train", metrics, init_seed,
                            build, str(dev), draws=draws).open(search_space)
    recipe = context.recipe
    check_same_run(out, recipe)
    if note:
        print(f"searchkit correlate: {note}", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    labels = list(metrics)
    with ScoreStore(store if store is not None else out / "scores.db") as db, \
            ScoreRunner(context, db, parallel) as runner:
        import_scores(db, out, runner.setting)  # under the settings.yaml it was written with (e.g. fewer draws)
        write_atomic(out / "settings.yaml", yaml.safe_dump(
            {**recipe.to_dict(), "table": portable(table.source), "store": None if store is None else portable(store)},
            sort_keys=False))
        write_atomic(out / "indices.txt", "".join(f"{i}\n" for i in indices))
        done = export_scores(runner, table, indices, out)
        todo = {table.arch_str(i): i for i in indices if i not in done}
        by_draw = recipe.draws > 1
        scores_csv, draws_csv = out / "scores.csv", out / "draws.csv"
        with writing(scores_csv), scores_csv.open("a", newline="") as handle, \
                writing(draws_csv), draws_csv.open("a", newline="") if by_draw else io.StringIO() as draws_handle:
            writer, draws_writer = csv.writer(handle), csv.writer(draws_handle)
            bar = tqdm(runner.scores(todo), desc="correlate", unit="arch", disable=not progress,
                       initial=len(indices) - len(todo), total=len(indices))
            for text, result, _ in bar:
                if by_draw:  # each draw before the mean: a kill between the two loses no draw
                    with writing(draws_csv):
                        draws_writer.writerows(score_line(todo[text], text, r, labels, d)
                                               for d, r in enumerate(runner.stored_draws(text)))
                        draws_handle.flush()
                with writing(scores_csv):
                    writer.writerow(score_line(todo[text], text, result, labels))
                    handle.flush()
        rows = export_scores(runner, table, indices, out)
    write_correlation_report(out, rows, labels, table, space=search_space,
                             settings={**recipe.to_dict(), "build": recipe.canonical_build()})
    return out


def rank_table(space: BaseSpace, path: str | Path | None = None) -> RankTable:
    """The space's ranking table (``path``: the user's copy); SearchkitError when it offers none."""
    table = space.rank_table(path)
    if table is None:
        raise SearchkitError(f"correlate needs a space with a ranking table (trained accuracies to rank metrics "
                             f"against); the {space.name} space has none")
    return table


def resume_correlate(out: str | Path, progress: bool = True, parallel: Parallel = Parallel()) -> Path:
    """Continue the ``searchkit correlate`` run in ``out`` with the recipe and indices it recorded."""
    out = Path(out)
    settings_path, indices_path = out / "settings.yaml", out / "indices.txt"
    if not settings_path.is_file():
        raise SearchkitError(f"cannot resume {out}: no settings.yaml there; pass the --out directory of an earlier "
                             "searchkit correlate")
    if not indices_path.is_file():
        raise SearchkitError(f"cannot resume {out}: it has no indices.txt (written by an older searchkit); "
                             "rerun its original command with --out")
    settings = read_yaml(settings_path, SETTINGS_FIX)
    recipe = ScoringRecipe.from_dict(settings)
    table = rank_table(get_space(recipe.space), settings.get("table"))
    indices = read_indices(indices_path, len(table))
    return run_correlate(
        list(recipe.metrics), indices, out, dataset=recipe.dataset, data_root=recipe.data_root,
        batch_size=recipe.batch_size, data_seed=recipe.data_seed, init_seed=recipe.init_seed, build=recipe.build,
        table_path=settings.get("table"), device=recipe.device, progress=progress, store=settings.get("store"),
        parallel=parallel, space=recipe.space, draws=recipe.draws)
