"""NASI: NAS at initialisation (Shu et al., "NASI: Label- and Data-agnostic Neural Architecture
Search at Initialization", ICLR 2022 = seed 002, section 3.3, Algorithm 1, appendix B), on the
NAS-Bench-201 and DARTS spaces.

One machinery for every space: a space's supernet (:meth:`searchkit.spaces.base.BaseSpace.supernet`) exposes
its architecture choices as the rows of a (R, K) matrix with a mask of valid options; NASI keeps
logits alpha: (R, K) and feeds the supernet one-hot weights from a straight-through
Gumbel-softmax sample per row (appendix B.3, eq. 42, tau = 1): the forward is the sampled
architecture, the backward uses the softmax's gradient. NB201: one row per edge (6 x 5 ops),
shared by all cells; DARTS: an op row and an input row per intermediate node of the normal and
the reduction cell (16 rows, appendix B.2), the genotype keeping each node's top-2 ops and
inputs.

Algorithm 1: alpha_0 = 0, the weights theta_0 are initialised once (seeded) and never trained.
For t = 1..T: draw a mini-batch D_t of b training images and g_t ~ Gumbel(0, 1), sample A_t from
(alpha_0, g_t), and take G_t = d R(A_t) / d alpha with

    R(A) = ||Theta~(A)||_tr - mu max(0, ||Theta~(A)||_tr - nu)                      (eq. 13-14)
    ||Theta~(A)||_tr = || b^-1 sum_{x in D_t} grad_theta L_x ||_2^2                  (eq. 11-12)

(the trace approximation; :class:`searchkit.metrics.loss_gradient.NTKTraceApprox` computes the same
quantity for a fixed network: mean cross-entropy, train-mode BN, one backward). A sample whose
G_t is not finite, or that has no gradient (a degenerate KCC kernel), contributes G_t = 0. Then

    Delta alpha = (rho / T) sum_t G_t / max(||G_1||, ..., ||G_t||)                    (eq. 18)

and the supernet derives the architecture from alpha_0 + Delta alpha (line 8: each row's
argmax; DARTS keeps the top two of each node's op and input rows). With alpha_0 = 0 the result does
not depend on rho > 0, so rho = 1. The returned value is R of that architecture on the run's
scoring batch, in the space's own network at the supernet's size and initialisation seed.

nu (appendix B.1): ``nu="fixed"`` uses nu_0 for all steps, by default the mean trace over
``nu_samples`` = 50 sampled architectures (eq. 40); ``nu="adaptive"`` uses
nu_t = (nu_0 + sum_{tau < t} ||Theta~(A_tau)||_tr) / t (eq. 41), with a "relatively large"
nu_0, by default 5 x the eq. 40 estimate (the ratio of the paper's DARTS settings, 500 vs 100).

Objective: the run's metric in its differentiable form (:meth:`searchkit.metrics.base.Metric.differentiable`),
with the same options the run scores with. ``ntk_trace`` / ``ntk_trace_approx`` -> R above (the
paper's: their differentiable form is the trace approximation of eq. 11-12); an unbounded metric
(``Metric.unbounded``, the trace) gets eq. 13's penalty, a bounded one is maximised as it is:
``kcc`` -> R(A) = KCC(Theta(A)) (seed 000, eq. 9), differentiated through the empirical NTK
(per-sample Jacobians with ``torch.func``; batch statistics held constant) and KCC's closed form.
KCC needs the whole m x p Jacobian and its derivative, so it is several times slower per step
than the trace; it is practical on CPU only with a small supernet and batch (see the benchmark
config). A metric without a differentiable form is refused before the search starts.

Supernet size: the one-shot architecture represents the search space (section 3.3), so by default
it is the network the run scores and evaluates, the run's ``space.build`` (NB201: C=16, N=5;
DARTS: the proxy's C and layers); ``C`` / ``N`` / ``layers`` override it. A reduced supernet
optimises a different objective: on 100 random NB201 cells (CIFAR-10, b=64) the trace
approximation has Spearman +0.51 with the 200-epoch test accuracy at C=16, N=5 but -0.18 at
C=8, N=1, where average pooling raises the trace; searching that small supernet selected
pooling-heavy cells (CIFAR-10 test accuracy of seeds 0-4: 49.0, 89.9, 74.8, 81.2, 87.9 %; at
full size: 92.6, 87.3, 93.6, 92.0, 93.4 %). Seed 1's weak cell reads two nodes through ``none``;
with ``exclude_ops=[none]`` it selects a 93.4 % cell instead.

Excluded ops: each supernet names the ops NASI leaves out by default (``SuperNet.excluded``). DARTS
never has ``none`` (B.2: DARTS never selects it). On NB201 ``none`` is excluded too, a departure:
the paper has no NB201 experiment, and ``none``'s output is 0 whatever its input, so its
straight-through gradient d R / d w_none = <dR/d(edge), none(x)> = 0 while the other ops' gradients
are signed; on any edge where the other ops lower R on average, ``none`` wins the argmax of
eq. 18's accumulated gradient without ever raising R (4 of 5 full-size seeds selected it; seed 1
cut node 1 off the input). ``exclude_ops: []`` restores it.

Under a hardware constraint (the run's space is a :class:`~searchkit.spaces.constrained.FeasibleSpace`
over a cost table; not in the paper, which has no hardware term): the budget enters twice.

* Penalty: an additive per-(edge, op) model of the cost (:class:`~searchkit.hardware.AdditiveCost`,
  least squares over the whole table; exact on HW-NAS-Bench's FPGA and Eyeriss columns) gives the
  sampled architecture's predicted cost c(A_t) = bias + sum_{e,k} W[e, k] w_t[e, k] from the same
  straight-through one-hot weights w_t (eq. 42) the supernet uses, so it is differentiable in
  alpha like R. Each step maximises R(A_t) - ``hardware_mu`` |R(A_t)| max(0, c(A_t) / L - 1)
  (L: the limit; |R| held constant): a sample x% over the budget loses x% x hardware_mu of its
  objective, the hinge of eq. 13 applied to cost, dimensionless for every metric.
* Decoding: instead of each row's argmax (line 8), the feasible architecture most likely under
  the rows' distributions softmax(Delta alpha) (:meth:`FeasibleSpace.most_likely`: exact
  argmax of sum_e log p_e over the feasible set; equal to line 8's architecture whenever that
  one is feasible). Nearest-feasible projection in Hamming distance is NOT used: it can land on
  dead cells (every edge into the output ``none``).

``hardware_mu=0`` keeps the decoding alone. A measured cost (``device: cpu``, no table) has no
enumerable feasible set, and NASI refuses such a constraint.

Time limit (``seconds``; not in the paper): the eq. 40 estimate stops after NU_SHARE of it (at
least one sample), and the steps stop before one that would pass it (at least one step: the
next step is expected to take as long as the longest so far, and the final evaluation of R half
of that: FINAL_SHARE); eq. 18 then averages over the T' steps taken (``steps_taken``). Since
alpha_0 = 0, the architecture is line 8's argmax of the sum of the T' normalised gradients. Under
a run's wall budget, ``seconds`` defaults to the time it leaves (:meth:`NASI.budget_options`), so
the one-shot search holds the budget like every other strategy.

Search cost is the measured wall time of the whole call (the engine times it): on NB201 at full
size about 20 s per step on one CPU core (T=50, b=64, plus the eq. 40 estimate), i.e. ~15-20
minutes; on DARTS at C=8, 5 cells, b=64 about 10-20 s per step.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from searchkit.data import scoring_batch
from searchkit.data.base import Batch
from searchkit.errors import SearchkitError
from searchkit.hardware.additive import AdditiveCost
from searchkit.hardware.cost_models import EnumerableCost
from searchkit.runtime import build_network
from searchkit.spaces.base import SearchSpace, feature_matrix
from searchkit.strategies.base import (Answer, Needs, OneShot, Query, SearchContext, Strategy, TimeBudget, Workload,
                                       strategy)
from searchkit.spaces.constrained import FeasibleSpace
from searchkit.spaces.supernet import SuperNet

NU_MODES = ("fixed", "adaptive")
#: Under a time limit, the share of it the eq. 40 estimate of nu_0 may use.
NU_SHARE = 0.2
#: Under a time limit, a step is taken when this many of the longest step so far still fit: the
#: step itself, and half of one for the final evaluation of R (one single-path network, not the
#: supernet's every op).
FINAL_SHARE = 1.5
#: the log-probability an excluded op gets in constrained decoding: far below any valid op's
EXCLUDED_LOG_PROB = -1e4


def gumbel_straight_through(logits: torch.Tensor, generator: torch.Generator, tau: float = 1.0,
                            mask: torch.Tensor | None = None) -> torch.Tensor:
    """One straight-through Gumbel-softmax sample per row of logits: (E, K) -> (E, K) (eq. 42):
    the value is one_hot(argmax_k (logits + g) / tau), the gradient that of softmax((logits + g) / tau).
    ``mask``: (E, K) bool, the valid options of each row; the others get probability 0 (and no gradient)."""
    u = torch.rand(logits.shape, generator=generator, dtype=torch.float64).clamp_(1e-12, 1 - 1e-12)
    gumbel = (-torch.log(-torch.log(u))).to(logits)
    if mask is not None:
        logits = logits.masked_fill(~mask, float("-inf"))
    soft = torch.softmax((logits + gumbel) / tau, dim=-1)
    hard = F.one_hot(soft.argmax(-1), logits.shape[-1]).to(soft)
    return hard - soft.detach() + soft


def adaptive_nu(nu0: float, traces: list[float]) -> float:
    """Eq. 41: nu_t = (nu_0 + sum_{tau < t} ||Theta~(A_tau)||_tr) / t, ``traces`` the t - 1 earlier ones."""
    return (nu0 + sum(traces)) / (len(traces) + 1)


@dataclass
class _Objective:
    """The objective of the architecture the supernet's ``weights`` select: (net, batch) -> a
    differentiable scalar; ``penalised``: it is the trace, and R applies eq. 13's constraint."""

    fn: Callable[[nn.Module, Batch], torch.Tensor]
    penalised: bool


