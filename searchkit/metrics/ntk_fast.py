"""The empirical NTK from one batched forward and backward, without the (m x p) Jacobian.

With BatchNorm statistics frozen (``bn="batchstats"`` or ``"eval"``, :mod:`searchkit.metrics.ntk`)
every sample passes through the network on its own, so one backward of sum_i w_i . f(x_i) gives,
at each layer, every sample's own output gradient delta_i (m, ...). A layer's per-sample
parameter gradient is a contraction of its input a_i with delta_i
(:mod:`searchkit.metrics.ntk_contractions`), and its share of Theta = J J^T (seed 000 eq. 4) is
accumulated in float64 the moment its delta arrives, then freed: J is never formed.

For the pass the known modules run through this module (their ``forward`` is replaced by an
instance attribute, removed afterwards) with constant parameters, so autograd computes input
gradients only and keeps as little as possible:
  * ``nn.Conv2d`` (any stride, padding, dilation, groups) keeps only its weight; its input is
    held here for the per-sample weight gradient, or, when it is the output of an ``nn.ReLU``,
    only that ReLU's input, shared by the ReLUs of a node (relu is recomputed in the backward).
    ``nn.ReLU`` keeps its input instead of its output. ``nn.Linear`` on (m, ..., d_in) likewise.
  * BatchNorm (frozen statistics mu, sigma) is the affine map y = x * s + t with s = w / sigma,
    t = b - mu s. Per-sample gradients: bias sum_t delta_i, weight sum_t delta_i xhat_i. When x is
    a convolution's output used by nothing else (ReLU-Conv-BN), x is not kept: with H_i the
    per-sample weight gradient of the convolution taken with the BN's delta,
    sum_t delta_i x_i = sum_k W[:, k] H_i[:, k] (+ conv bias), and the convolution's own per-sample
    gradient is s H_i, so one contraction serves both layers.
Memory is then below one training forward + backward (which keeps every ReLU and conv output).

``output`` "sum" and "label" take one backward (weights 1 or the true class's one-hot per
sample), "trace" one per class (e_k), "centred" c - 1: the logits' centring is the projector
P = I - 11^T / c = U U^T, U (c, c - 1) an orthonormal basis of the vectors summing to 0, so
sum_k <d (P f)_k, d (P f)_k> = sum_l <d (u_l . f), d (u_l . f)>, one backward with weights u_l each. With ``bn="batchstats"`` the statistics are taken inside the
same forward (the evaluation-mode forward; a network that also behaves differently in training
mode beyond BN, e.g. dropout, gets them without dropout, where the reference's separate
training-mode pass would drop at random). The float32 result differs from the reference's by
rounding only; against the same network in float64 it is usually the closer of the two
(results/kcc-speed).

What is supported is checked, never assumed: every module holding trainable parameters must be
exactly ``nn.Conv2d`` (zero padding mode, numeric padding), ``nn.Linear`` or a BatchNorm with
running statistics; each is called once per forward, on an input that depends on x; no trainable
parameter may appear in the autograd graph (all known layers use constants here, so one that does
is used outside its module: tying, a parameter read directly); a fused convolution's output must
feed only its BN; a held input must not be modified in place. Anything else raises
:class:`Unsupported`, and :func:`searchkit.metrics.ntk.empirical_ntk` falls back to the reference
``vmap(jacrev)`` path. Assumed, as by the reference path (which runs each sample alone): with BN
frozen, no other module mixes samples.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Iterator, Literal

import torch
import torch.nn.functional as F
from torch import nn

from searchkit.metrics.batchnorm import BN_TYPES, batch_statistics, train_mode
from searchkit.metrics.ntk_contractions import (choose_gram_trick, conv_cost, conv_gram_trick, linear_weight_share,
                                                per_sample_conv_weight_grad)
from searchkit.metrics.ntk_ops import ConvInputGradOnly, FrozenNorm, ReLUKeepingInput

Contraction = Literal["auto", "explicit", "gram"]
CONTRACTIONS: tuple[str, ...] = ("auto", "explicit", "gram")
FAST_BN_MODES: tuple[str, ...] = ("batchstats", "eval")
FAST_OUTPUT_MODES: tuple[str, ...] = ("sum", "trace", "label", "centred")


class Unsupported(Exception):
    """The fast path cannot compute this network's NTK exactly; the message says why."""


