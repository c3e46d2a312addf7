"""Metrics of the squared norm of the mean loss gradient, ||d L / d theta||^2: NASI's approximation of
the NTK trace (differentiable, NASI's objective) and KNAS's mean gradient Gram. Not NTK metrics: one
backward pass of the mean loss, no Gram matrix."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from searchkit.data.base import Batch
from searchkit.metrics.base import Metric, metric
from searchkit.metrics.ntk import batch_statistics, train_mode


def loss_gradient_sq_norm(net: nn.Module, batch: Batch, frozen_stats: bool,
                          create_graph: bool = False) -> torch.Tensor:
    """||d L / d theta||_2^2 over all parameters (a float64 scalar), L = mean cross-entropy on the batch.

    ``frozen_stats``: BN normalises with the batch statistics held constant (samples independent,
    so the batch gradient is the mean of per-sample gradients); otherwise train-mode BN.
    ``create_graph``: keep the graph, so the value is differentiable in whatever the forward
    depends on besides the parameters (a supernet's architecture weights: NASI's objective).
    """
    params = {k: v.detach().requires_grad_(True) for k, v in net.named_parameters()}
    if frozen_stats:
        buffers = batch_statistics(net, batch.x)
        with train_mode(net, False):
            logits = functional_call(net, (params, buffers), (batch.x,))
    else:
        buffers = {k: v.clone() for k, v in net.named_buffers()}
        with train_mode(net, True):
            logits = functional_call(net, (params, buffers), (batch.x,))
    grads = torch.autograd.grad(F.cross_entropy(logits, batch.y), list(params.values()), allow_unused=True,
                                create_graph=create_graph)
    return sum((g.double() ** 2).sum() for g in grads if g is not None)


@metric("ntk_trace_approx")
class NTKTraceApprox(Metric):
    """NASI's approximation of the NTK trace, ||b^-1 sum_{x in X_j} grad_theta L_x||_2^2 (seed 002,
    eq. 11-12; the constant m / gamma of eq. 12 is dropped, it does not change rankings). One
    backward of the mean loss with train-mode BN, as NASI computes it on a mini-batch.
    Differentiable (create_graph): NASI's objective."""

    worst = 0.0
    quantity = "NASI NTK-trace estimate ‖∇θ L‖²"
    unbounded = True

    def compute(self, net: nn.Module, batch: Batch) -> float:
        return float(loss_gradient_sq_norm(net, batch, frozen_stats=False))

    def differentiable(self, net: nn.Module, batch: Batch) -> torch.Tensor:
        return loss_gradient_sq_norm(net, batch, frozen_stats=False, create_graph=True)


@metric("knas")
class KNAS(Metric):
    """KNAS's mean of the Gram matrix of per-sample loss gradients (Xu et al. 2021, "MGM"):
    (1/m^2) sum_ij <g_i, g_j> = ||(1/m) sum_i g_i||^2, so it is computed exactly by one backward
    of the mean loss with the batch statistics frozen (per-sample gradients are independent).
    It equals ``ntk_trace_approx`` except for the gradient through the BN statistics."""

    worst = 0.0
    quantity = "KNAS mean gradient Gram ‖∇θ L‖² (frozen BN statistics)"

    def compute(self, net: nn.Module, batch: Batch) -> float:
        return float(loss_gradient_sq_norm(net, batch, frozen_stats=True))
