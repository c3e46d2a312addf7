"""RoBoT: robustified and boosted training-free NAS (He, Shu, Dai & Low, "Robustifying and Boosting
Training-Free Neural Architecture Search", ICLR 2024, section 4 and Algorithm 1).

A pool of architectures is scored with d training-free metrics (the run's metric and ``metrics``),
each normalised over the pool. A weight vector w in [-1, 1]^d defines the combined metric

    M(A; w) = sum_i w_i M~_i(A),        A(w) = argmax_{A in pool} M(A; w),

and the objective of a weighting is the validation accuracy of its top-ranked architecture,
f(A(w)) (here: the driver's validate oracle, the table's 12-epoch accuracy).

1. **Robustify (BO).** For ``rounds`` rounds, Bayesian optimisation proposes w; A(w) is validated,
   unless an earlier round already validated it, in which case the round costs nothing and the
   GP is told the known accuracy (the authors' T0 <= T distinct queries).
2. **Boost (exploitation).** w* is the weighting with the best observed accuracy; the pool is
   ranked by M(.; w*) and validated greedily down that ranking, skipping validated architectures,
   until the run's budget (simulated seconds) ends or ``total`` distinct validations were made.

The answer is the best-validated architecture (the driver's rule, as in the authors' code).

As the authors' public code runs it (github.com/hzf1174/RoBoT, ``search_nb201.py``):

* Normalisation: each metric min-max scaled to [0, 1] over the pool (theirs: over all 15,625
  cells); a metric whose value is missing adds nothing (theirs: NaN skipped; ours: a non-finite
  value is set to the pool's finite minimum, i.e. 0 after scaling; a constant metric is 0).
* The box: every w_i in [-1, 1] (a metric may count against a cell).
* The default metric set is grad_norm, snip, grasp, fisher, synflow, jacob_cov (their
  ``--training_free_metrics``); T = 20 (``--search_budget``); ties of f keep the latest weighting.
* Their validation is the 12-epoch CIFAR-10 accuracy (``hp=12``) for every task, with the task's
  own training-free metrics (CIFAR-100 / ImageNet16-120 images); charged its recorded time.

Departures, and why:

* **Acquisition**: theirs is ``bayes_opt`` with UCB (kappa 2.576) from one random point. Ours: a
  botorch ``SingleTaskGP`` (Matern 5/2, standardised outcomes, marginal likelihood) on w mapped to
  the unit cube, maximising log expected improvement (``acquisition: ei``, LogEI, Ament et al.
  2023; ``ucb``: UCB with beta = 2.576^2, their setting) over ``candidates`` scrambled Sobol
  points (theirs: random restarts of L-BFGS); the first ``init`` weightings are uniform.
* **Budget**: theirs is T queries in total (BO's distinct ones, then exploitation up to T). Ours
  is the run's simulated-second budget, so exploitation goes on while it lasts; ``total`` restores
  their stop at T distinct validations.
* **Pool**: every member of a finite space (the benchmark's scored pool: all 15,625 NB201 cells),
  or ``pool`` distinct uniform samples (a space that is not finite, ``pool`` null: 2,000).
* **Normalisation** ``rank`` (not in the paper): each metric replaced by its rank over the pool,
  scaled to (0, 1], so a heavy-tailed metric (synflow, the NTK trace) is not squashed into a
  few cells by min-max.
* **Dataset**: our validation answers from the dataset the search is for (``data.target``);
  training-free scores are those of the scoring batch's images (CIFAR-10 here: we hold no
  CIFAR-100 or ImageNet16-120 images), the reverse of their pairing.
"""
from __future__ import annotations

from typing import Any, Literal, Mapping, Sequence

import numpy as np
import torch

from searchkit.errors import SearchkitError
from searchkit.spaces.base import SearchSpace
from searchkit.strategies.base import Answer, Needs, Query, Score, Strategy, Validate, distinct_samples, strategy

#: The pool of a space that is not a finite set of members, when ``pool`` is null.
SAMPLED_POOL = 2000

#: bayes_opt's default UCB exploration weight (kappa), the authors' acquisition.
UCB_KAPPA = 2.576


def normalise_metrics(values: np.ndarray, method: str = "minmax") -> np.ndarray:
    """Each column of ``values`` (n, d) scaled over the n architectures: ``minmax`` to [0, 1]
    (non-finite values count as the column's finite minimum; a constant column is 0), or
    ``rank``: rank / n in (0, 1] (ties averaged; non-finite values tie with the lowest)."""
    values = np.asarray(values, dtype=float)
    finite = np.isfinite(values)
    low = np.array([column[ok].min() if ok.any() else 0.0 for column, ok in zip(values.T, finite.T)])
    filled = np.where(finite, values, low)
    if method == "rank":
        from scipy.stats import rankdata  # scipy.stats takes ~1 s to import: only where ranks are asked

        return rankdata(filled, axis=0) / len(values)
    span = filled.max(axis=0) - low
    return np.where(span > 0, (filled - low) / np.where(span > 0, span, 1.0), 0.0)


