"""HNAS: hybrid NAS (Shu et al., "Unifying and Boosting Gradient-Based Training-Free Neural
Architecture Search", NeurIPS 2022 = seed 003, section 5, eq. 7, Algorithm 1).

A pool P of architectures is scored with a training-free metric M (the run's metric) and the
NTK condition number kappa (``ntk_cond`` = -kappa, an extra metric of the same network). For
k = 1..K, Bayesian optimisation proposes (mu_k, nu_k); the candidate is the pool member that
minimises eq. 7,

    J(A) = kappa(A) / M(A) + mu * F(M(A)^2 - nu),    F(x) = x^(2t), t = 1,

its validation accuracy is measured (the driver's validate oracle) and fed back to the GP, and
the answer is the best-validated candidate (Algorithm 1, line 8).

Where the paper is silent we follow the authors' public code (github.com/shuyao95/HNAS,
``nasbench/nasbench2_search.py``):

* The pool grows: before every candidate selection, ``growth`` (theirs: 2,000) uniform draws from
  the whole space (with replacement; repeats and pool members dropped) join the pool, so over K
  steps it covers most of NAS-Bench-201. Every new member is scored (and charged) before the
  selection. The first selection uses ``pool`` distinct draws (theirs: the first 2,000 draws).
* A validated architecture leaves the pool: no candidate is validated twice (``revisit=True``
  restores the earlier behaviour, where BO could pick a validated cell again and a repeat used
  up an iteration for free).
* K defaults to 20 (``total_iters``); the benchmark bounds a run by simulated seconds instead.

Departures from their code, and why:

* F: the paper's F(x) = x^(2t), t = 1 (their code uses |x|, i.e. t = 1/2: set ``t=0.5``).
  F(x) = x^(2t) is even for every integer t, so we compute |x|^(2t), which also defines
  non-integer t.
* Scales: their code takes M on its raw scale and nu = (scale * target)^2 with a hand-set scale
  (5e3 for the trace). We divide M and kappa by their median over the pool (M~ = M / med M,
  kappa~ = kappa / med kappa), so one box serves every metric; nu is in units of med(M)^2.
  Only architectures with M > 0 and a finite kappa can be selected (kappa / M needs M > 0).
* The box: log mu uniform in ``mu`` (default [1e-3, 1e3]; theirs: 10^[-4, 0] on their scale); log
  nu uniform in ``nu`` (default: [min, max] of M~^2 over the first pool, fixed thereafter so a
  BO input keeps its meaning as the pool grows). ``nu_quantiles: [q, 1 - q]`` sets the box to
  those quantiles of M~^2 instead: a heavy-tailed M (the NTK trace spans 8 decades of M~^2)
  otherwise puts most of the box far from every good cell (issue 23).
* ``transform: log1m`` takes M' = -log(1 - M) for M in the run's metric (M >= 1 counts as
  1 - 1e-12): it spreads a metric compressed just below 1 (KCC: median 0.993 over NB201), which
  eq. 7 otherwise reads as M~ = 1 everywhere, so that J ranks by kappa alone. Not in the paper.
* BO: theirs is ``bayes_opt`` with EI and 5 fixed initial probes (nu on a line, mu = 10^-2). Ours:
  the first ``init`` points uniform in the (log mu, log nu) unit square, then a botorch
  ``SingleTaskGP`` (Matern 5/2, standardised outcomes, fitted by marginal likelihood) and the
  maximiser of log expected improvement (LogEI, Ament et al. 2023) over a ``grid`` x ``grid``
  lattice of the box.
* ``ensemble``: extra metric specs whose ranks are averaged with the run metric's into M (the
  mean rank over the current pool, in (0, 1]); a population statistic, so it is recomputed as the
  pool grows. Not in the paper: the project's best training-free signal inside HNAS.
* The NTK of the summed logits (searchkit's default) where their code uses the true-class logit;
  any NTK option of the run's metric applies to kappa's ``ntk_cond`` only through its spec.
* Before any validation (a budget that ends inside the pool), the answer is the pool's best M.
* Under a wall budget with trained validations (no table: :meth:`HNAS.budget_options`), the
  table-benchmark defaults (pool = growth = 2,000) would spend hours scoring; pool and growth,
  unless the user set them, are sized from the budget instead: with K' = min(K, the validations
  that fit in half of it), the rest of the time in cells (n of them), the first pool n/2 and the
  growth the other half spread over the K' - 1 later steps. K itself stays a cap: the budget,
  not K', ends the search, so a machine faster than its measurements validates more candidates
  (the pool still growing by ``growth`` per step) instead of stopping early.
"""
from __future__ import annotations

