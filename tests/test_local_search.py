"""Local search (White et al. 2021): best-improvement hill climbing over neighbours, restarts when
stuck, every architecture queried once, seeded."""
import numpy as np

import fakes
from searchkit.spaces import get_space
from searchkit.strategies import Answer, Score, get_strategy

SPACE = get_space("nb201")


def convs(arch) -> float:
    """A landscape without local optima: the number of 3x3 convolutions (max 6, one cell has it)."""
    return float(arch.ops.count("nor_conv_3x3"))


def test_climbs_to_the_optimum_asking_each_architecture_once():
    log = fakes.drive(get_strategy("local", SPACE, np.random.default_rng(0)), convs, archs=200)
    arches = [row.arch for row in log.history]
    assert len(arches) == len(set(arches)) and not any(row.cached for row in log.history)
    assert log.incumbent.value == 6.0


def test_moves_to_the_best_neighbour_and_restarts_at_a_local_optimum():
    strategy = get_strategy("local", SPACE, np.random.default_rng(1))
    (start,) = strategy.ask()
    strategy.tell(start, Answer(start.arch, 0.0))
    neighbours = strategy.ask()
    assert {q.arch for q in neighbours} == set(SPACE.neighbours(start.arch)) and len(neighbours) == 24
    target = neighbours[7].arch
    for query in neighbours:  # one neighbour improves, the best one is taken
        strategy.tell(query, Answer(query.arch, 2.0 if query.arch == target else (1.0 if query is neighbours[3] else -1.0)))
    following = strategy.ask()
    assert strategy.current == target and all(q.arch in SPACE.neighbours(target) for q in following)
    assert start.arch not in {q.arch for q in following}  # already known: not asked again
    for query in following:  # nothing beats the current one: a local optimum, so restart elsewhere
        strategy.tell(query, Answer(query.arch, 0.5))
    (restart,) = strategy.ask()
    assert strategy.restarts == 1 and restart.arch not in strategy.values and isinstance(restart, Score)


def test_a_flat_landscape_restarts_after_every_neighbourhood():
    log = fakes.drive(get_strategy("local", SPACE, np.random.default_rng(2)), lambda arch: 1.0, archs=50)
    assert len({row.arch for row in log.history}) == 50  # start + 24 neighbours, twice


def test_same_seed_same_search():
    runs = [[r.arch for r in fakes.drive(get_strategy("local", SPACE, np.random.default_rng(s)), convs, archs=60).history]
            for s in (4, 4, 5)]
    assert runs[0] == runs[1] != runs[2]
