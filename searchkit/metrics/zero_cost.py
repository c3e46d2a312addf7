"""Gradient-based zero-cost proxies (Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS",
ICLR 2021): ``grad_norm``, ``snip``, ``grasp``, ``fisher``, ``synflow`` and ``jacob_cov``.

Protocol shared by all of them, chosen to match the two references this package is checked
against (the original zero-cost code, ``foresight/pruners``, and NAS-Bench-Suite-Zero, which runs
NASLib's port of it); see ``results/reference-agreement/README.md`` for the measured agreement:

* BatchNorm uses the **batch statistics** (train mode), as both references score networks in
  ``train()`` mode; ``synflow`` removes BN altogether (both references' ``bn=False`` copy).
* "Weights" are the ``weight`` tensors of every convolution and linear layer (biases, BN affine
  parameters excluded), the references' ``get_layer_metric_array``; a per-weight score is summed
  over all of them.
* The loss is the mean cross-entropy of the logits on the whole scoring batch, one backward pass.
* ``grad_norm``, ``snip`` and ``fisher`` scored on the same network and batch share that one forward
  and backward (:class:`LossGradients`); each scores exactly what it scores alone.

Nothing here modifies the network it is given: forwards go through
:func:`torch.func.functional_call` with detached copies of the parameters and cloned buffers
(so BN running statistics are untouched and no ``.grad`` is written), ``synflow`` works on a
``copy.deepcopy``, hooks are removed and train/eval flags restored on exit. No metric draws
random numbers: the same network and batch give the same score.

A network from which no gradient reaches any weight (no path from the input to the loss, e.g.
NAS-Bench-201 cells of ``none`` ops) scores exactly 0; that, and any non-finite value, is
degenerate and becomes the metric's ``worst`` with a
:class:`~searchkit.metrics.base.DegenerateNetworkWarning`. (``fisher`` keeps a tiny positive
value there, from the classifier's bias; the references' minimum is that same value.)
"""
from __future__ import annotations

import copy
import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from searchkit.data.base import Batch
from searchkit.metrics.base import Metric, SharedWork, metric
from searchkit.metrics.ntk import train_mode

#: Layers whose ``weight`` the per-weight proxies sum over (the references' conv2d + linear).
WEIGHTED_LAYERS = (nn.modules.conv._ConvNd, nn.Linear)

#: Worst score of the proxies that are >= 0 (grad_norm, snip, fisher, synflow): no signal at all.
NONNEGATIVE_WORST = 0.0

#: Worst score of the unbounded proxies (grasp, jacob_cov): NAS-Bench-Suite-Zero's failure
#: sentinel. It lies below every value either reference has on NB201 (grasp >= -6.4e4,
#: jacob_cov >= -1.8e5) and below every finite jacob_cov of a batch of m <= 1000 samples
#: (jacob_cov >= -m (1/k - ln(1/k)) ~ -1e5 m for k = 1e-5, since each eigenvalue is in [0, m]).
UNBOUNDED_WORST = -1e8


def nonzero(value: float) -> float:
    """``value``, or NaN (degenerate: the metric's worst) for an exact 0: no gradient reached any weight."""
    return math.nan if value == 0.0 else value


def weighted_modules(net: nn.Module) -> dict[str, nn.Module]:
    """Qualified name -> every conv/linear layer of ``net``, in ``named_modules`` order."""
    return {name: m for name, m in net.named_modules() if isinstance(m, WEIGHTED_LAYERS)}


def weight_names(net: nn.Module) -> list[str]:
    """Parameter names of the conv/linear ``weight`` tensors (keys of ``named_parameters``)."""
    return [f"{name}.weight" if name else "weight" for name in weighted_modules(net)]