def unsupported_reason(net: nn.Module) -> str | None:
    """Why the fast path cannot handle ``net`` by its module structure alone (None: it can, subject
    to the checks made during the forward)."""
    if not any(p.requires_grad for p in net.parameters()):
        return "the network has no trainable parameters"
    owner: dict[int, str] = {}
    for name, module in net.named_modules():
        label = f"module {name or '<root>'} ({type(module).__name__})"
        if isinstance(module, BN_TYPES):
            if type(module) not in BN_TYPES:
                return f"{label} is a BatchNorm subclass"
            if module.running_mean is None or module.running_var is None:
                return f"{label} has no running statistics (track_running_stats=False)"
        if type(module) in (nn.Conv2d, nn.Linear, *BN_TYPES) and "forward" in module.__dict__:
            return f"{label} has an instance-level forward"
        if type(module) is nn.Conv2d and (module.padding_mode != "zeros" or isinstance(module.padding, str)):
            return f"{label} pads with mode {module.padding_mode!r} / padding {module.padding!r}"
        params = [p for p in module.parameters(recurse=False) if p.requires_grad]
        if not params:
            continue
        if type(module) not in (nn.Conv2d, nn.Linear, *BN_TYPES):
            return f"{label} holds trainable parameters of a layer type the fast path does not know"
        for p in params:
            if id(p) in owner:
                return f"{label} shares a parameter with {owner[id(p)]}"
            owner[id(p)] = label
    return None


def _trainable(module: nn.Module, name: str) -> torch.Tensor | None:
    p = getattr(module, name, None)
    return p if isinstance(p, torch.Tensor) and p.requires_grad else None


@dataclass
class _Layer:
    """A conv or linear call. Its input, while a per-sample weight gradient needs it, is kept as
    ``a`` or, when it is a ReLU's output, as that ReLU's input ``source`` (relu recomputed)."""

    module: nn.Module
    a: torch.Tensor | None
    source: torch.Tensor | None
    version: int
    node: object = None  # the autograd node of the output (checked when a BN fuses a convolution)
    fused: bool = False

    def held(self) -> torch.Tensor | None:
        return self.source if self.source is not None else self.a

    def input(self) -> torch.Tensor:
        return torch.relu(self.source) if self.source is not None else self.a

    def release(self) -> None:
        self.a = self.source = None


@dataclass
class _Norm:
    """A BatchNorm call with frozen statistics; ``x`` kept only when no convolution is fused in."""

    module: nn.Module
    mean: torch.Tensor
    invstd: torch.Tensor
    scale: torch.Tensor
    x: torch.Tensor | None
    version: int
    conv: _Layer | None = None


