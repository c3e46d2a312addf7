"""The empirical NTK from one batched forward and backward, without the (m x p) Jacobian.

With BatchNorm statistics frozen (``bn="batchstats"`` or ``"eval"``, :mod:`searchkit.metrics.ntk`)
every sample passes through the network on its own, so one backward of sum_i w_i . f(x_i) gives,
at each layer, every sample's own output gradient delta_i (m, ...). A layer's per-sample
parameter gradient is a contraction of its input a_i with delta_i, and its share of
Theta = J J^T (seed 000 eq. 4) is accumulated (float64) the moment its delta arrives, then
freed, so memory stays at about one forward + backward and J is never formed:

  * ``nn.Conv2d`` (any stride, padding, dilation, groups): the per-sample weight gradient
    G_i[o, k] = sum_t delta_i[o, t] U_i[k, t] (U_i: a_i's unfolded patches) is the weight gradient
    of a convolution whose groups are the samples (``convolution_backward`` with m * groups groups),
    then Theta += G G^T; bias: (sum_t delta_i)(sum_t delta_j)^T.
  * ``nn.Linear`` on (m, ..., d_in): G_i = sum_t delta_it a_it^T, or, when cheaper (few positions
    t, e.g. the classifier), the Gram trick Theta_ij = sum_{t,s} (delta_it . delta_js)(a_it . a_js)
    without per-sample gradients. ``contraction`` picks per layer by a flop estimate ("auto") or
    forces one ("explicit", "gram"); both give the same Theta (tests check it). Convolutions
    offer the Gram trick too (over unfolded patches), e.g. for 1 x 1 feature maps.
  * BatchNorm (frozen statistics mu, sigma): y = x * s + t with s = w / sigma, t = b - mu s, run
    here as that affine map so autograd does not keep x. Per-sample gradients:
    bias sum_t delta_i, weight sum_t delta_i xhat_i. When x is a convolution's output used by
    nothing else (ReLU-Conv-BN), x is not kept either: with H_i the per-sample weight gradient
    of the convolution taken with the BN's delta, sum_t delta_i x_i = sum_k W[:, k] H_i[:, k]
    (+ conv bias), and the convolution's own per-sample gradient is s H_i, so one contraction
    serves both layers and only the convolution's input is held.

``output`` "sum" and "label" take one backward (weights 1 or the true class's one-hot per
sample), "trace" one per class. With ``bn="batchstats"`` the statistics are taken inside the
same forward (the evaluation-mode forward; a network that also behaves differently in training
mode beyond BN, e.g. dropout, gets them without dropout, where the reference's separate
training-mode pass would drop at random).

What is supported is checked, never assumed: every module holding trainable parameters must be
exactly ``nn.Conv2d`` (zero padding mode, numeric padding), ``nn.Linear`` or a BatchNorm with
running statistics; each is called once per forward, on an input that depends on x; and the
autograd graph must use each trainable parameter exactly once, inside its own module (no tying,
no parameter read outside its module, a fused convolution's output feeds only its BN). Anything
else raises :class:`Unsupported` and :func:`searchkit.metrics.ntk.empirical_ntk` falls back to the
reference ``vmap(jacrev)`` path. Assumed, as by the reference path (which runs each sample alone):
with BN frozen, no other module mixes samples.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from searchkit.metrics.ntk import batch_statistics, train_mode

Contraction = Literal["auto", "explicit", "gram"]
CONTRACTIONS: tuple[str, ...] = ("auto", "explicit", "gram")
FAST_BN_MODES: tuple[str, ...] = ("batchstats", "eval")
FAST_OUTPUT_MODES: tuple[str, ...] = ("sum", "trace", "label")

_BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
#: Largest Gram-trick temporary, in elements of each (m T) x (m T) matrix (times groups).
GRAM_TRICK_MAX_ELEMENTS = 1 << 24


class Unsupported(Exception):
    """The fast path cannot compute this network's NTK exactly; the message says why."""