@strategy("robot")
class RoBoT(Strategy):
    """BO over the weights of a normalised metric combination, judged by the validation of each
    weighting's top architecture, then greedy validation down the best weighting's ranking (see
    the module docstring).

    Options: ``metrics`` (metric specs combined with the run's metric), ``rounds`` (BO rounds, T),
    ``total`` (stop after this many distinct validations; None: when the budget ends), ``pool``
    (that many distinct uniform samples; None: every member of a finite space, e.g. the
    benchmark's pool, else :data:`SAMPLED_POOL` samples), ``init``
    (uniform BO weightings first), ``acquisition`` (``ei`` or ``ucb``), ``candidates`` (Sobol
    points the acquisition is maximised over), ``normalise`` (``minmax`` or ``rank``).
    """

    @classmethod
    def needs(cls, options: Mapping[str, Any]) -> Needs:
        return Needs(extra_metrics=tuple(options["metrics"]), validation=True, training_free=True)

    def __init__(
        self, space: SearchSpace, rng: np.random.Generator, metrics: Sequence[str] = (), rounds: int = 20,
        total: int | None = None, pool: int | None = None, init: int = 1, acquisition: Literal["ei", "ucb"] = "ei",
        candidates: int = 2048, normalise: Literal["minmax", "rank"] = "minmax",
    ) -> None:
        if rounds < 1 or init < 1 or candidates < 1 or (total is not None and total < 1) or (pool is not None and pool < 2):
            raise SearchkitError(f"robot needs rounds >= 1, init >= 1, candidates >= 1, total >= 1 (or null) and pool "
                                 f">= 2 (or null); got rounds={rounds}, init={init}, candidates={candidates}, "
                                 f"total={total}, pool={pool}")
        super().__init__(space, rng)
        self.metrics, self.rounds, self.total, self.init = tuple(metrics), rounds, total, init
        self.acquisition, self.candidates, self.normalise = acquisition, candidates, normalise
        members = getattr(space, "members", None)
        self.pool = (list(members) if pool is None and members is not None
                     else distinct_samples(space, rng, SAMPLED_POOL if pool is None else pool))
        self.scores: dict[Any, Answer] = {}
        self.weights: list[np.ndarray] = []  # the BO rounds' weightings, (d,) each
        self.accuracies: list[float] = []  # f(A(w)) of each round
        self.validated: dict[Any, float] = {}
        self._matrix: np.ndarray | None = None  # (n, d) normalised metrics over the pool
        self._pending: np.ndarray | None = None
        self._ranking: list[Any] | None = None

    # --- the two oracles --------------------------------------------------------------------

    def ask(self) -> list[Query]:
        unscored = [Score(arch) for arch in self.pool if arch not in self.scores]
        if unscored:
            return unscored
        if self.total is not None and len(self.validated) >= self.total:
            return []
        while len(self.weights) < self.rounds:  # robustify: BO over w; a known top costs nothing
            weights = self.propose()
            top = self.top(weights)
            if top not in self.validated:
                self._pending = weights
                return [Validate(top)]
            self.weights.append(weights)
            self.accuracies.append(self.validated[top])
        if self._ranking is None:  # boost: greedy down the best weighting's ranking
            self._ranking = [self.pool[i] for i in np.argsort(-self.combined(self.best_weights()), kind="stable")]
        nxt = next((arch for arch in self._ranking if arch not in self.validated), None)
        return [] if nxt is None else [Validate(nxt)]

    def tell(self, query: Query, answer: Answer) -> None:
        if isinstance(query, Score):
            self.scores[query.arch] = answer
            return
        self.validated[query.arch] = float(answer.value)
        if self._pending is not None:
            self.weights.append(self._pending)
            self.accuracies.append(float(answer.value))
            self._pending = None

    # --- the combined metric -----------------------------------------------------------------

    def matrix(self) -> np.ndarray:
        """The pool's normalised metrics, (n, d): the run's metric first, then ``metrics``."""
        if self._matrix is None:
            answers = [self.scores[arch] for arch in self.pool]
            raw = np.array([[a.value, *(a.extras[spec] for spec in self.metrics)] for a in answers], dtype=float)
            self._matrix = normalise_metrics(raw, self.normalise)
        return self._matrix

    def combined(self, weights: np.ndarray) -> np.ndarray:
        """M(A; w) over the pool, (n,)."""
        return self.matrix() @ weights

    def top(self, weights: np.ndarray) -> Any:
        """A(w): the pool's highest M(.; w) (the first on ties)."""
        return self.pool[int(np.argmax(self.combined(weights)))]

    def best_weights(self) -> np.ndarray:
        """w*: the weighting whose top architecture validated best (the latest on ties, as theirs)."""
        accuracies = np.array(self.accuracies)
        return self.weights[int(np.flatnonzero(accuracies == accuracies.max())[-1])]

    # --- Bayesian optimisation ------------------------------------------------------------------

    def propose(self) -> np.ndarray:
        """The next weighting in [-1, 1]^d: uniform for the first ``init``, then the acquisition's
        maximiser over scrambled Sobol candidates."""
        d = self.matrix().shape[1]
        if len(self.weights) < self.init:
            return self.rng.uniform(-1.0, 1.0, d)
        from botorch.acquisition.analytic import LogExpectedImprovement, UpperConfidenceBound
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import SingleTaskGP
        from gpytorch.mlls import ExactMarginalLogLikelihood

        x = (torch.tensor(np.array(self.weights), dtype=torch.float64) + 1) / 2  # the unit cube
        y = torch.tensor(self.accuracies, dtype=torch.float64).unsqueeze(-1)
        seed = int(self.rng.integers(2**31))
        candidates = torch.quasirandom.SobolEngine(d, scramble=True, seed=seed).draw(self.candidates, dtype=torch.float64)
        with torch.random.fork_rng(devices=[]):  # fitting may draw restarts from the global RNG
            torch.manual_seed(seed)
            gp = SingleTaskGP(x, y)
            fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp))
            acquisition = (LogExpectedImprovement(gp, best_f=y.max()) if self.acquisition == "ei"
                           else UpperConfidenceBound(gp, beta=UCB_KAPPA**2))
            with torch.no_grad():
                values = acquisition(candidates.unsqueeze(1))
        return candidates[int(torch.argmax(values))].numpy() * 2 - 1
