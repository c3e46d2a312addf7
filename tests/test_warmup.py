"""Zero-cost warm-up (Abdelfattah et al. 2021, section 5): screen order, warm start best-first,
evolution on validation accuracy, the answer, resume, and the engine's budget."""
import numpy as np
import pytest

from searchkit import run_search
from searchkit.errors import SearchkitError
from searchkit.paths import find_data
from searchkit.spaces import get_space
import fakes
from searchkit.config import BudgetConfig
from searchkit.driver import Driver
from searchkit.strategies import Answer, Validate, ZeroCostWarmup, strategy_needs
from searchkit.strategies.base import mean_ranks
from searchkit.tabular import NB201Table

SPACE = get_space("nb201")


def convs(arch) -> float:
    """Synthetic training-free score: the number of 3x3 convolutions."""
    return float(arch.ops.count("nor_conv_3x3"))


def accuracy(arch) -> float:
    """Synthetic validation landscape, best with 4 convolutions and no none op."""
    return 90.0 - abs(arch.ops.count("nor_conv_3x3") - 4) - arch.ops.count("none")


def test_screens_then_validates_the_top_by_score_best_first_then_evolves():
    strategy = ZeroCostWarmup(SPACE, np.random.default_rng(0), warmup=60, population=5, sample_size=2)
    screen = strategy.ask()
    assert len(screen) == len({q.arch for q in screen}) == 60 and not any(isinstance(q, Validate) for q in screen)
    for query in screen:
        strategy.tell(query, Answer(query.arch, convs(query.arch)))
    top = sorted((q.arch for q in screen), key=convs, reverse=True)[:5]
    for expected in top:  # the warm start: the 5 best by score, best first
        (query,) = strategy.ask()
        assert isinstance(query, Validate) and query.arch == expected
        strategy.tell(query, Answer(query.arch, accuracy(query.arch)))
    (child,) = strategy.ask()  # then a mutation of a population member (one edge differs)
    assert isinstance(child, Validate)
    assert min(sum(a != b for a, b in zip(child.arch.ops, m.ops)) for m in top) == 1


def run(queries: int, strategy: ZeroCostWarmup) -> list:
    """The validated architectures (texts) of ``queries`` queries answered by the driver."""
    return [arch for arch, _ in fakes.validated(fakes.drive(strategy, convs, accuracy, archs=queries))]


def test_answer_is_the_best_validated_and_replay_continues_identically():
    log = fakes.drive(ZeroCostWarmup(SPACE, np.random.default_rng(1), warmup=40, population=4, sample_size=2),
                      convs, accuracy, archs=70)
    validated = fakes.validated(log)
    assert len(validated) == 30 and log.incumbent.selected_by == "validation"
    assert log.incumbent.value == max(a for _, a in validated) == accuracy(SPACE.decode(log.incumbent.arch))
    oracles = {"score": fakes.FakeOracle("score", convs), "validate": fakes.FakeOracle("validate", accuracy)}
    resumed = Driver(ZeroCostWarmup(SPACE, np.random.default_rng(1), warmup=40, population=4, sample_size=2), SPACE,
                     oracles, BudgetConfig(archs=70), replay=log.history[:51]).run()
    assert [(r.arch, r.kind) for r in resumed.history] == [(r.arch, r.kind) for r in log.history]
    assert not oracles["score"].asked and resumed.incumbent.arch == log.incumbent.arch


def test_seeded_and_bad_options_refused():
    a, b, c = (run(45, ZeroCostWarmup(SPACE, np.random.default_rng(seed), warmup=30, population=3)) for seed in (3, 3, 4))
    assert a == b and a != c
    with pytest.raises(SearchkitError, match="population <= top <= warmup"):
        ZeroCostWarmup(SPACE, np.random.default_rng(0), warmup=5, population=10)
    with pytest.raises(SearchkitError, match="sample_size <= population"):
        ZeroCostWarmup(SPACE, np.random.default_rng(0), population=3, sample_size=4)


@pytest.mark.skipif(find_data("nb201/nb201_table.csv") is None or find_data("cifar10") is None,
                    reason="needs ../shared/data (NB201 table and CIFAR-10)")