def unsupported_reason(net: nn.Module) -> str | None:
    """Why the fast path cannot handle ``net`` by its module structure alone (None: it can, subject
    to the checks made during the forward)."""
    owner: dict[int, str] = {}
    for name, module in net.named_modules():
        label = f"module {name or '<root>'} ({type(module).__name__})"
        if isinstance(module, _BN_TYPES):
            if type(module) not in _BN_TYPES:
                return f"{label} is a BatchNorm subclass"
            if module.running_mean is None or module.running_var is None:
                return f"{label} has no running statistics (track_running_stats=False)"
            if "forward" in module.__dict__:
                return f"{label} has an instance-level forward"
        params = [p for p in module.parameters(recurse=False) if p.requires_grad]
        if not params:
            continue
        if type(module) not in (nn.Conv2d, nn.Linear, *_BN_TYPES):
            return f"{label} holds trainable parameters of a layer type the fast path does not know"
        if isinstance(module, nn.Conv2d) and (module.padding_mode != "zeros" or isinstance(module.padding, str)):
            return f"{label} pads with mode {module.padding_mode!r} / padding {module.padding!r}"
        for p in params:
            if id(p) in owner:
                return f"{label} shares a parameter with {owner[id(p)]}"
            owner[id(p)] = label
    return None


def _trainable(module: nn.Module, name: str) -> torch.Tensor | None:
    p = getattr(module, name, None)
    return p if isinstance(p, torch.Tensor) and p.requires_grad else None


