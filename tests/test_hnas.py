"""HNAS: eq. 7 and its selection on known pools, the BO loop (K steps, seeded), and the engine's
validation cost accounting (12/200 charge, no double charge, resume)."""
import json
import shutil

import numpy as np
import pytest

import fakes
from searchkit import run_search
from searchkit.errors import SearchkitError
from searchkit.paths import find_data
from searchkit.spaces import get_space
from searchkit.rundir import RunDir
from searchkit.strategies import HNAS, Answer, Validate, strategy_needs
from searchkit.strategies.base import mean_ranks
from searchkit.strategies.hnas import KAPPA_METRIC, hnas_objective, normalise
from searchkit.tabular import NB201Table

SPACE = get_space("nb201")


pytestmark = pytest.mark.usefixtures("one_thread")


def test_objective_matches_eq_7_and_f_is_even():
    m, kappa = np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 1.0])
    assert np.allclose(hnas_objective(m, kappa, 0.5, 4.0), 1 / m + 0.5 * (m**2 - 4.0) ** 2)
    assert np.argmin(hnas_objective(m, kappa, 0.0, 1.0)) == 2      # mu = 0: smallest kappa / M
    assert np.argmin(hnas_objective(m, kappa, 1e3, 4.0)) == 1      # large mu: M^2 closest to nu
    # F(x) = x^2 is even: M^2 = 1 and M^2 = 9 are equally far from nu = 5
    assert hnas_objective(np.array([1.0]), np.array([0.0]), 1.0, 5.0) == hnas_objective(np.array([3.0]), np.array([0.0]), 1.0, 5.0)
    assert np.allclose(hnas_objective(m, kappa, 1.0, 4.0, t=2), 1 / m + (m**2 - 4.0) ** 4)
    bad = hnas_objective(np.array([0.0, -1.0, 2.0]), np.array([1.0, 1.0, np.inf]), 1.0, 1.0)
    assert np.all(np.isinf(bad))  # M <= 0 or kappa not finite: never selected


def test_normalise_divides_by_pool_medians():
    m, kappa = normalise(np.array([1.0, 2.0, 4.0, 0.0]), np.array([10.0, 20.0, 40.0, 5.0]))
    assert np.allclose(m, [0.5, 1.0, 2.0, 0.0]) and np.allclose(kappa, [0.5, 1.0, 2.0, 0.25])
    with pytest.raises(SearchkitError, match="positive metric"):
        normalise(np.array([0.0, -1.0]), np.array([1.0, 1.0]))


def fake_scores(arch):
    """A synthetic pool: M = 1 + number of 3x3 convs, kappa = 1 + number of none ops."""
    return 1.0 + arch.ops.count("nor_conv_3x3"), 1.0 + arch.ops.count("none")


def fake_accuracy(arch):
    """A known landscape the BO should climb: best with 3 convolutions and no none op."""
    return 90.0 - abs(arch.ops.count("nor_conv_3x3") - 3) - arch.ops.count("none")


def drive(strategy):
    return fakes.drive(strategy, lambda a: fake_scores(a)[0], fake_accuracy, lambda a: {KAPPA_METRIC: -fake_scores(a)[1]})


def test_candidate_is_the_pool_argmin_of_eq_7():
    hnas = HNAS(SPACE, np.random.default_rng(0), pool=30, growth=0, iterations=1)
    for query in hnas.ask():
        m, kappa = fake_scores(query.arch)
        hnas.tell(query, Answer(query.arch, m, {KAPPA_METRIC: -kappa}))
    m, kappa = normalise(*map(np.array, zip(*(fake_scores(a) for a in hnas.pool))))
    for mu, nu in [(1e-3, 0.5), (10.0, 1.0), (100.0, 3.0)]:
        expected = hnas.pool[int(np.argmin(hnas_objective(m, kappa, mu, nu)))]
        assert hnas.candidate(mu, nu) == expected


def test_bo_runs_k_steps_is_seeded_and_answers_the_best_validated():
    runs = [fakes.validated(drive(HNAS(SPACE, np.random.default_rng(seed), pool=40, growth=30, iterations=5, init=2,
                                       grid=8))) for seed in (3, 3, 4)]
    assert len(runs[0]) == 5
    assert runs[0] == runs[1] and runs[0] != runs[2]
    log = drive(HNAS(SPACE, np.random.default_rng(3), pool=40, growth=30, iterations=5, init=2, grid=8))
    assert log.incumbent.selected_by == "validation"
    assert log.incumbent.value == max(a for _, a in fakes.validated(log)) == fake_accuracy(SPACE.decode(log.incumbent.arch))


