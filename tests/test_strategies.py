"""Random search and regularized evolution: seeding, aging, tournament selection, state round trip."""
import numpy as np
import pytest

from searchkit.errors import SearchkitError
from searchkit.spaces import get_space
from searchkit.strategies import RegularizedEvolution, get_strategy

SPACE = get_space("nb201")


def fitness(arch) -> float:
    """A known landscape: the number of 3x3 convolutions (max 6)."""
    return float(sum(op == "nor_conv_3x3" for op in arch.ops))


def drive(strategy, steps: int) -> list:
    proposed = []
    for _ in range(steps):
        for arch in strategy.ask():
            strategy.tell(arch, fitness(arch))
            proposed.append(arch)
    return proposed


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
    for strategy in evo + rnd:
        drive(strategy, 150)
    assert np.mean([s.best_score for s in evo]) > np.mean([s.best_score for s in rnd])
    assert max(s.best_score for s in evo) == 6.0


def test_evolution_ages_out_the_oldest_and_mutates_one_edge():
    evo = RegularizedEvolution(SPACE, np.random.default_rng(0), population=4, sample_size=2)
    first = drive(evo, 4)  # the initial random population
    assert [a for a, _ in evo.population] == first
    child = evo.ask()[0]
    assert any(sum(x != y for x, y in zip(child.ops, parent.ops)) == 1 for parent in first)
    evo.tell(child, -1.0)  # even the worst child enters; the oldest member leaves
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
def test_state_dict_round_trip_continues_identically(name):
    original = get_strategy(name, SPACE, np.random.default_rng(1))
    drive(original, 30)
    restored = get_strategy(name, SPACE, np.random.default_rng(999))
    restored.load_state_dict(original.state_dict())
    assert drive(restored, 30) == drive(original, 30)
    assert restored.best_arch == original.best_arch


def test_bad_options_are_user_errors():
    with pytest.raises(SearchkitError, match="sample_size"):
        get_strategy("evolution", SPACE, np.random.default_rng(0), population=3, sample_size=4)
    with pytest.raises(SearchkitError, match="bad options for strategy 'random'"):
        get_strategy("random", SPACE, np.random.default_rng(0), population=3)
    with pytest.raises(SearchkitError, match="unknown strategy 'bayes'"):
        get_strategy("bayes", SPACE, np.random.default_rng(0))