@dataclass
class _Pass:
    """One forward and the backward(s) of a batch, the known layers run by :meth:`relu`,
    :meth:`layer` and :meth:`norm` (each module's forward, replaced for the pass), their output
    hooks accumulating Theta layer by layer.

    ``stats``: BN module -> (mean, var) to normalise with; None takes the batch's own statistics in
    this forward (``bn="batchstats"``); ``running``: use each BN's running statistics (``bn="eval"``).
    """

    m: int
    contraction: str
    running: bool
    stats: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] | None
    theta: torch.Tensor
    seconds: float = 0.0
    problem: str | None = None
    layers: dict[nn.Module, _Layer | _Norm] = field(default_factory=dict)
    last_relu: tuple[torch.Tensor, torch.Tensor, int, int] | None = None  # (output, input, their versions)
    last_conv: tuple[torch.Tensor, _Layer, int] | None = None  # (output, record, output version)
    last_pass: bool = True

    def forget(self) -> None:
        """Drop every record and what it holds. The hooks on the pass's graph refer to this pass and
        its records, and a record to its output's autograd node: a reference cycle that kept every
        held activation alive until Python's cycle collector ran (a loop over NB201 cells grew by
        ~200 MB per cell at m = 128; issue 28). Broken here, they are freed as the pass returns."""
        for record in self.layers.values():
            if isinstance(record, _Layer):
                record.release()
                record.node = None
            else:
                record.x = record.conv = None
        self.layers.clear()
        self.last_relu = self.last_conv = None

    def fail(self, reason: str) -> None:
        if self.problem is None:
            self.problem = reason

    def _enter(self, module: nn.Module, x: torch.Tensor) -> None:
        if module in self.layers:
            self.fail(f"{type(module).__name__} called more than once per forward")
        if not x.requires_grad:
            self.fail(f"{type(module).__name__} input does not depend on x")

    # --- forward ----------------------------------------------------------------------------

    def relu(self, x: torch.Tensor) -> torch.Tensor:
        out = ReLUKeepingInput.apply(x)
        self.last_relu = (out, x, out._version, x._version)
        return out

    def layer(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """A conv or linear layer with constant parameters (saving no activation); x is held for the
        backward, or only the ReLU input it came from."""
        self._enter(module, x)
        weight, bias = module.weight.detach(), None if module.bias is None else module.bias.detach()
        conv = isinstance(module, nn.Conv2d)
        source = None
        if self.last_relu is not None:
            out, relu_input, out_version, input_version = self.last_relu
            if out is x and x._version == out_version and relu_input._version == input_version:
                source = relu_input  # x == relu(source), recomputed in the backward
        keep = conv or _trainable(module, "weight") is not None
        out = ConvInputGradOnly.apply(x, weight, bias, module) if conv else F.linear(x, weight, bias)
        record = _Layer(module, x if keep and source is None else None, source if keep else None,
                        (source if source is not None else x)._version, out.grad_fn)
        self.layers[module] = record
        out.register_hook(lambda grad: self.layer_backward(record, grad))
        if conv:
            self.last_conv = (out, record, out._version)
        return out

    def norm(self, module: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
        """BN with frozen statistics as an affine map with constant coefficients."""
        self._enter(module, x)
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
            scale = invstd if module.weight is None else module.weight.detach() * invstd
        conv = None
        if self.last_conv is not None and self.last_conv[0] is x and self.last_conv[2] == x._version:
            conv = self.last_conv[1]
            conv.fused = True
        self.last_conv = None
        keep_x = conv is None and _trainable(module, "weight") is not None
        record = _Norm(module, mean, invstd, scale, x if keep_x else None, x._version, conv)
        self.layers[module] = record
        y = FrozenNorm.apply(x, module, mean, var, scale)
        y.register_hook(lambda grad: self.norm_backward(record, grad))
        return y

    # --- backward ---------------------------------------------------------------------------

    def add(self, parts: list[torch.Tensor], dtype: torch.dtype) -> None:
        """theta += G G^T for the per-sample gradients G = [parts] (m, p): the sum of each piece's
        Gram (no cross terms, no concatenated copy), each product in ``dtype`` (the network's),
        the sum over pieces and layers in float64."""
        for part in parts:
            g = part.reshape(self.m, -1).to(dtype)
            self.theta += (g @ g.T).double()

    def _input(self, record: _Layer) -> torch.Tensor | None:
        held = record.held()
        if held is not None and held._version != record.version:
            self.fail(f"the input of {type(record.module).__name__} was modified in place")
            return None
        return record.input()

    def layer_backward(self, record: _Layer, delta: torch.Tensor) -> None:
        if record.fused or self.problem is not None:
            return
        start = time.perf_counter()
        module = record.module
        weight, bias = _trainable(module, "weight"), _trainable(module, "bias")
        parts = []
        if weight is not None:
            a = self._input(record)
            if a is None:
                return
            if isinstance(module, nn.Conv2d):
                if choose_gram_trick(self.contraction, *conv_cost(module, delta)):
                    self.theta += conv_gram_trick(module, a, delta)
                else:
                    parts.append(per_sample_conv_weight_grad(module, a, delta))
            else:
                explicit, share = linear_weight_share(a, delta, self.contraction)
                if share is not None:
                    self.theta += share
                else:
                    parts.append(explicit)
        if bias is not None:
            parts.append(delta.reshape(delta.shape[0], -1, delta.shape[-1]).sum(1) if isinstance(module, nn.Linear)
                         else delta.sum((2, 3)))
        self.add(parts, delta.dtype)
        if self.last_pass:
            record.release()
        self.seconds += time.perf_counter() - start

    def norm_backward(self, record: _Norm, delta: torch.Tensor) -> None:
        if self.problem is not None:
            return
        start = time.perf_counter()
        module, conv = record.module, record.conv
        channels = delta.shape[1]
        dims = tuple(range(2, delta.dim()))
        shift_grad = delta.sum(dims) if dims else delta  # sum_t delta_i: (m, C)
        parts = []
        bn_weight, bn_bias = _trainable(module, "weight"), _trainable(module, "bias")
        if conv is not None:
            conv_module = conv.module
            conv_weight, conv_bias = _trainable(conv_module, "weight"), _trainable(conv_module, "bias")
            if conv_weight is not None or bn_weight is not None:
                a = self._input(conv)
                if a is None:
                    return
                h = per_sample_conv_weight_grad(conv_module, a, delta)
            if bn_weight is not None:  # sum_t delta_i x_i = sum_k W[:, k] H_i[:, k] + b_conv sum_t delta_i
                dot = torch.linalg.vecdot(h, conv_module.weight.detach().reshape(1, channels, -1)).double()
                if conv_module.bias is not None:
                    dot = dot + conv_module.bias.detach().double() * shift_grad.double()
                parts.append((dot - record.mean.double() * shift_grad.double()) * record.invstd.double())
            if conv_weight is not None:
                parts.append(h.mul_(record.scale.view(1, channels, 1)))  # the conv's own: s H_i
            if conv_bias is not None:
                parts.append(shift_grad * record.scale)
            if self.last_pass:
                conv.release()
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
        self.add(parts, delta.dtype)
        self.seconds += time.perf_counter() - start


def _output_weights(out: torch.Tensor, output: str, y: torch.Tensor | None) -> list[torch.Tensor]:
    """The grad_outputs of the backward passes: one per pass, each (m, c)."""
    if output == "sum":
        return [torch.ones_like(out)]
    if output == "label":
        return [F.one_hot(y.to(out.device).long(), out.shape[1]).to(out.dtype)]
    if output == "centred":
        return [u.expand_as(out) for u in centred_basis(out.shape[1], out.dtype, out.device)]
    weights = []
    for k in range(out.shape[1]):
        w = torch.zeros_like(out)
        w[:, k] = 1
        weights.append(w)
    return weights


def centred_basis(c: int, dtype: torch.dtype, device: torch.device) -> list[torch.Tensor]:
    """c - 1 orthonormal vectors (each (1, c)) spanning {v : sum_k v_k = 0}, the range of the centring
    projector I - 11^T / c (from a QR of its first c - 1 columns; computed in float64)."""
    projector = torch.eye(c, dtype=torch.float64) - 1.0 / c
    basis = torch.linalg.qr(projector[:, : c - 1]).Q  # (c, c - 1)
    return [basis[:, k].to(dtype=dtype, device=device).reshape(1, c) for k in range(c - 1)]


def _graph_problem(out: torch.Tensor, xg: torch.Tensor, state: _Pass) -> str | None:
    """Check the autograd graph of ``out``. The known layers run with constant parameters, so a
    trainable parameter in the graph is used outside its module; and every fused convolution's
    output must feed only its BN."""
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
    for node in incoming:
        variable = getattr(node, "variable", None)
        if variable is not None and variable is not xg:
            return "a trainable parameter is used outside the module that holds it"
    for record in state.layers.values():
        if isinstance(record, _Norm) and record.conv is not None and incoming.get(record.conv.node, 0) != 1:
            return "a convolution's output feeds its BatchNorm and something else"
    return None


@contextmanager
def _run_by(state: _Pass, net: nn.Module) -> Iterator[None]:
    """Route the known modules' forwards through ``state`` (instance attributes, removed on exit)."""
    replaced = []
    try:
        for module in net.modules():
            kind = type(module)
            if kind in (nn.Conv2d, nn.Linear):
                module.forward = partial(state.layer, module)
            elif kind in BN_TYPES:
                module.forward = partial(state.norm, module)
            elif kind is nn.ReLU and not module.inplace and "forward" not in module.__dict__:
                module.forward = state.relu
            else:
                continue
            replaced.append(module)
        yield
    finally:
        for module in replaced:
            del module.forward


def _theta_pass(net: nn.Module, x: torch.Tensor, bn: str, output: str, y: torch.Tensor | None,
                stats: dict | None, contraction: str, timings: dict | None) -> torch.Tensor:
    """Theta of the samples x: (n, ...) from one forward and 1 (or c) backward passes: (n, n) float64."""
    theta = torch.zeros(x.shape[0], x.shape[0], dtype=torch.float64, device=x.device)
    state = _Pass(x.shape[0], contraction, bn == "eval", stats, theta)
    try:
        start = time.perf_counter()
        xg = x.detach().requires_grad_(True)
        with _run_by(state, net), train_mode(net, False):
            out = net(xg)
        state.last_relu = state.last_conv = None
        forward_seconds = time.perf_counter() - start
        if state.problem is None and (not isinstance(out, torch.Tensor) or out.dim() != 2):
            state.fail("the network output is not (m, c)")
        problem = state.problem or _graph_problem(out, xg, state)
        if problem:
            raise Unsupported(problem)
        start = time.perf_counter()
        weights = _output_weights(out, output, y)
        for k, w in enumerate(weights):
            state.last_pass = k == len(weights) - 1
            torch.autograd.grad(out, xg, grad_outputs=w, retain_graph=not state.last_pass)
        if state.problem:
            raise Unsupported(state.problem)
        if timings is not None:
            for key, value in (("forward", forward_seconds), ("backward", time.perf_counter() - start),
                               ("contractions", state.seconds)):
                timings[key] = timings.get(key, 0.0) + value
        return state.theta
    finally:
        state.forget()


def _frozen_statistics(net: nn.Module, x: torch.Tensor) -> dict[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    """BN module -> the batch's (mean, biased var), from :func:`searchkit.metrics.ntk.batch_statistics`."""
    buffers = batch_statistics(net, x)
    stats = {}
    for name, module in net.named_modules():
        if isinstance(module, BN_TYPES):
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