def test_the_main_metric_may_be_the_extra_metric(tmp_path):
    """Regression: hnas with metric ntk_cond crashed with a KeyError (main and extra metrics shared
    one label dictionary, and the main one was popped from it)."""
    config = {"name": "hnas-cond", "data": {"name": "synthetic", "batch_size": 8,
                                            "options": {"shape": [3, 8, 8], "n_train": 32, "n_valid": 16}},
              "space": {"name": "nb201", "build": {"C": 2, "N": 1}}, "metric": {"name": "ntk_cond"},
              "strategy": {"name": "hnas", "options": {"pool": 3, "growth": 0, "iterations": 1, "init": 1, "grid": 4}},
              "validate": {"method": "train", "epochs": 1}, "evaluate": {"method": "none"},
              "budget": {"archs": 3}}
    result = run_search(config, out=tmp_path / "run", progress=False)  # the pool, then the budget ends
    assert len(result.history) == 3 and all(r.extras[KAPPA_METRIC] == r.score < 0 for r in result.history)
    config["budget"] = {"archs": 4}  # eq. 7 divides by M: M = -kappa < 0 is refused in words
    with pytest.raises(SearchkitError, match="HNAS needs architectures with a positive metric M"):
        run_search(config, out=tmp_path / "run2", progress=False)


class PoolRecording(HNAS):
    """HNAS that records the pool size whenever it asks for a validation."""

    def ask(self):
        queries = super().ask()
        if queries and isinstance(queries[0], Validate):
            self.sizes = getattr(self, "sizes", []) + [len(self.pool)]
        return queries


def test_the_pool_grows_by_fresh_uniform_draws_and_no_cell_is_validated_twice():
    """The authors' code: every BO step adds uniform draws of the whole space to the pool (and
    every new member is scored before the selection), and validated cells leave the pool."""
    strategy = PoolRecording(SPACE, np.random.default_rng(7), pool=20, growth=50, iterations=8, init=2, grid=8)
    log = drive(strategy)
    validated = [arch for arch, _ in fakes.validated(log)]
    assert len(validated) == 8 == len(set(validated))  # eight iterations, eight distinct cells
    scored = [row.arch for row in log.history if row.kind == "score"]
    assert len(scored) == len(set(scored)) == len(strategy.pool)  # every member scored once
    assert strategy.sizes[0] == 20 and all(40 < b - a <= 50 for a, b in zip(strategy.sizes, strategy.sizes[1:]))
    positions = [i for i, row in enumerate(log.history) if row.kind == "validate"]
    assert [sum(r.kind == "score" for r in log.history[:p]) for p in positions] == strategy.sizes
    again = drive(HNAS(SPACE, np.random.default_rng(7), pool=20, growth=50, iterations=8, init=2, grid=8))
    assert [(r.arch, r.kind) for r in again.history] == [(r.arch, r.kind) for r in log.history]  # seeded
    assert again.incumbent.arch == log.incumbent.arch


def test_revisit_restores_repeated_candidates():
    """revisit=True on a fixed pool of 3: BO must pick validated cells again within 6 iterations."""
    log = drive(HNAS(SPACE, np.random.default_rng(0), pool=3, growth=0, iterations=6, init=2, grid=8, revisit=True))
    validated = [arch for arch, _ in fakes.validated(log)]
    assert len(validated) == 6 and len(set(validated)) <= 3
    with pytest.raises(SearchkitError, match="no architecture left to validate"):
        drive(HNAS(SPACE, np.random.default_rng(0), pool=3, growth=0, iterations=6, init=2, grid=8))


def test_an_ensemble_ranks_several_metrics_into_m():
    assert np.allclose(mean_ranks([np.array([1.0, 2.0, 3.0]), np.array([30.0, 10.0, 20.0])]), [2 / 3, 1.5 / 3, 2.5 / 3])
    strategy = HNAS(SPACE, np.random.default_rng(0), pool=10, growth=0, iterations=1, ensemble=["synflow"])
    assert strategy_needs("hnas", {"ensemble": ["synflow"]}).extra_metrics == (KAPPA_METRIC, "synflow")
    for query in strategy.ask():
        m, kappa = fake_scores(query.arch)
        strategy.tell(query, Answer(query.arch, m, {KAPPA_METRIC: -kappa, "synflow": -m}))
    m, _ = strategy._arrays()  # the two metrics disagree completely: every mean rank is the same
    assert np.allclose(m, 1.0)


def test_bad_options_are_refused():
    with pytest.raises(SearchkitError, match="mu must be"):
        HNAS(SPACE, np.random.default_rng(0), mu=(10, 1))
    with pytest.raises(SearchkitError, match="pool >= 1"):
        HNAS(SPACE, np.random.default_rng(0), pool=0)


