"""A wall budget holds for every strategy (issue 24): each one, under ``budget.wall_seconds`` of a
few seconds on the embedded digits, finishes within 10 % of it (final training excluded), as the
run records it; the driver does not start a query whose estimated cost would overrun it; HNAS
and the warm-up size their table-free defaults from it; the plan comes first and warns."""
import dataclasses
import json
import time

import numpy as np
import pytest

from searchkit import run_search
from searchkit.config import BudgetConfig, config_from_dict, load_config
from searchkit.driver import Driver
from searchkit.plan import Costs, Plan, PlanWarning, Training
from searchkit.spaces import get_space
from searchkit.strategies import get_strategy
from searchkit.strategies.base import TimeBudget, Workload
from fakes import FakeOracle

pytestmark = pytest.mark.usefixtures("one_thread")
WALL = 5.0
SMALL = {"data": {"name": "digits", "batch_size": 16}, "space": {"build": {"C": 4, "N": 1}},
         "validate": {"method": "train", "epochs": 1},
         "evaluate": {"method": "none", "overrides": {"max_train": 256, "min_steps_per_epoch": 0, "batch_size": 64}}}
STRATEGIES = [
    ("random", {}, {}),
    ("evolution", {}, {}),
    ("local", {}, {}),
    ("hnas", {}, {}),
    ("warmup", {}, {}),
    ("nsga2", {}, {"hardware": {"device": "cpu", "warmup": 1, "repeats": 2}}),
    ("nasi", {}, {"metric": {"name": "ntk_trace"}}),
]


@pytest.fixture(scope="module", autouse=True)
def warm(tmp_path_factory):
    """One untimed search first: a fresh process pays one-time costs (imports, allocator, the first
    GP fit) in its first plan's measurements and queries, seconds that a budget of a few seconds
    cannot absorb."""
    hnas = {"name": "hnas", "options": {"pool": 4, "growth": 0, "iterations": 3, "init": 1, "grid": 4}}
    run_search({**SMALL, "strategy": hnas, "budget": {"archs": 7}}, out=tmp_path_factory.mktemp("warm") / "run",
               progress=False)


@pytest.mark.parametrize("name,options,extra", STRATEGIES, ids=[s[0] for s in STRATEGIES])
def test_every_strategy_finishes_within_ten_percent_of_its_wall_budget(tmp_path, name, options, extra):
    config = {**SMALL, **extra, "strategy": {"name": name, "options": options}, "budget": {"wall_seconds": WALL}}
    start = time.perf_counter()
    result = run_search(config, out=tmp_path / name, progress=False)
    outside = time.perf_counter() - start
    elapsed = json.loads((tmp_path / name / "best.json").read_text())["search_cost"]["elapsed_seconds"]
    assert elapsed == pytest.approx(result.elapsed_seconds, abs=1e-3)
    assert elapsed <= 1.1 * WALL and elapsed <= outside
    if name != "nasi":  # open-ended or sized from the budget: the budget, not the strategy, ends the search
        assert elapsed >= 0.5 * WALL, f"{name} stopped after {elapsed:.2f} s of a {WALL} s budget"
    plan = json.loads((tmp_path / name / "plan.json").read_text())
    if name == "nasi":  # its one-shot search is limited to the time the plan's measurements leave
        limit = load_config(tmp_path / name / "config.yaml").strategy.options["seconds"]
        assert 0 < limit < WALL and plan["sized"] == {"seconds": limit} and plan["workload"]["oneshot"]


def test_a_validation_that_would_overrun_the_wall_budget_is_not_started():
    space = get_space("nb201")
    strategy = get_strategy("warmup", space, np.random.default_rng(0), warmup=3, population=2, sample_size=1)
    oracles = {"score": FakeOracle("score", lambda arch: 1.0), "validate": FakeOracle("validate", lambda arch: 50.0)}
    log = Driver(strategy, space, oracles, BudgetConfig(archs=None, wall_seconds=5.0),
                 expected={"score": 0.01, "validate": 100.0}).run()
    assert log.count("score") == 3 and log.count("validate") == 0 and oracles["validate"].asked == []
    assert log.wall_seconds < 5.0


def test_a_wall_budget_alone_lifts_the_default_query_limit():
    assert config_from_dict({"budget": {"wall_seconds": 60}}).budget.archs is None
    assert config_from_dict({"budget": {"wall_seconds": 60, "archs": 7}}).budget.archs == 7
    assert config_from_dict({}).budget.archs == 100