@dataclass
class _Budget:
    """A hardware constraint as NASI uses it: the additive ``model`` of the cost (rows and columns
    in the supernet's order), the ``limit`` and the penalty weight ``mu``."""

    model: AdditiveCost
    limit: float
    mu: float

    def penalised(self, value: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``value`` - mu |value| max(0, c(weights) / limit - 1), c the additive cost of ``weights`` (R, K)."""
        over = torch.relu(self.model.expected(weights) / self.limit - 1.0)
        return value - self.mu * value.detach().abs() * over


def hardware_budget(space: SearchSpace, ops: tuple[str, ...], mu: float) -> _Budget | None:
    """The budget of a constrained space (None for an unconstrained one): an additive cost model
    fitted to every cell of its cost table, edges x ``ops``: the space's features (NB201: each
    edge's op index, in the supernet's ``ops`` order)."""
    if not isinstance(space, FeasibleSpace):
        return None
    if space.members is None or not isinstance(space.cost, EnumerableCost):
        raise SearchkitError(f"nasi under a constraint needs a cost table for exact constrained decoding; "
                             f"{space.cost.device} has none (choose a HW-NAS-Bench device, or another strategy)")
    texts, costs = space.cost.all_costs()
    codes = feature_matrix(space, [space.decode(t) for t in texts])
    return _Budget(AdditiveCost.fit(codes, costs, len(ops)), space.constraint.limit, mu)


@strategy("nasi")
class NASI(Strategy):
    """NASI over a space's supernet (see the module docstring for the algorithm and every option).

    Options: ``steps`` (T), ``batch_size`` (b; None: the run's scoring batch size), ``mu``
    (penalty coefficient), ``nu`` ("fixed" | "adaptive"), ``nu0`` (None: from eq. 40),
    ``nu_samples`` (N of eq. 40), ``tau`` (Gumbel temperature); supernet size, None: the run's
    ``space.build`` (else the space's defaults): ``C`` (both spaces), ``N`` (NB201 cells per
    stage), ``layers`` (DARTS cells). ``exclude_ops``: ops removed from every op choice (None: the
    supernet's ``excluded``, ``none`` on NB201; see the module docstring; ``[]``: none removed).
    ``hardware_mu``: the weight of the hardware-budget penalty under a constraint (module docstring).
    ``seconds``: a time limit on the whole one-shot search (None: all ``steps``; module docstring).
    """

    @classmethod
    def needs(cls, options: Mapping[str, Any]) -> Needs:
        return Needs(training_free=True, gradient=True)

    def __init__(
        self, space: SearchSpace, rng: np.random.Generator, steps: int = 50, batch_size: int | None = None,
        mu: float = 1.0, nu: str = "fixed", nu0: float | None = None, nu_samples: int = 50, tau: float = 1.0,
        C: int | None = None, N: int | None = None, layers: int | None = None, exclude_ops: list[str] | None = None,
        hardware_mu: float = 1.0, seconds: float | None = None,
    ) -> None:
        supernet = space.supernet()
        if nu not in NU_MODES:
            raise SearchkitError(f"nasi option nu must be one of {', '.join(NU_MODES)}, got {nu!r}")
        size = {key: value for key, value in (("C", C), ("N", N), ("layers", layers)) if value is not None}
        for key in size:
            if key not in supernet.size_defaults:
                raise SearchkitError(f"nasi option {key} does not apply to the {space.name} supernet; its size options "
                                     f"are {', '.join(supernet.size_defaults)}")
        if steps < 1 or nu_samples < 1 or mu < 0 or tau <= 0 or hardware_mu < 0 or any(v < 1 for v in size.values()) \
                or (seconds is not None and seconds <= 0):
            raise SearchkitError("nasi needs steps >= 1, nu_samples >= 1, mu >= 0, hardware_mu >= 0, tau > 0, "
                                 "supernet sizes >= 1 and seconds > 0 (or null)")
        super().__init__(space, rng)
        self.steps, self.batch_size, self.mu, self.nu_mode, self.nu0 = steps, batch_size, mu, nu, nu0
        self.nu_samples, self.tau, self.size, self.seconds = nu_samples, tau, size, seconds
        self.steps_taken = 0
        self.exclude_ops = list(supernet.excluded if exclude_ops is None else exclude_ops)
        unknown = [op for op in self.exclude_ops if op not in supernet.ops]
        if unknown or len(set(supernet.ops) - set(self.exclude_ops)) < supernet.min_ops:
            raise SearchkitError(f"nasi option exclude_ops={self.exclude_ops} must name ops of the {space.name} "
                                 f"supernet ({', '.join(supernet.ops)}) and leave at least {supernet.min_ops}")
        self.budget = hardware_budget(space, supernet.ops, hardware_mu)
        self.nu_used: float | None = None
        self.done = False

    def workload(self) -> Workload:
        return Workload(scores=0, validations=0, oneshot=True)

    def budget_options(self, budget: TimeBudget, given: frozenset[str]) -> dict[str, Any]:
        """The one-shot search's time limit: the wall budget's time left (module docstring)."""
        return {} if "seconds" in given or budget.seconds <= 0 else {"seconds": budget.seconds}

    def ask(self) -> list[Query]:
        return [] if self.done else [OneShot(self.search)]

    def tell(self, query: Query, answer: Answer) -> None:
        self.done = True

    def _objective(self, context: SearchContext) -> _Objective:
        """The run's metric, differentiable; eq. 13's penalty for an unbounded one (the trace)."""
        return _Objective(context.metric.differentiable, type(context.metric).unbounded)

    def search(self, context: SearchContext) -> tuple[Any, float]:
        """Algorithm 1; returns the architecture alpha* derives and R of it on the run's scoring batch."""
        start = time.perf_counter()
        objective = self._objective(context)
        generator = torch.Generator().manual_seed(int(self.rng.integers(2**63)))
        seed = int(self.rng.integers(2**63))
        net = self.supernet(context, seed)
        size = self.batch_size or context.batch.x.shape[0]

        def minibatch() -> Batch:
            return scoring_batch(context.splits, size, int(self.rng.integers(2**31))).to(context.device)

        alpha = torch.zeros(net.mask.shape, device=context.device, requires_grad=True)
        nu = self.nu0
        if objective.penalised and nu is None:
            nu = self.fixed_nu(net, alpha, minibatch, generator, objective,
                               None if self.seconds is None else start + NU_SHARE * self.seconds)
            if self.nu_mode == "adaptive":
                nu *= 5.0
        traces: list[float] = []
        total = torch.zeros_like(alpha)
        largest, longest, self.steps_taken = 0.0, 0.0, 0
        for _ in range(self.steps):
            if self.steps_taken and self.seconds is not None \
                    and time.perf_counter() - start + FINAL_SHARE * longest > self.seconds:
                break
            step_start = time.perf_counter()
            net.weights = gumbel_straight_through(alpha, generator, self.tau, net.mask)
            value = objective.fn(net, minibatch())
            if objective.penalised:
                nu_t = adaptive_nu(nu, traces) if self.nu_mode == "adaptive" else nu
                traces.append(float(value.detach()))
                value = value - self.mu * torch.relu(value - nu_t)
            if self.budget is not None:
                value = self.budget.penalised(value, net.weights)
            grad = torch.autograd.grad(value, alpha)[0] if value.requires_grad else torch.zeros_like(alpha)
            if not torch.isfinite(grad).all():  # a degenerate sample carries no signal
                grad = torch.zeros_like(alpha)
            largest = max(largest, float(grad.norm()))
            if largest > 0:
                total += grad / largest
            self.steps_taken += 1
            longest = max(longest, time.perf_counter() - step_start)
        if objective.penalised:
            self.nu_used = adaptive_nu(nu, traces) if self.nu_mode == "adaptive" else nu
        delta = total / self.steps_taken  # eq. 18 with rho = 1
        arch = self.derive(net, delta.detach().cpu())
        value = objective.fn(build_network(self.space, arch, context.splits, seed, self.supernet_size(context))
                             .to(context.device), context.batch)
        if objective.penalised:
            value = value - self.mu * torch.relu(value - self.nu_used)
        return arch, float(value.detach())

    def derive(self, net: SuperNet, delta: torch.Tensor) -> Any:
        """Line 8: the supernet's architecture of alpha* (each row's argmax); under a constraint the
        feasible architecture most likely under softmax(alpha*) over each row's valid ops. An
        excluded op costs EXCLUDED_LOG_PROB, so it is used only where every feasible cell has one
        (a budget below the cheapest cell without ``none``)."""
        if self.budget is None:
            return net.derive(delta)
        mask = net.mask.cpu()
        log_probs = torch.log_softmax(delta.masked_fill(~mask, float("-inf")), dim=-1).masked_fill(~mask, EXCLUDED_LOG_PROB)
        return self.space.most_likely(log_probs.numpy(), type(net).ops)

    def supernet_size(self, context: SearchContext) -> dict[str, int]:
        """The supernet's size options: the strategy's when given, else the run's network
        (``space.build``), else the space's defaults."""
        size = dict(self.space.supernet().size_defaults)
        size.update({k: v for k, v in context.build.items() if k in size})
        size.update(self.size)
        return size

    def supernet(self, context: SearchContext, seed: int) -> SuperNet:
        """The supernet at :meth:`supernet_size`, initialised from ``seed`` (theta_0 of Algorithm 1)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = self.space.supernet()(context.splits.num_classes, in_channels=context.splits.input_shape[0],
                                        **self.supernet_size(context))
        net.exclude_ops(self.exclude_ops)
        return net.to(context.device)

    def fixed_nu(self, net: SuperNet, alpha: torch.Tensor, minibatch: Callable[[], Batch],
                 generator: torch.Generator, objective: _Objective, deadline: float | None = None) -> float:
        """Eq. 40: the mean objective (the trace norm) of ``nu_samples`` architectures sampled from
        alpha_0, each on its own mini-batch; sampling stops at ``deadline`` (a ``time.perf_counter``
        time) after at least one sample."""
        values: list[float] = []
        for _ in range(self.nu_samples):
            if values and deadline is not None and time.perf_counter() > deadline:
                break
            net.weights = gumbel_straight_through(alpha.detach(), generator, self.tau, net.mask)
            values.append(float(objective.fn(net, minibatch()).detach()))
        return float(np.mean(values))
