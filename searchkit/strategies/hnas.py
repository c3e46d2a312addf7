"""HNAS: hybrid NAS (Shu et al., "Unifying and Boosting Gradient-Based Training-Free Neural
Architecture Search", NeurIPS 2022 = seed 003, section 5, eq. 7, Algorithm 1).

A pool P of architectures is scored with a training-free metric M (the run's metric) and the
NTK condition number kappa (``ntk_cond`` = -kappa, an extra metric of the same network). For
k = 1..K, Bayesian optimisation proposes (mu_k, nu_k); the candidate is the pool member that
minimises eq. 7,

    J(A) = kappa(A) / M(A) + mu * F(M(A)^2 - nu),    F(x) = x^(2t), t = 1,

its validation accuracy is measured (the engine's validate oracle) and fed back to the GP, and
the answer is the best-validated candidate (Algorithm 1, line 8).

Choices the paper leaves open:

* Sign inside F: F(x) = x^(2t) is even for every integer t, so (M^2 - nu)^(2t) = |M^2 - nu|^(2t)
  and the sign does not matter; we compute |x|^(2t), which also defines non-integer t.
* Scales: M and kappa of different metrics differ by orders of magnitude, so both are divided
  by their median over the pool (M~ = M / med M, kappa~ = kappa / med kappa); eq. 7 is then
  evaluated on M~, kappa~, and nu is in units of med(M)^2. Only architectures with M > 0 and a
  finite kappa can be selected (kappa / M needs M > 0).
* The box: log mu uniform in ``mu`` (default [1e-3, 1e3]); log nu uniform in ``nu`` (default:
  [min, max] of M~^2 over the pool, so nu ranges over the complexities that occur).
* BO: the first ``init`` points are uniform in the (log mu, log nu) box (the unit square);
  afterwards a botorch ``SingleTaskGP`` (Matern 5/2, standardised outcomes, fitted by marginal
  likelihood) on the validation accuracies, and the next point maximises log expected
  improvement (LogEI, Ament et al. 2023) over a ``grid`` x ``grid`` lattice of the box.
* The same candidate may come back for several (mu, nu): eq. 7 can select only the pool
  members on the lower envelope of (kappa/M, (M^2 - nu)^2) over the box, often a few dozen, so
  BO revisits them. A revisit counts as one of the K iterations and feeds the GP, but the engine
  answers it from the run's history and charges it nothing; K therefore bounds the run even when
  the simulated budget is not spent.
* Before any validation (a budget that ends inside the pool), the answer is the pool's best M.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from searchkit.errors import SearchkitError
from searchkit.spaces.base import SearchSpace
from searchkit.strategies.base import Answer, Needs, Query, Score, Strategy, Validate, distinct_samples, strategy

#: The extra metric HNAS asks for: -kappa (searchkit.metrics.ntk_family.NTKCond).
KAPPA_METRIC = "ntk_cond"


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
    """Hybrid NAS: BO over (mu, nu) of eq. 7 on a scored pool, validating one candidate per step.

    Options: ``pool`` (N architectures, distinct uniform samples of the space), ``iterations``
    (K, repeated candidates included), ``init`` (random BO points), ``mu`` and ``nu`` (the box,
    see the module docstring), ``t`` (F's exponent 2t), ``grid`` (acquisition lattice size).
    """

    needs = Needs(extra_metrics=(KAPPA_METRIC,), validation=True, training_free=True)

    def __init__(
        self, space: SearchSpace, rng: np.random.Generator, pool: int = 200, iterations: int = 25,
        init: int = 3, mu: Sequence[float] = (1e-3, 1e3), nu: Sequence[float] | None = None,
        t: float = 1.0, grid: int = 64,
    ) -> None:
        if pool < 1 or iterations < 1 or init < 1 or grid < 2 or t <= 0:
            raise SearchkitError(f"hnas needs pool >= 1, iterations >= 1, init >= 1, grid >= 2 and t > 0; "
                                 f"got pool={pool}, iterations={iterations}, init={init}, grid={grid}, t={t}")
        super().__init__(space, rng)
        self.iterations, self.init, self.t, self.grid = iterations, init, float(t), grid
        self.mu_box = _box("mu", mu)
        self.nu_box = None if nu is None else _box("nu", nu)
        self.pool = distinct_samples(space, rng, pool)
        self.metric: dict[Any, float] = {}
        self.kappa: dict[Any, float] = {}
        self.points: list[tuple[float, float]] = []  # BO inputs in the unit square
        self.accuracies: list[float] = []
        self.candidates: list[Any] = []
        self._pending: tuple[float, float] | None = None

    # --- the two oracles --------------------------------------------------------------------

    def ask(self) -> list[Query]:
        unscored = [Score(arch) for arch in self.pool if arch not in self.metric]
        if unscored:
            return unscored
        if len(self.accuracies) >= self.iterations:
            return []
        self._pending = self.propose()
        return [Validate(self.candidate(*self.hyperparameters(self._pending)))]

    def tell(self, query: Query, answer: Answer) -> None:
        if isinstance(query, Score):
            self.metric[query.arch] = answer.value
            self.kappa[query.arch] = -answer.extras[KAPPA_METRIC]
            return
        if self._pending is None:
            raise RuntimeError("a validation answered without a pending HNAS proposal")
        self.points.append(self._pending)
        self.accuracies.append(float(answer.value))
        self.candidates.append(query.arch)
        self._pending = None

    # --- eq. 7 on the pool ---------------------------------------------------------------------

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        m = np.array([self.metric[a] for a in self.pool], dtype=float)
        kappa = np.array([self.kappa[a] for a in self.pool], dtype=float)
        return normalise(m, kappa)

    def hyperparameters(self, point: tuple[float, float]) -> tuple[float, float]:
        """(mu, nu) of a point of the unit square (log-uniform in the box)."""
        m, _ = self._arrays()
        if self.nu_box is not None:
            nu_low, nu_high = self.nu_box
        else:
            squares = m[m > 0] ** 2
            nu_low, nu_high = float(squares.min()), float(squares.max())
            if nu_high <= nu_low:
                nu_low, nu_high = nu_low / 2, nu_high * 2
        (mu_low, mu_high), (u, v) = self.mu_box, point
        return (float(np.exp(np.log(mu_low) + u * np.log(mu_high / mu_low))),
                float(np.exp(np.log(nu_low) + v * np.log(nu_high / nu_low))))

    def candidate(self, mu: float, nu: float) -> Any:
        """The pool member minimising eq. 7 at (mu, nu) (the first one on ties)."""
        m, kappa = self._arrays()
        return self.pool[int(np.argmin(hnas_objective(m, kappa, mu, nu, self.t)))]

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