@pytest.mark.skipif(find_data("nb201/nb201_table.csv") is None or find_data("cifar10") is None,
                    reason="needs ../shared/data (NB201 table and CIFAR-10)")
def test_engine_charges_12_epoch_validations_once_and_resumes(tmp_path):
    config = {
        "name": "hnas", "data": {"name": "cifar10", "batch_size": 8}, "space": {"name": "nb201", "build": {"C": 2, "N": 1}},
        "metric": {"name": "naswot"},
        "strategy": {"name": "hnas", "options": {"pool": 6, "growth": 0, "revisit": True, "iterations": 5, "init": 2, "grid": 8}},
        "budget": {"archs": None, "simulated_seconds": 1e6}, "validate": {"method": "table"}, "evaluate": {"method": "table"},
    }
    result = run_search(config, out=tmp_path / "run", progress=False)
    table = NB201Table.load()
    rows = RunDir(tmp_path / "run").read_history()
    scores = [r for r in rows if r.kind == "score"]
    validations = [r for r in rows if r.kind == "validate"]
    assert len(scores) == 6 and len(validations) == 5 and all(KAPPA_METRIC in r.extras for r in scores)
    first = {}
    for row in validations:
        index = table.index_of(row.arch)
        assert row.score == table.accuracy(index, "cifar10", "valid", 12)
        if row.arch in first:  # a repeated candidate is answered from history, not charged again
            assert row.cached and row.simulated_seconds == 0.0
        else:
            first[row.arch] = row
            assert not row.cached
            assert row.simulated_seconds == pytest.approx(table.columns["c10_train_time_200ep_s"][index] * 12 / 200, abs=1e-3)
    charged = sum(table.train_time(table.index_of(a), "cifar10", 12) for a in first)
    assert result.simulated_seconds == pytest.approx(charged, abs=1e-2)
    assert result.search_seconds == pytest.approx(sum(r.seconds for r in scores), abs=1e-3)
    best = json.loads((tmp_path / "run" / "best.json").read_text())
    assert best["selected_by"] == "validation" and best["arch"] == max(validations, key=lambda r: r.score).arch
    assert best["search_cost"]["validations"] == 5 and best["search_cost"]["training_charged"].startswith("simulated")
    assert best["search_cost"]["simulated_seconds"] == pytest.approx(charged, abs=1e-2)

    partial = tmp_path / "partial"  # killed after the pool and two validations
    shutil.copytree(tmp_path / "run", partial)
    (partial / "best.json").unlink()
    lines = (partial / "history.csv").read_text().splitlines(keepends=True)
    (partial / "history.csv").write_text("".join(lines[:9]))
    resumed = run_search(resume=partial, progress=False)
    assert [(r.arch, r.kind, r.score) for r in resumed.history] == [(r.arch, r.kind, r.score) for r in rows]
    assert resumed.simulated_seconds == pytest.approx(result.simulated_seconds)

    capped = run_search({**config, "budget": {"archs": None, "simulated_seconds": 150.0}}, out=tmp_path / "capped", progress=False)
    assert capped.simulated_seconds <= 150.0  # a validation that would overrun the budget is not started


def test_log1m_spreads_kcc_and_keeps_the_unselectable_unselectable():
    from searchkit.strategies.hnas import LOG1M_FLOOR, spread

    m = np.array([0.9, 0.99, 0.999, 1.0, 0.0, -0.5])
    out = spread(m, "log1m")
    assert np.allclose(out[:3], np.log(10.0) * np.array([1, 2, 3]))  # a decade of 1 - M is one step of log 10
    assert out[3] == pytest.approx(-np.log(LOG1M_FLOOR)) and out[4] == 0.0 and out[5] < 0
    assert np.array_equal(spread(m, "none"), m)


def test_the_nu_box_from_quantiles_of_m_squared():
    def box(**options):
        hnas = HNAS(SPACE, np.random.default_rng(0), pool=60, growth=0, iterations=1, **options)
        for query in hnas.ask():
            m, kappa = fake_scores(query.arch)
            hnas.tell(query, Answer(query.arch, m, {KAPPA_METRIC: -kappa}))
        hnas.hyperparameters((0.5, 0.5))
        return hnas.nu_box, normalise(*map(np.array, zip(*(fake_scores(a) for a in hnas.pool))))[0] ** 2

    (low, high), squares = box()
    assert (low, high) == (squares.min(), squares.max())
    (low, high), squares = box(nu_quantiles=[0.1, 0.9])
    assert (low, high) == tuple(np.quantile(squares, [0.1, 0.9])) and squares.min() <= low < high < squares.max()
    with pytest.raises(SearchkitError, match="nu_quantiles"):
        HNAS(SPACE, np.random.default_rng(0), pool=5, nu_quantiles=[0.9, 0.1])
