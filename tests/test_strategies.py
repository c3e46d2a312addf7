"""Random search and regularized evolution: seeding, aging, tournament selection, replay, option checks."""
import numpy as np
import pytest

import fakes
from searchkit.config import BudgetConfig
from searchkit.driver import Driver
from searchkit.errors import SearchkitError
from searchkit.spaces import get_space
from searchkit.strategies import Answer, RegularizedEvolution, Score, get_strategy

SPACE = get_space("nb201")


def fitness(arch) -> float:
    """A known landscape: the number of 3x3 convolutions (max 6)."""
    return float(sum(op == "nor_conv_3x3" for op in arch.ops))


def drive(strategy, steps: int) -> list:
    """The architectures proposed in ``steps`` queries answered by the real driver."""
    log = fakes.drive(strategy, fitness, archs=steps)
    return [SPACE.decode(row.arch) for row in log.history]


def tell(strategy, arch, value):
    strategy.tell(Score(arch), Answer(arch, value))


@pytest.mark.parametrize("name", ["random", "evolution"])
def test_same_seed_same_proposals(name):
    a = drive(get_strategy(name, SPACE, np.random.default_rng(5)), 60)
    b = drive(get_strategy(name, SPACE, np.random.default_rng(5)), 60)
    c = drive(get_strategy(name, SPACE, np.random.default_rng(6)), 60)
    assert a == b
    assert a != c


def test_evolution_climbs_a_simple_landscape_better_than_random():
    evo = [get_strategy("evolution", SPACE, np.random.default_rng(s), population=10, sample_size=3) for s in range(5)]
    rnd = [get_strategy("random", SPACE, np.random.default_rng(s)) for s in range(5)]
    best = {id(s): max(fitness(SPACE.decode(r.arch)) for r in fakes.drive(s, fitness, archs=150).history)
            for s in evo + rnd}
    assert np.mean([best[id(s)] for s in evo]) > np.mean([best[id(s)] for s in rnd])
    assert max(best[id(s)] for s in evo) == 6.0


def test_evolution_ages_out_the_oldest_and_mutates_one_edge():
    evo = RegularizedEvolution(SPACE, np.random.default_rng(0), population=4, sample_size=2)
    first = drive(evo, 4)  # the initial random population
    assert [a for a, _ in evo.population] == first
    child = evo.ask()[0].arch
    assert any(sum(x != y for x, y in zip(child.ops, parent.ops)) == 1 for parent in first)
    tell(evo, child, -1.0)  # even the worst child enters; the oldest member leaves
    assert [a for a, _ in evo.population] == first[1:] + [child]


class RecordingSpace:
    """NB201 whose mutate records the parent it was given."""

    name = "nb201"

    def __init__(self):
        self.parents = []

    def __getattr__(self, attr):
        return getattr(SPACE, attr)

    def mutate(self, arch, rng):
        self.parents.append(arch)
        return SPACE.mutate(arch, rng)


@pytest.mark.parametrize("sample_size", [1, 3, 5])
def test_tournament_selects_the_best_of_a_sample_drawn_with_replacement(sample_size):
    space = RecordingSpace()
    evo = RegularizedEvolution(space, np.random.default_rng(0), population=5, sample_size=sample_size)
    members = [SPACE.sample(np.random.default_rng(i)) for i in range(5)]
    evo.population.extend((a, 1.0 if i == 2 else 0.0) for i, a in enumerate(members))
    for _ in range(2000):
        evo.ask()
    share = np.mean([p == members[2] for p in space.parents])
    # the unique best member wins whenever it is in the sample: 1 - (4/5)^S
    assert share == pytest.approx(1 - 0.8**sample_size, abs=0.04)


@pytest.mark.parametrize("name", ["random", "evolution"])
def test_replaying_a_history_continues_identically(name):
    """Resume = replay: a fresh strategy told the first 30 answers proposes what the original did."""
    full = fakes.drive(get_strategy(name, SPACE, np.random.default_rng(1)), fitness, archs=60).history
    oracle = fakes.FakeOracle("score", fitness)
    resumed = Driver(get_strategy(name, SPACE, np.random.default_rng(1)), SPACE, {"score": oracle},
                     BudgetConfig(archs=60), replay=full[:30]).run()
    assert [r.arch for r in resumed.history] == [r.arch for r in full]
    assert len(oracle.asked) == len({r.arch for r in full[30:]} - {r.arch for r in full[:30]})  # nothing re-asked
    assert resumed.incumbent.arch == max(full, key=lambda r: r.score).arch


def test_bad_options_are_user_errors():
    with pytest.raises(SearchkitError, match="sample_size"):
        get_strategy("evolution", SPACE, np.random.default_rng(0), population=3, sample_size=4)
    with pytest.raises(SearchkitError, match="strategy 'random' has no option 'population'; its options are: none"):
        get_strategy("random", SPACE, np.random.default_rng(0), population=3)
    with pytest.raises(SearchkitError, match="strategy 'evolution' option population must be an integer, got 'many'"):
        get_strategy("evolution", SPACE, np.random.default_rng(0), population="many")
    with pytest.raises(SearchkitError, match="unknown strategy 'bayes'"):
        get_strategy("bayes", SPACE, np.random.default_rng(0))