def test_hnas_sizes_its_pool_and_growth_from_a_trained_wall_budget():
    hnas = get_strategy("hnas", get_space("nb201"), np.random.default_rng(0))
    # validations get at most half of 100 s at 10 s each: K' = 5; the other 50 s score 100 cells:
    # a first pool of 50 and 50 more over the K' - 1 = 4 later steps (K stays 20: the budget ends the search)
    assert hnas.budget_options(TimeBudget(100.0, 0.5, 10.0), frozenset()) == {"pool": 50, "growth": 12}
    given = get_strategy("hnas", get_space("nb201"), np.random.default_rng(0), iterations=3, pool=10)
    # K = 3 and the pool of 10 are the user's: 100 - 3 x 10 s score 140 cells, 130 of them over 2 steps
    assert given.budget_options(TimeBudget(100.0, 0.5, 10.0), frozenset({"iterations", "pool"})) == {"growth": 65}
    assert hnas.budget_options(TimeBudget(100.0, 0.5, None), frozenset()) == {}  # a table answers: defaults stand


def test_warmup_sizes_its_screen_and_population_from_a_trained_wall_budget():
    warmup = get_strategy("warmup", get_space("nb201"), np.random.default_rng(0))
    assert warmup.budget_options(TimeBudget(100.0, 0.5, 10.0), frozenset()) == {"population": 2, "sample_size": 2,
                                                                                "warmup": 100}
    assert warmup.budget_options(TimeBudget(100.0, 0.5, None), frozenset()) == {}


def test_the_plan_warns_with_the_option_that_fixes_a_validation_longer_than_the_budget(tmp_path):
    config = {**SMALL, "strategy": {"name": "hnas", "options": {"pool": 2, "growth": 0, "iterations": 1}},
              "validate": {"method": "train", "epochs": 10000}, "budget": {"wall_seconds": 4.0}}
    plans = []  # 10,000 epochs x 4 steps take minutes on any machine: far past the 4 s budget
    with pytest.warns(PlanWarning, match=r"one validation takes .*so none will run; set validate.epochs=\d+ or "
                                         r"budget.wall_seconds=\d+"):
        result = run_search(config, out=tmp_path / "run", progress=False, on_plan=plans.append)
    assert result.validations == 0 and result.selected_by == "score"
    text = plans[0].describe()
    assert text.startswith("plan (hnas; measured on this machine in ") and "2 cells" in text
    assert "1 validation, each 10000 epochs x" in text and "final     none" in text


def test_the_plan_warns_when_a_strategy_asks_for_more_queries_than_budget_archs():
    # HNAS's table defaults on a folder, as issue 24 met them: 2,000 + 19 x 2,000 cells and 20 validations
    validation = Training(epochs=12, steps=10, batch_size=64, eval_batches=2, seconds=30.0)
    plan = Plan("hnas", None, 500, Costs(score=0.5, step=0.25, workers=1, seconds=1.0), Workload(40000, 20),
                validation, None, False, "none", {})
    assert plan.search_seconds() == pytest.approx(1.0 + 40000 * 0.5 + 20 * 30.0)
    (line,) = plan.warnings()
    assert line.startswith("the plan asks for 40020 queries, more than budget.archs=500 (the search stops there); "
                           "set budget.archs=40020, or budget.wall_seconds")
    assert "score     40000 cells, 0.5 s each (first cell): ~5.6 h" in plan.describe()


def test_the_plan_counts_the_screen_scored_before_the_first_validation():
    # the warm-up on CIFAR-10 as a folder at C = 16, N = 5 (issue 24): 500 cells of 1.89 s, then validations of
    # ~112 min in a 2-hour budget (7,200 - 13.7 - 500 x 1.89 s = 104.0 min left): a validation fits the budget, not
    # the budget after the screen; W' = 13.7 + 945 + 1.2 x 6,738 = 9,044.3
    validation = Training(epochs=12, steps=176, batch_size=256, eval_batches=60, seconds=6738.0)
    plan = Plan("warmup", 7200.0, None, Costs(score=1.89, step=3.16, workers=1, seconds=13.7),
                Workload(scores=500, scores_first=500), validation, None, False, "none", {"warmup": 500})
    (line,) = plan.warnings()
    assert line.startswith("one validation takes ~112.3 min, more than the 104.0 min left in budget.wall_seconds=7200 "
                           "after measuring the plan and scoring the first 500 cells, so none will run; "
                           "set validate.epochs=11 or budget.wall_seconds=9045")
    screened_elsewhere = dataclasses.replace(plan, workload=Workload(scores=500))  # scores not before validations
    assert screened_elsewhere.warnings() == []


def test_a_resumed_wall_budget_run_replays_the_options_the_budget_sized(tmp_path):
    config = {**SMALL, "strategy": {"name": "hnas"}, "budget": {"wall_seconds": WALL}}
    first = run_search(config, out=tmp_path / "run", progress=False)
    sized = load_config(tmp_path / "run" / "config.yaml").strategy.options
    assert set(sized) == {"pool", "growth"}
    again = run_search(resume=tmp_path / "run", progress=False)
    assert load_config(tmp_path / "run" / "config.yaml").strategy.options == sized
    assert again.arch == first.arch and [r.arch for r in again.history[:len(first.history)]] == \
        [r.arch for r in first.history]