def per_sample_conv_weight_grad(conv: nn.Conv2d, a: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """H_i = d (sum delta_i . conv(a_i)) / d W for each sample: (m, C_out, C_in / groups * kh * kw).

    One ``convolution_backward`` with the samples as groups: a (m, C_in, H, W) -> (1, m C_in, H, W),
    delta (m, C_out, H', W') -> (1, m C_out, H', W'), groups m * conv.groups.
    """
    m = a.shape[0]
    weight = conv.weight.detach()
    if conv.kernel_size == (1, 1) and conv.padding == (0, 0):  # a batched matmul per group
        g = conv.groups
        sub = a[:, :, ::conv.stride[0], ::conv.stride[1]]
        d = delta.reshape(m * g, delta.shape[1] // g, -1)
        return torch.bmm(d, sub.reshape(m * g, a.shape[1] // g, -1).transpose(1, 2)).reshape(m, weight.shape[0], -1)
    grad = torch.ops.aten.convolution_backward(
        delta.reshape(1, m * delta.shape[1], *delta.shape[2:]), a.reshape(1, m * a.shape[1], *a.shape[2:]),
        weight.repeat(m, 1, 1, 1), None, conv.stride, conv.padding, conv.dilation, False, [0, 0],
        m * conv.groups, [False, True, False])[1]
    return grad.reshape(m, weight.shape[0], -1)


def _flat(parts: list[torch.Tensor], m: int) -> torch.Tensor:
    """Per-sample gradient pieces (m, ...) side by side as one float64 (m, p) matrix."""
    return torch.cat([p.reshape(m, -1).double() for p in parts], 1)


@dataclass
class _Layer:
    """A conv or linear call: its module, input (kept while a per-sample weight gradient needs it)."""

    module: nn.Module
    a: torch.Tensor | None
    version: int
    node: object = None  # the autograd node of a convolution's output (checked when a BN fuses it)
    fused: bool = False


@dataclass
class _Norm:
    """A BatchNorm call run as x * scale + shift; ``x`` kept only when no convolution is fused in."""

    module: nn.Module
    mean: torch.Tensor
    invstd: torch.Tensor
    scale: torch.Tensor
    x: torch.Tensor | None
    version: int
    conv: _Layer | None = None


@dataclass
class _Pass:
    """One forward and the backward(s) of a batch with hooks that accumulate Theta layer by layer.

    ``stats``: BN module -> (mean, var) to normalise with; None takes the batch's own statistics in
    this forward (``bn="batchstats"``); ``running``: use each BN's running statistics (``bn="eval"``).
    """

    net: nn.Module
    m: int
    contraction: str
    running: bool
    stats: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] | None
    theta: torch.Tensor = field(init=False)
    seconds: float = 0.0
    problem: str | None = None
    layers: dict[nn.Module, _Layer | _Norm] = field(default_factory=dict)
    pending: tuple[torch.Tensor, _Layer, int] | None = None
    last_pass: bool = True

    def fail(self, reason: str) -> None:
        if self.problem is None:
            self.problem = reason

    # --- forward ----------------------------------------------------------------------------

    def layer_hook(self, module: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        a = inputs[0]
        if module in self.layers:
            return self.fail(f"{type(module).__name__} called more than once per forward")
        if not a.requires_grad:
            return self.fail(f"{type(module).__name__} input does not depend on x")
        keep = _trainable(module, "weight") is not None or isinstance(module, nn.Conv2d)
        record = _Layer(module, a if keep else None, a._version, out.grad_fn)
        self.layers[module] = record
        out.register_hook(lambda grad: self.layer_backward(record, grad))
        if isinstance(module, nn.Conv2d):
            self.pending = (out, record, out._version)

    def norm_forward(self, module: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
        """BN with frozen statistics as an affine map with constant coefficients."""
        if module in self.layers:
            self.fail("BatchNorm called more than once per forward")
        if not x.requires_grad:
            self.fail("BatchNorm input does not depend on x")
        shape = (1, -1) + (1,) * (x.dim() - 2)
        with torch.no_grad():
            if self.running:
                mean, var = module.running_mean, module.running_var
            elif self.stats is not None:
                mean, var = self.stats[module]
            else:  # two passes (mean, then mean squared deviation): accurate, and far faster than var_mean
                dims = [0, *range(2, x.dim())]
                mean = x.mean(dims)
                var = (x - mean.view(shape)).square_().mean(dims)
            invstd = torch.rsqrt(var + module.eps)
            weight = module.weight.detach() if module.weight is not None else torch.ones_like(invstd)
            bias = module.bias.detach() if module.bias is not None else torch.zeros_like(invstd)
            scale = weight * invstd
            shift = bias - mean * scale
        conv = None
        if self.pending is not None and self.pending[0] is x and self.pending[2] == x._version:
            conv = self.pending[1]
            conv.fused = True
        self.pending = None
        keep_x = conv is None and _trainable(module, "weight") is not None
        record = _Norm(module, mean, invstd, scale, x if keep_x else None, x._version, conv)
        self.layers[module] = record
        y = torch.addcmul(shift.view(shape), x, scale.view(shape))
        y.register_hook(lambda grad: self.norm_backward(record, grad))
        return y

    # --- backward ---------------------------------------------------------------------------

    def add(self, parts: list[torch.Tensor]) -> None:
        if parts:
            g = _flat(parts, self.m)
            self.theta.addmm_(g, g.T)

    def layer_backward(self, record: _Layer, delta: torch.Tensor) -> None:
        if record.fused or self.problem is not None:
            return
        start = time.perf_counter()
        module, a = record.module, record.a
        if a is not None and a._version != record.version:
            return self.fail(f"the input of {type(module).__name__} was modified in place")
        if isinstance(module, nn.Conv2d):
            self.conv_contribution(module, a, delta)
        else:
            self.linear_contribution(module, a, delta)
        if self.last_pass:
            record.a = None
        self.seconds += time.perf_counter() - start

    def conv_contribution(self, conv: nn.Conv2d, a: torch.Tensor, delta: torch.Tensor) -> None:
        m, c_out = delta.shape[:2]
        positions = delta[0, 0].numel()
        k = conv.weight[0].numel()
        weight, bias = _trainable(conv, "weight"), _trainable(conv, "bias")
        explicit = m * positions * c_out * k + m * m * c_out * k
        trick = (m * positions) ** 2 * (conv.groups * k + c_out + conv.groups)
        if weight is not None and self._use_trick(explicit, trick, conv.groups * (m * positions) ** 2):
            self.theta += conv_gram_trick(conv, a, delta)
            weight = None
        parts = []
        if weight is not None:
            parts.append(per_sample_conv_weight_grad(conv, a, delta))
        if bias is not None:
            parts.append(delta.sum((2, 3)))
        self.add(parts)

    def linear_contribution(self, linear: nn.Linear, a: torch.Tensor | None, delta: torch.Tensor) -> None:
        m = delta.shape[0]
        d = delta.reshape(m, -1, delta.shape[-1])
        steps, d_out = d.shape[1:]
        d_in = linear.in_features
        weight, bias = _trainable(linear, "weight"), _trainable(linear, "bias")
        parts = []
        if weight is not None:
            x = a.reshape(m, -1, d_in)
            explicit = m * steps * d_in * d_out + m * m * d_in * d_out
            trick = (m * steps) ** 2 * (d_in + d_out + 1)
            if self._use_trick(explicit, trick, (m * steps) ** 2):
                self.theta += _pair_sum(_gram(d) * _gram(x), m, steps)
            else:
                parts.append(torch.bmm(d.transpose(1, 2), x))
        if bias is not None:
            parts.append(d.sum(1))
        self.add(parts)

    def _use_trick(self, explicit: int, trick: int, elements: int) -> bool:
        if self.contraction == "auto":
            return trick < explicit and elements <= GRAM_TRICK_MAX_ELEMENTS
        return self.contraction == "gram"

    def norm_backward(self, record: _Norm, delta: torch.Tensor) -> None:
        if self.problem is not None:
            return
        start = time.perf_counter()
        module, conv = record.module, record.conv
        m, channels = delta.shape[:2]
        dims = tuple(range(2, delta.dim()))
        shift_grad = delta.sum(dims) if dims else delta  # sum_t delta_i: (m, C)
        parts = []
        bn_weight, bn_bias = _trainable(module, "weight"), _trainable(module, "bias")
        if conv is not None:
            conv_module = conv.module
            if conv.a._version != conv.version:
                return self.fail("the input of Conv2d was modified in place")
            conv_weight, conv_bias = _trainable(conv_module, "weight"), _trainable(conv_module, "bias")
            scale = record.scale.view(1, channels, 1)
            h = per_sample_conv_weight_grad(conv_module, conv.a, delta) if (conv_weight is not None or bn_weight is not None) else None
            if conv_weight is not None:
                parts.append(h * scale)
            if conv_bias is not None:
                parts.append(shift_grad * record.scale)
            if bn_weight is not None:
                # sum_t delta_i x_i = sum_k W[:, k] H_i[:, k] + b_conv sum_t delta_i
                dot = (h.double() * conv_module.weight.detach().reshape(1, channels, -1).double()).sum(-1)
                if conv_module.bias is not None:
                    dot = dot + conv_module.bias.detach().double() * shift_grad.double()
                parts.append((dot - record.mean.double() * shift_grad.double()) * record.invstd.double())
            if self.last_pass:
                conv.a = None
        elif bn_weight is not None:
            if record.x._version != record.version:
                return self.fail("the input of BatchNorm was modified in place")
            shape = (1, -1) + (1,) * len(dims)
            xhat = (record.x - record.mean.view(shape)) * record.invstd.view(shape)
            parts.append((delta * xhat).sum(dims) if dims else delta * xhat)
            if self.last_pass:
                record.x = None
        if bn_bias is not None:
            parts.append(shift_grad)
        self.add(parts)
        self.seconds += time.perf_counter() - start


def _gram(v: torch.Tensor) -> torch.Tensor:
    """(m T, m T) float64 inner products of the rows of v: (m, T, d)."""
    flat = v.reshape(-1, v.shape[-1]).double()
    return flat @ flat.T


def _pair_sum(k: torch.Tensor, m: int, steps: int) -> torch.Tensor:
    """(m T, m T) -> (m, m): the sum over both position indices."""
    return k.reshape(m, steps, m, steps).sum((1, 3))


def conv_gram_trick(conv: nn.Conv2d, a: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """The convolution weight's share of Theta without per-sample gradients: (m, m) float64,
    Theta_ij = sum_g sum_{t,s} (delta_it^g . delta_js^g)(U_it^g . U_js^g), U = unfolded patches."""
    m, c_out = delta.shape[:2]
    g = conv.groups
    patches = F.unfold(a, conv.kernel_size, conv.dilation, conv.padding, conv.stride)  # (m, C_in k k, T)
    steps = patches.shape[-1]
    u = patches.reshape(m, g, -1, steps).permute(1, 0, 3, 2).reshape(g, m * steps, -1).double()
    d = delta.reshape(m, g, c_out // g, steps).permute(1, 0, 3, 2).reshape(g, m * steps, -1).double()
    k = (torch.bmm(u, u.transpose(1, 2)) * torch.bmm(d, d.transpose(1, 2))).sum(0)
    return _pair_sum(k, m, steps)


def _output_weights(out: torch.Tensor, output: str, y: torch.Tensor | None) -> list[torch.Tensor]:
    """The grad_outputs of the backward passes: one per pass, each (m, c)."""
    if output == "sum":
        return [torch.ones_like(out)]
    if output == "label":
        return [F.one_hot(y.to(out.device).long(), out.shape[1]).to(out.dtype)]
    weights = []
    for k in range(out.shape[1]):
        w = torch.zeros_like(out)
        w[:, k] = 1
        weights.append(w)
    return weights


def _graph_problem(out: torch.Tensor, xg: torch.Tensor, state: _Pass, owners: dict[int, nn.Module]) -> str | None:
    """Check the autograd graph of ``out``: every trainable parameter in it is used once, by its
    own conv/linear module (BN parameters must not appear: the fast BN uses constants), and every
    fused convolution's output feeds only its BN."""
    if out.grad_fn is None:
        return "the output does not depend on x"
    incoming: dict[object, int] = {out.grad_fn: 1}
    stack = [out.grad_fn]
    while stack:
        node = stack.pop()
        for nxt, _ in node.next_functions:
            if nxt is None:
                continue
            if nxt not in incoming:
                incoming[nxt] = 0
                stack.append(nxt)
            incoming[nxt] += 1
    for node, count in incoming.items():
        variable = getattr(node, "variable", None)
        if variable is None or variable is xg:
            continue
        module = owners.get(id(variable))
        if module is None or isinstance(module, _BN_TYPES) or module not in state.layers:
            return "a trainable parameter is used outside the module that holds it"
        if count != 1:
            return f"a parameter of {type(module).__name__} is used {count} times"
    for record in state.layers.values():
        if isinstance(record, _Norm) and record.conv is not None and incoming.get(record.conv.node, 0) != 1:
            return "a convolution's output feeds its BatchNorm and something else"
    return None


def _theta_pass(net: nn.Module, x: torch.Tensor, bn: str, output: str, y: torch.Tensor | None,
                stats: dict | None, contraction: str, timings: dict | None) -> torch.Tensor:
    """Theta of the samples x: (n, ...) from one forward and 1 (or c) backward passes: (n, n) float64."""
    state = _Pass(net, x.shape[0], contraction, bn == "eval", stats)
    state.theta = torch.zeros(x.shape[0], x.shape[0], dtype=torch.float64, device=x.device)
    owners = {id(p): module for module in net.modules() for p in module.parameters(recurse=False) if p.requires_grad}
    handles, norms = [], []
    try:
        for module in net.modules():
            if type(module) in (nn.Conv2d, nn.Linear):
                handles.append(module.register_forward_hook(state.layer_hook))
            elif isinstance(module, _BN_TYPES):
                module.forward = _bound_norm(state, module)
                norms.append(module)
        start = time.perf_counter()
        xg = x.detach().requires_grad_(True)
        with train_mode(net, False):
            out = net(xg)
        state.pending = None
        forward_seconds = time.perf_counter() - start
        if state.problem is None and (not isinstance(out, torch.Tensor) or out.dim() != 2):
            state.fail("the network output is not (m, c)")
        problem = state.problem or _graph_problem(out, xg, state, owners)
        if problem:
            raise Unsupported(problem)
        start = time.perf_counter()
        weights = _output_weights(out, output, y)
        for k, w in enumerate(weights):
            state.last_pass = k == len(weights) - 1
            torch.autograd.grad(out, xg, grad_outputs=w, retain_graph=not state.last_pass)
        if state.problem:
            raise Unsupported(state.problem)
    finally:
        for handle in handles:
            handle.remove()
        for module in norms:
            del module.forward
    if timings is not None:
        for key, value in (("forward", forward_seconds), ("backward", time.perf_counter() - start),
                           ("contractions", state.seconds)):
            timings[key] = timings.get(key, 0.0) + value
    return state.theta


def _bound_norm(state: _Pass, module: nn.Module):
    return lambda inp: state.norm_forward(module, inp)


def _frozen_statistics(net: nn.Module, x: torch.Tensor) -> dict[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    """BN module -> the batch's (mean, biased var), from :func:`searchkit.metrics.ntk.batch_statistics`."""
    buffers = batch_statistics(net, x)
    stats = {}
    for name, module in net.named_modules():
        if isinstance(module, _BN_TYPES):
            prefix = name + "." if name else ""
            stats[module] = (buffers[prefix + "running_mean"], buffers[prefix + "running_var"])
    return stats


def fast_ntk(
    net: nn.Module,
    x: torch.Tensor,
    bn: str = "batchstats",
    output: str = "sum",
    y: torch.Tensor | None = None,
    chunk_size: int | None = None,
    contraction: Contraction = "auto",
    timings: dict[str, float] | None = None,
) -> torch.Tensor:
    """Theta(X, X): (m, m) float64, equal to the reference ``gram(jacobian(...))`` (module docstring).

    ``chunk_size`` bounds the samples per forward/backward (memory): below m, the samples are split
    into blocks of ``max(1, chunk_size // 2)`` and Theta is assembled block pair by block pair (one
    pass per pair, statistics of the whole batch frozen first), which changes rounding only.
    ``timings`` (optional) accumulates seconds of "forward", "backward" (the hooks included) and
    "contractions" (the hooks alone). Raises :class:`Unsupported` for a network it cannot handle exactly.
    """
    if bn not in FAST_BN_MODES:
        raise Unsupported(f"bn={bn!r} couples the samples (only {FAST_BN_MODES} decouple them)")
    if output not in FAST_OUTPUT_MODES:
        raise Unsupported(f"output={output!r} is not one of {FAST_OUTPUT_MODES}")
    if contraction not in CONTRACTIONS:
        raise ValueError(f"contraction must be one of {CONTRACTIONS}, got {contraction!r}")
    if not x.is_floating_point():
        raise Unsupported("the input is not floating point")
    reason = unsupported_reason(net)
    if reason is not None:
        raise Unsupported(reason)
    m = x.shape[0]
    if chunk_size is None or chunk_size >= m:
        return _theta_pass(net, x, bn, output, y, None, contraction, timings)
    stats = _frozen_statistics(net, x) if bn == "batchstats" else None
    size = max(1, chunk_size // 2)
    blocks = [torch.arange(start, min(start + size, m), device=x.device) for start in range(0, m, size)]
    theta = torch.zeros(m, m, dtype=torch.float64, device=x.device)
    for i, first in enumerate(blocks):  # chunk_size < m: at least two blocks, every pair once
        for second in blocks[i + 1:]:
            index = torch.cat([first, second])
            sub = _theta_pass(net, x[index], bn, output, None if y is None else y[index], stats, contraction, timings)
            theta[index[:, None], index[None, :]] = sub
    return theta