@contextmanager
def forward_hooks(modules: Iterable[nn.Module], hook: Callable) -> Iterator[None]:
    """``hook(module, inputs, output)`` after each module's forward, removed on exit."""
    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def detached_params(net: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter as a fresh leaf that requires grad (the network's own are not touched)."""
    return {k: v.detach().requires_grad_(True) for k, v in net.named_parameters()}


def train_forward(net: nn.Module, x: torch.Tensor, params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """Logits of ``net`` on x: (m, ...) with ``params`` (default: its own, detached) and BN on
    batch statistics (train mode).

    The buffers are cloned, so the running statistics of ``net`` absorb nothing; its train/eval
    flags are restored afterwards.
    """
    if params is None:
        params = {k: v.detach() for k, v in net.named_parameters()}
    buffers = {k: v.clone() for k, v in net.named_buffers()}
    with train_mode(net, True):
        return functional_call(net, (params, buffers), (x,))


def train_loss(net: nn.Module, batch: Batch, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """L: the mean cross-entropy of :func:`train_forward` with ``params`` (leaves to differentiate against)."""
    return F.cross_entropy(train_forward(net, batch.x, params), batch.y)


@dataclass(frozen=True)
class LossGradients:
    """What one forward and one backward of the mean loss give ``grad_norm``, ``snip``, ``fisher`` and
    ``grasp`` (they share it on one network and batch: :func:`~searchkit.metrics.base.score_metrics`).

    ``weights``, ``grads``: W_l and dL/dW_l per conv/linear weight name (detached; zero where no
    gradient reaches W_l). ``channel_saliency``: per conv/linear output a (m, K, ...) in forward
    order that the loss depends on, (sum_k Delta_k, the layer's fan-in C_in k_h k_w): Fisher's
    Delta_k = 1/(2m) sum_n (sum_{h,w} a_nkhw dL/da_nkhw)^2, reduced at once so no activation is kept.
    ``graph``: when the backward kept its graph (``create_graph``), the weight leaves and the gradients
    that depend on them, for :func:`theta_hessian_gradient`; else None.
    """

    weights: dict[str, torch.Tensor]
    grads: dict[str, torch.Tensor]
    channel_saliency: list[tuple[float, int]]
    graph: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None


def loss_gradients(net: nn.Module, batch: Batch, create_graph: bool = False) -> LossGradients:
    """:class:`LossGradients` of ``net`` on ``batch``: one train-mode forward (hooks on every conv/linear
    output), one backward to the weights and those outputs together (keeping its graph with
    ``create_graph``, which the values do not depend on: bit for bit the same)."""
    params = detached_params(net)
    names = weight_names(net)
    outputs: list[tuple[nn.Module, torch.Tensor]] = []
    with forward_hooks(weighted_modules(net).values(), lambda mod, inp, out: outputs.append((mod, out))):
        loss = train_loss(net, batch, params)
    leaves = [params[k] for k in names]
    found = torch.autograd.grad(loss, leaves + [a for _, a in outputs], allow_unused=True, create_graph=create_graph)
    weights = {k: params[k].detach() for k in names}
    grads = {k: torch.zeros_like(weights[k]) if g is None else g.detach() for k, g in zip(names, found)}
    saliency = []
    for (module, act), grad in zip(outputs, found[len(names):]):
        if grad is not None:
            g_nk = act.detach() * grad.detach()
            g_nk = g_nk.flatten(2).sum(2) if g_nk.dim() > 2 else g_nk
            saliency.append((float((0.5 * g_nk.pow(2).mean(0)).sum()), module.weight[0].numel()))
    graph = (leaves, [g for g in found[:len(names)] if g is not None and g.requires_grad]) if create_graph else None
    return LossGradients(weights, grads, saliency, graph)


def theta_hessian_gradient(found: LossGradients) -> float:
    """theta^T H g over the conv/linear weights, H g one Hessian-vector product: the gradient of
    g.detach() . g (g = dL/dW with its graph: ``found`` taken with ``create_graph``) by one more backward;
    0 when no gradient depends on the weights."""
    leaves, grads = found.graph
    if not grads:
        return 0.0
    hg = torch.autograd.grad(sum((g.detach() * g).sum() for g in grads), leaves, allow_unused=True)
    return float(sum((w.detach() * h).sum() for w, h in zip(leaves, hg) if h is not None))


class LossGradientMetric(Metric):
    """A proxy read off :class:`LossGradients`; those scored on one network and batch share one pass.

    ``keeps_graph``: whether :meth:`from_gradients` differentiates the gradients again; the shared
    pass keeps its graph when any metric scored beside it does.
    """

    keeps_graph = False

    @property
    def shared_key(self) -> str:
        return "loss_gradients"

    def from_gradients(self, found: LossGradients) -> float:
        raise NotImplementedError

    def compute(self, net: nn.Module, batch: Batch) -> float:
        return self.from_gradients(loss_gradients(net, batch, create_graph=self.keeps_graph))

    def compute_shared(self, net: nn.Module, batch: Batch, shared: SharedWork | None) -> float:
        if shared is None:
            return self.compute(net, batch)
        graph = self.keeps_graph or any(getattr(m, "keeps_graph", False) for m in shared.metrics)
        return self.from_gradients(shared.get((self.shared_key, graph),
                                              lambda: loss_gradients(net, batch, create_graph=graph)))


@metric("grad_norm")
class GradNorm(LossGradientMetric):
    """Sum over layers of the loss gradient's norm, sum_l ||dL/dW_l||_2 (Abdelfattah et al. 2021,
    sec. 3). HNAS seed 003 eq. 2 takes one global norm ||(1/m) sum_i grad l_i||_2 instead; we
    follow the zero-cost code that both references ran: per-layer Frobenius norms of the
    conv/linear weight gradients, summed (same mean loss, so the same gradient).

    L: mean cross-entropy on the batch, BN on batch statistics. Range [0, inf), higher is better;
    degenerate networks score :data:`NONNEGATIVE_WORST`.
    """

    worst = NONNEGATIVE_WORST
    quantity = "gradient norm Σ_l ‖∂L/∂W_l‖"

    def from_gradients(self, found: LossGradients) -> float:
        return nonzero(float(sum(g.norm() for g in found.grads.values())))


@metric("snip")
class Snip(LossGradientMetric):
    """SNIP connection sensitivity summed over weights, sum_l sum |W_l * dL/dW_l| (Lee et al. 2019,
    sec. 4.1, without its normalisation; Abdelfattah et al. 2021 sec. 3). HNAS seed 003 eq. 3
    takes |theta^T g| / m instead; we follow the zero-cost code (elementwise absolute values).

    L: mean cross-entropy, BN on batch statistics. Range [0, inf), higher is better; degenerate
    networks score :data:`NONNEGATIVE_WORST`.
    """

    worst = NONNEGATIVE_WORST
    quantity = "SNIP saliency Σ |W ⊙ ∂L/∂W|"

    def from_gradients(self, found: LossGradients) -> float:
        return nonzero(float(sum((w * found.grads[k]).abs().sum() for k, w in found.weights.items())))


@metric("grasp")
class Grasp(LossGradientMetric):
    """GraSP, -sum_l sum W_l * (H g)_l with g = dL/dW and H the Hessian of L over the conv/linear
    weights (Wang et al. 2020, sec. 4, S(-theta) = -theta * H g; Abdelfattah et al. 2021 sec. 3).

    Sign: Wang et al. prune the weights with the largest ``theta * Hg``; the zero-cost code (and so
    NAS-Bench-Suite-Zero) negates it because accuracy correlates positively with ``-theta^T H g``.
    We return the same ``-theta^T H g``, so higher is better and ranks agree with both references
    (HNAS seed 003 eq. 3 uses |theta^T H g| / m, a different ranking). H g is one Hessian-vector
    product (:func:`theta_hessian_gradient`: one more backward through the shared pass's graph). L: mean
    cross-entropy, BN on batch statistics. Unbounded; degenerate networks score
    :data:`UNBOUNDED_WORST`.
    """

    worst = UNBOUNDED_WORST
    quantity = "GraSP score −Σ W ⊙ Hg"
    keeps_graph = True

    def from_gradients(self, found: LossGradients) -> float:
        return nonzero(-theta_hessian_gradient(found))


@metric("fisher")
class Fisher(LossGradientMetric):
    """Fisher pruning saliency summed over channels (Theis et al. 2018, sec. 2.1; Turner et al.
    2020), as the zero-cost code computes it on the output a of every conv/linear layer:

        Delta_k = 1/(2m) sum_n ( sum_{h,w} a_nkhw * dL/da_nkhw )^2      (a: (m, K, H, W) or (m, K))

    and the score is sum over layers and channels of Delta_k. ``weight_by_fan_in`` (default True,
    as both references) counts each channel once per weight feeding it (C_in k_h k_w times): the
    references broadcast channel scores to weight shapes before summing them, so wide-input layers
    weigh more. L: mean cross-entropy, BN on batch statistics. Range [0, inf), higher is better;
    degenerate networks score :data:`NONNEGATIVE_WORST`.
    """

    weight_by_fan_in: bool = True
    worst = NONNEGATIVE_WORST
    quantity = "Fisher saliency Σ Δ"

    def from_gradients(self, found: LossGradients) -> float:
        return nonzero(sum(delta * (fan_in if self.weight_by_fan_in else 1)
                           for delta, fan_in in found.channel_saliency))


def without_batchnorm(net: nn.Module) -> nn.Module:
    """A deep copy of ``net`` with every BatchNorm layer replaced by the identity."""
    clone = copy.deepcopy(net)
    for parent in list(clone.modules()):
        for child_name, child in parent.named_children():
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(parent, child_name, nn.Identity())
    return clone


@metric("synflow")
class Synflow(Metric):
    """Synaptic flow (Tanaka et al. 2020, sec. 6 and Algorithm 1): with every parameter replaced by
    |theta| and BN removed, R = 1^T f(1) for an all-ones input of one sample, and the score is
    sum over conv/linear weights of theta * dR/dtheta (all terms >= 0).

    As in the zero-cost code's ``synflow`` (``bn=False``): a deep copy in float64, BN layers
    replaced by the identity, biases |.|'d too, input (1, C, H, W) of ones; the copy is put in
    eval mode, which without BN only matters for dropout (none in NB201). The score is the
    natural value; NAS-Bench-Suite-Zero stores its log (Spearman is unaffected). NB201 values
    reach ~1e50; a network that overflows float64 (or gets no signal) is degenerate and scores
    :data:`NONNEGATIVE_WORST`. Data-independent: only the batch's input shape is used.
    """

    worst = NONNEGATIVE_WORST
    quantity = "synaptic flow Σ θ ⊙ ∂R/∂θ"

    def compute(self, net: nn.Module, batch: Batch) -> float:
        linear = without_batchnorm(net).double().eval()  # eval only matters for dropout here
        params = {k: v.detach().abs().requires_grad_(True) for k, v in linear.named_parameters()}
        names = weight_names(linear)
        if not names:
            return nonzero(0.0)
        ones = torch.ones((1, *batch.x.shape[1:]), dtype=torch.float64, device=params[names[0]].device)
        out = functional_call(linear, params, (ones,)).sum()
        grads = torch.autograd.grad(out, [params[k] for k in names], allow_unused=True)
        total = sum(float((params[k].detach() * g).sum()) for k, g in zip(names, grads) if g is not None)
        return nonzero(total)


@metric("jacob_cov")
class JacobCov(Metric):
    """Jacobian covariance (Mellor et al., "Neural Architecture Search without Training",
    arXiv:2006.04647 v1, sec. 3; the zero-cost code's ``jacob_cov``):

        J = d(sum_{n,c} f_c(x_n)) / dX: (m, C H W),   Sigma = corrcoef(J): (m, m),
        score = -sum_i [ log(lambda_i + k) + 1 / (lambda_i + k) ],   k = 1e-5,

    lambda_i the eigenvalues of Sigma. BN on batch statistics, as both references: the samples
    are then coupled, and row n of J is the gradient of the *summed* batch output w.r.t. x_n
    (including the cross-sample terms through the BN statistics), which is exactly what one
    backward of the summed output gives -- the references' computation, not a per-sample
    Jacobian. Higher is better (max -m, at Sigma = I). A zero or constant row (NaN correlation)
    is degenerate and scores :data:`UNBOUNDED_WORST`.
    """

    k: float = 1e-5
    worst = UNBOUNDED_WORST
    min_batch = 2
    quantity = "Jacobian covariance score −Σ [log(λ+k) + 1/(λ+k)]"
    magnitude = "Σ [log(λ+k) + 1/(λ+k)] (λ: Jacobian correlation eigenvalues)"

    def compute(self, net: nn.Module, batch: Batch) -> float:
        x = batch.x.detach().clone().requires_grad_(True)
        out = train_forward(net, x).sum()
        if not out.requires_grad:  # the output does not depend on the input at all
            return math.nan
        (jac,) = torch.autograd.grad(out, x)
        corr = torch.corrcoef(jac.reshape(x.shape[0], -1).double())
        if not torch.isfinite(corr).all():
            return math.nan
        eig = torch.linalg.eigvalsh(corr) + self.k
        return float(-(eig.log() + 1.0 / eig).sum())