def test_engine_budget_screens_then_validates_within_the_simulated_budget(tmp_path):
    config = {
        "name": "warmup", "data": {"name": "cifar10", "batch_size": 8}, "space": {"name": "nb201", "build": {"C": 2, "N": 1}},
        "metric": {"name": "params"}, "strategy": {"name": "warmup", "options": {"warmup": 12, "population": 3}},
        "budget": {"archs": None, "simulated_seconds": 400.0}, "validate": {"method": "table"}, "evaluate": {"method": "table"},
    }
    result = run_search(config, out=tmp_path / "run", progress=False)
    table = NB201Table.load()
    scores = [r for r in result.history if r.kind == "score"]
    validations = [r for r in result.history if r.kind == "validate"]
    assert len(scores) == 12 and validations
    assert [r.arch for r in validations[:3]] == [r.arch for r in sorted(scores, key=lambda r: -r.score)[:len(validations[:3])]]
    assert 0 < result.simulated_seconds <= 400.0
    best = max(validations, key=lambda r: r.score)
    assert result.selected_by == "validation" and result.arch == best.arch
    assert best.score == table.accuracy(table.index_of(best.arch), "cifar10", "valid", 12)


def test_an_ensemble_screen_validates_the_best_mean_rank_first():
    def skips(arch):
        return float(arch.ops.count("skip_connect"))

    strategy = ZeroCostWarmup(SPACE, np.random.default_rng(2), warmup=40, population=4, ensemble=["skips"])
    needs = strategy_needs("warmup", {"warmup": 40, "population": 4, "ensemble": ["skips"]})
    assert needs.extra_metrics == ("skips",) and needs.validation
    screen = strategy.ask()
    for query in screen:
        strategy.tell(query, Answer(query.arch, convs(query.arch), {"skips": skips(query.arch)}))
    ranks = mean_ranks([np.array([convs(q.arch) for q in screen]), np.array([skips(q.arch) for q in screen])])
    expected = [screen[i].arch for i in np.argsort(-ranks, kind="stable")[:4]]
    assert [strategy.ask()[0].arch for _ in range(1)] == expected[:1]
    assert strategy._seeds() == expected


def test_screen_all_scores_every_member_of_a_small_finite_space_and_top_validates_more():
    """``screen_all``: a finite space of at most that many members is screened whole (whatever
    ``warmup`` says); ``top`` > ``population``: the ``top`` best by score are validated best first,
    then the population is the ``population`` best-validated of them."""
    from searchkit.spaces.pool import PoolSpace

    members = [SPACE.decode(SPACE.encode(SPACE.sample(np.random.default_rng(i)))) for i in range(300)]
    pool = PoolSpace(SPACE, list(dict.fromkeys(members)))
    strategy = ZeroCostWarmup(pool, np.random.default_rng(0), warmup=20, population=4, sample_size=2,
                              screen_all=len(pool.members), top=12)
    screen = strategy.ask()
    assert sorted(SPACE.encode(q.arch) for q in screen) == sorted(SPACE.encode(a) for a in pool.members)
    for query in screen:
        strategy.tell(query, Answer(query.arch, convs(query.arch)))
    order = np.argsort([-convs(a) for a in strategy.screen], kind="stable")[:12]
    top = [strategy.screen[i] for i in order]
    for expected in top:
        (query,) = strategy.ask()
        assert isinstance(query, Validate) and query.arch == expected
        strategy.tell(query, Answer(query.arch, accuracy(query.arch)))
    assert [v for _, v in strategy.population] == sorted(accuracy(a) for a in top)[-4:]
    # one over the threshold: the usual screen of ``warmup`` samples
    assert len(ZeroCostWarmup(pool, np.random.default_rng(0), warmup=20, population=4, sample_size=2,
                              screen_all=len(pool.members) - 1).ask()) == 20
    with pytest.raises(SearchkitError, match="population <= top <= warmup"):
        ZeroCostWarmup(SPACE, np.random.default_rng(0), warmup=20, population=4, top=3)
