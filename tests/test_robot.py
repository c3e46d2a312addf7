"""RoBoT: the normalised metric combination, the BO rounds (a known top is free), exploitation down
the best weighting's ranking, the budget, and seeding."""
import numpy as np
import pytest

import fakes
from searchkit.config import BudgetConfig
from searchkit.driver import Driver
from searchkit.errors import SearchkitError
from searchkit.spaces import get_space
from searchkit.spaces.pool import PoolSpace
from searchkit.strategies import Answer, get_strategy
from searchkit.strategies.robot import RoBoT, normalise_metrics

SPACE = get_space("nb201")
POOL = PoolSpace(SPACE, list({SPACE.sample(np.random.default_rng(i)): None for i in range(80)}))

pytestmark = pytest.mark.usefixtures("one_thread")


def convs(arch):
    return float(arch.ops.count("nor_conv_3x3"))


def nones(arch):
    return float(arch.ops.count("none"))


def accuracy(arch):
    """A landscape where both metrics matter: best with 3 convolutions and no none op."""
    return 90.0 - abs(convs(arch) - 3) - 2 * nones(arch) + 0.01 * arch.ops.count("skip_connect")


def seconds(arch):
    return 100.0 + 10 * convs(arch)


class Validator(fakes.FakeOracle):
    """Validations with a cost known in advance (like the table's), so the driver never overruns."""

    def cost(self, text):
        return seconds(SPACE.decode(text))


def run(strategy, budget):
    oracles = {"score": fakes.FakeOracle("score", convs, lambda a: {"naswot": -nones(a)}),
               "validate": Validator("validate", accuracy, cost_of=seconds)}
    return Driver(strategy, strategy.space, oracles, BudgetConfig(archs=None, simulated_seconds=budget)).run()


def robot(seed=0, **options):
    return RoBoT(POOL, np.random.default_rng(seed), metrics=["naswot"], candidates=256, **{"rounds": 6, **options})


def test_normalise_min_max_and_rank():
    values = np.array([[1.0, 5.0, 2.0], [3.0, 5.0, -np.inf], [2.0, 5.0, 4.0]])
    assert np.allclose(normalise_metrics(values), [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.5, 0.0, 1.0]])
    assert np.allclose(normalise_metrics(values, "rank"), [[1 / 3, 2 / 3, 0.5], [1.0, 2 / 3, 0.5], [2 / 3, 2 / 3, 1.0]])


def test_the_top_of_a_weighting_is_the_argmax_of_the_combination():
    strategy = robot()
    for query in strategy.ask():
        strategy.tell(query, Answer(query.arch, convs(query.arch), {"naswot": -nones(query.arch)}))
    matrix = strategy.matrix()
    assert matrix.shape == (len(POOL.members), 2) and matrix.min() == 0.0 and matrix.max() == 1.0
    assert convs(strategy.top(np.array([1.0, 0.0]))) == max(map(convs, POOL.members))
    assert nones(strategy.top(np.array([0.0, 1.0]))) == min(map(nones, POOL.members))
    assert convs(strategy.top(np.array([-1.0, 0.0]))) == min(map(convs, POOL.members))


def test_never_validates_twice_respects_the_budget_and_exploits_the_best_weighting():
    strategy = robot()
    log = run(strategy, 3000.0)
    validated = [row.arch for row in log.history if row.kind == "validate"]
    assert len(validated) == len(set(validated)) and not any(row.cached for row in log.history)
    assert log.simulated_seconds <= 3000.0 and log.simulated_seconds + 100.0 + 60.0 > 3000.0  # no room for another
    assert len(strategy.weights) == 6 and len(validated) > 6  # the BO rounds, then exploitation
    assert len(set(map(POOL.encode, strategy.validated))) == len(validated)
    # exploitation walks down M(.; w*), skipping cells BO validated
    order = np.argsort(-strategy.combined(strategy.best_weights()), kind="stable")
    ranking = [POOL.encode(POOL.members[i]) for i in order]
    explored = len({POOL.encode(strategy.top(w)) for w in strategy.weights})
    exploited = validated[explored:]
    assert exploited == [a for a in ranking if a not in validated[:explored]][: len(exploited)]
    assert log.incumbent.value == max(row.score for row in log.history if row.kind == "validate")


def test_a_known_top_costs_nothing_and_total_stops_the_search():
    strategy = RoBoT(POOL, np.random.default_rng(1), candidates=256, rounds=8)  # one metric: two possible tops
    log = run(strategy, 1e6)
    assert len(strategy.weights) == 8 and len(set(map(str, strategy.weights))) == 8
    tops = {POOL.encode(strategy.top(w)) for w in strategy.weights}
    assert len(tops) <= 2
    validated = [row.arch for row in log.history if row.kind == "validate"]
    assert len(validated) == len(POOL.members) == len(set(validated))  # then the whole ranking, once each
    log = run(RoBoT(POOL, np.random.default_rng(1), candidates=256, rounds=8, total=5), 1e6)
    assert sum(row.kind == "validate" for row in log.history) == 5


def test_a_fixed_seed_gives_a_fixed_answer():
    logs = [run(robot(seed), 2000.0) for seed in (3, 3, 4)]
    sequences = [[row.arch for row in log.history if row.kind == "validate"] for log in logs]
    assert sequences[0] == sequences[1] and logs[0].incumbent.arch == logs[1].incumbent.arch
    assert sequences[0] != sequences[2]
    ucb = [[row.arch for row in run(robot(3, acquisition="ucb", normalise="rank"), 2000.0).history
            if row.kind == "validate"] for _ in range(2)]
    assert ucb[0] == ucb[1]


def test_pools_and_bad_options():
    assert len(RoBoT(SPACE, np.random.default_rng(0), pool=30).pool) == 30
    assert len(RoBoT(SPACE, np.random.default_rng(0)).pool) == 2000 and len(robot().pool) == len(POOL.members)
    with pytest.raises(SearchkitError, match="rounds >= 1"):
        RoBoT(POOL, np.random.default_rng(0), rounds=0)
    with pytest.raises(SearchkitError, match="acquisition"):
        get_strategy("robot", POOL, np.random.default_rng(0), acquisition="pi")