from typing import Any, Literal, Mapping, Sequence

import numpy as np
import torch

from searchkit.errors import SearchkitError
from searchkit.spaces.base import SearchSpace
from searchkit.strategies.base import (Answer, Needs, Query, Score, Strategy, TimeBudget, Validate, Workload,
                                       distinct_samples, mean_ranks, strategy)

#: The extra metric HNAS asks for: -kappa (searchkit.metrics.ntk_metrics.NTKCond).
KAPPA_METRIC = "ntk_cond"
#: The largest value -log(1 - M) is taken at (``transform: log1m``): M = 1 - LOG1M_FLOOR.
LOG1M_FLOOR = 1e-12


def spread(m: np.ndarray, transform: str) -> np.ndarray:
    """M as eq. 7 reads it: ``none`` (M itself) or ``log1m`` (-log(1 - M), M >= 1 capped at
    1 - :data:`LOG1M_FLOOR`; M <= 0 stays <= 0, so it is still never selected). m: (n,) -> (n,)."""
    if transform == "none":
        return m
    return -np.log1p(-np.minimum(m, 1.0 - LOG1M_FLOOR))


def hnas_objective(m: np.ndarray, kappa: np.ndarray, mu: float, nu: float, t: float = 1.0) -> np.ndarray:
    """Eq. 7 for every architecture: kappa / M + mu |M^2 - nu|^(2t); +inf where M <= 0 or kappa is
    not finite. m, kappa: (n,) -> (n,)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        value = kappa / m + mu * np.abs(m**2 - nu) ** (2 * t)
    return np.where((m > 0) & np.isfinite(kappa) & np.isfinite(value), value, np.inf)


def normalise(m: np.ndarray, kappa: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(M / median M, kappa / median kappa), medians over the selectable architectures (M > 0,
    finite kappa). m, kappa: (n,)."""
    ok = (m > 0) & np.isfinite(kappa)
    if not ok.any():
        raise SearchkitError("HNAS needs architectures with a positive metric M (eq. 7 divides by M) "
                             "and a finite NTK condition number; none in the pool has both")
    return m / np.median(m[ok]), kappa / np.median(kappa[ok])


def _box(name: str, bounds: Sequence[float]) -> tuple[float, float]:
    low, high = (float(b) for b in bounds)
    if not 0 < low < high:
        raise SearchkitError(f"hnas option {name} must be [low, high] with 0 < low < high, got {list(bounds)}")
    return low, high


@strategy("hnas")
class HNAS(Strategy):
    """Hybrid NAS: BO over (mu, nu) of eq. 7 on a growing scored pool, validating one new candidate
    per step (see the module docstring).

    Options: ``pool`` (the first pool: distinct uniform samples), ``growth`` (uniform draws added
    before every later selection; 0 keeps the pool fixed), ``iterations`` (K), ``revisit``
    (validated architectures may be picked again), ``init`` (random BO points), ``mu`` and ``nu``
    (the box), ``nu_quantiles`` (the nu box from quantiles of M~^2 instead of its min-max), ``t``
    (F's exponent 2t), ``grid`` (acquisition lattice size), ``ensemble`` (metric specs ranked with
    the run's metric into M), ``transform`` (``log1m``: M' = -log(1 - M)).
    """

    @classmethod
    def needs(cls, options: Mapping[str, Any]) -> Needs:
        return Needs(extra_metrics=(KAPPA_METRIC, *options["ensemble"]), validation=True, training_free=True)

    def __init__(
        self, space: SearchSpace, rng: np.random.Generator, pool: int = 2000, growth: int = 2000,
        iterations: int = 20, revisit: bool = False, init: int = 3, mu: Sequence[float] = (1e-3, 1e3),
        nu: Sequence[float] | None = None, t: float = 1.0, grid: int = 64, ensemble: Sequence[str] = (),
        nu_quantiles: Sequence[float] | None = None, transform: Literal["none", "log1m"] = "none",
    ) -> None:
        if pool < 1 or growth < 0 or iterations < 1 or init < 1 or grid < 2 or t <= 0:
            raise SearchkitError(f"hnas needs pool >= 1, growth >= 0, iterations >= 1, init >= 1, grid >= 2 and "
                                 f"t > 0; got pool={pool}, growth={growth}, iterations={iterations}, init={init}, "
                                 f"grid={grid}, t={t}")
        super().__init__(space, rng)
        self.iterations, self.init, self.t, self.grid = iterations, init, float(t), grid
        self.growth, self.revisit, self.ensemble = growth, revisit, tuple(ensemble)
        self.mu_box = _box("mu", mu)
        self.nu_box = None if nu is None else _box("nu", nu)
        if nu_quantiles is not None and not (len(nu_quantiles) == 2 and 0 <= nu_quantiles[0] < nu_quantiles[1] <= 1):
            raise SearchkitError(f"hnas option nu_quantiles must be [low, high] with 0 <= low < high <= 1, got "
                                 f"{list(nu_quantiles)}")
        self.nu_quantiles, self.transform = None if nu_quantiles is None else tuple(map(float, nu_quantiles)), transform
        self.pool = distinct_samples(space, rng, pool)
        self.scores: dict[Any, Answer] = {}
        self.points: list[tuple[float, float]] = []  # BO inputs in the unit square
        self.accuracies: list[float] = []
        self.candidates: list[Any] = []
        self._pending: tuple[float, float] | None = None
        self._grown = 0  # the number of selections the pool has grown for

    # --- the budget ---------------------------------------------------------------------------

    def workload(self) -> Workload:
        return Workload(scores=len(self.pool) + self.growth * (self.iterations - 1), validations=self.iterations,
                        scores_first=len(self.pool))

    def budget_options(self, budget: TimeBudget, given: frozenset[str]) -> dict[str, Any]:
        """Pool and growth from a wall budget when a training answers validations (module docstring)."""
        if budget.validation is None:
            return {}
        sized: dict[str, Any] = {}
        iterations = self.iterations
        if "iterations" not in given:
            iterations = max(1, min(self.iterations, int(budget.seconds / 2 / budget.validation)))
        cells = max(2 * iterations, int((budget.seconds - iterations * budget.validation) / max(budget.score, 1e-9)))
        pool = len(self.pool) if "pool" in given else cells if iterations == 1 else -(-cells // 2)
        if "pool" not in given:
            sized["pool"] = pool
        if "growth" not in given:
            sized["growth"] = 0 if iterations == 1 else max(0, cells - pool) // (iterations - 1)
        return sized

    # --- the two oracles --------------------------------------------------------------------

    def ask(self) -> list[Query]:
        if len(self.accuracies) >= self.iterations:
            return []
        if self.growth and self._grown < len(self.accuracies):
            self._grow()
        unscored = [Score(arch) for arch in self.pool if arch not in self.scores]
        if unscored:
            return unscored
        self._pending = self.propose()
        return [Validate(self.candidate(*self.hyperparameters(self._pending)))]

    def tell(self, query: Query, answer: Answer) -> None:
        if isinstance(query, Score):
            self.scores[query.arch] = answer
            return
        if self._pending is None:
            raise RuntimeError("a validation answered without a pending HNAS proposal")
        self.points.append(self._pending)
        self.accuracies.append(float(answer.value))
        self.candidates.append(query.arch)
        self._pending = None

    def _grow(self) -> None:
        """Add ``growth`` uniform draws (with replacement) that are new to the pool."""
        members = set(self.pool)
        for _ in range(self.growth):
            arch = self.space.sample(self.rng)
            if arch not in members:
                members.add(arch)
                self.pool.append(arch)
        self._grown = len(self.accuracies)

    # --- eq. 7 on the pool ---------------------------------------------------------------------

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(M~, kappa~) over the pool; M the run's metric, or its rank ensemble (``ensemble``)."""
        answers = [self.scores[a] for a in self.pool]
        m = spread(np.array([a.value for a in answers], dtype=float), self.transform)
        if self.ensemble:
            m = mean_ranks([m, *(np.array([a.extras[spec] for a in answers], dtype=float) for spec in self.ensemble)])
        kappa = np.array([-a.extras[KAPPA_METRIC] for a in answers], dtype=float)
        return normalise(m, kappa)

    def hyperparameters(self, point: tuple[float, float]) -> tuple[float, float]:
        """(mu, nu) of a point of the unit square (log-uniform in the box)."""
        if self.nu_box is None:
            m, _ = self._arrays()
            squares = m[m > 0] ** 2
            nu_low, nu_high = (float(v) for v in np.quantile(squares, self.nu_quantiles or (0.0, 1.0)))
            self.nu_box = (nu_low / 2, nu_high * 2) if nu_high <= nu_low else (nu_low, nu_high)
        (mu_low, mu_high), (nu_low, nu_high), (u, v) = self.mu_box, self.nu_box, point
        return (float(np.exp(np.log(mu_low) + u * np.log(mu_high / mu_low))),
                float(np.exp(np.log(nu_low) + v * np.log(nu_high / nu_low))))

    def candidate(self, mu: float, nu: float) -> Any:
        """The pool member minimising eq. 7 at (mu, nu) (the first one on ties), validated ones
        excluded unless ``revisit``."""
        m, kappa = self._arrays()
        objective = hnas_objective(m, kappa, mu, nu, self.t)
        if not self.revisit:
            validated = set(self.candidates)
            objective[[i for i, arch in enumerate(self.pool) if arch in validated]] = np.inf
        if not np.isfinite(objective).any():
            raise SearchkitError("HNAS has no architecture left to validate in its pool; lower iterations or raise "
                                 "pool/growth")
        return self.pool[int(np.argmin(objective))]

    # --- Bayesian optimisation ------------------------------------------------------------------

    def propose(self) -> tuple[float, float]:
        """The next BO point in the unit square: uniform for the first ``init``, then argmax LogEI."""
        if len(self.accuracies) < self.init:
            u, v = self.rng.random(2)
            return float(u), float(v)
        from botorch.acquisition.analytic import LogExpectedImprovement
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import SingleTaskGP
        from gpytorch.mlls import ExactMarginalLogLikelihood

        x = torch.tensor(self.points, dtype=torch.float64)
        y = torch.tensor(self.accuracies, dtype=torch.float64).unsqueeze(-1)
        ticks = (torch.arange(self.grid, dtype=torch.float64) + 0.5) / self.grid
        lattice = torch.cartesian_prod(ticks, ticks)  # (grid^2, 2)
        with torch.random.fork_rng(devices=[]):  # fitting may draw restarts from the global RNG
            torch.manual_seed(int(self.rng.integers(2**31)))
            gp = SingleTaskGP(x, y)
            fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp))
            with torch.no_grad():
                acquisition = LogExpectedImprovement(gp, best_f=y.max())(lattice.unsqueeze(1))
        u, v = lattice[int(torch.argmax(acquisition))].tolist()
        return u, v
