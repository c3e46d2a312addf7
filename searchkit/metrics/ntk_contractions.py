"""Per-layer shares of the NTK Gram matrix from a layer's input and its per-sample output gradients.

For a layer with per-sample input a_i and output gradient delta_i (the gradient of sample i's
scalar output with respect to the layer's output on sample i), the per-sample gradient of a
weight shared over positions t is G_i = sum_t delta_it a_it^T, and the layer's share of
Theta = J J^T (seed 000 eq. 4) is G G^T. Two ways to get it, equal in exact arithmetic:

  * explicit: form G (m, p_layer), then G G^T; cost ~ m T p + m^2 p.
  * Gram trick: Theta_ij = sum_{t,s} (delta_it . delta_js)(a_it . a_js), never forming G; cost
    ~ (m T)^2 (d_in + d_out): cheaper when a layer has few positions T (a classifier: T = 1).

:func:`choose_gram_trick` picks by these flop estimates. Every function returns float64 (m, m)
or float64-ready pieces; shapes in the docstrings.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Largest Gram-trick temporary, in elements of the (m T) x (m T) matrices (times groups).
GRAM_TRICK_MAX_ELEMENTS = 1 << 24


def choose_gram_trick(contraction: str, explicit_flops: int, trick_flops: int, trick_elements: int) -> bool:
    """Whether to use the Gram trick: ``contraction`` "gram" / "explicit" force it; "auto" takes the
    cheaper by flops, unless the trick's temporaries exceed :data:`GRAM_TRICK_MAX_ELEMENTS`."""
    if contraction == "auto":
        return trick_flops < explicit_flops and trick_elements <= GRAM_TRICK_MAX_ELEMENTS
    return contraction == "gram"


def memory_format(x: torch.Tensor) -> torch.memory_format:
    """channels_last for a 4-d tensor laid out so (CIFAR batches are), else contiguous_format."""
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _by_position(t: torch.Tensor) -> torch.Tensor:
    """(m, C, H, W) -> (m, H W, C); a view for a channels_last tensor."""
    return t.permute(0, 2, 3, 1).reshape(t.shape[0], -1, t.shape[1])


def _by_channel(t: torch.Tensor, groups: int) -> torch.Tensor:
    """(m, C, H, W) -> (m groups, C / groups, H W); a view for a contiguous tensor."""
    return t.reshape(t.shape[0] * groups, t.shape[1] // groups, -1)


def per_sample_conv_weight_grad(conv: nn.Conv2d, a: torch.Tensor, delta: torch.Tensor,
                                method: str = "auto") -> torch.Tensor:
    """H_i = d (sum delta_i . conv(a_i)) / d W for each sample: (m, C_out, C_in / groups * kh * kw).

    a: (m, C_in, H, W), delta: (m, C_out, H', W'), both in either memory format. ``method``:
      * "grouped": one ``convolution_backward`` with the samples as groups (a -> (1, m C_in, H, W),
        delta -> (1, m C_out, H', W'), m * groups groups);
      * "shifted" (stride 1 only): one batched matmul per kernel offset, delta laid on the padded
        input's width so that each offset's input window is a contiguous slice of the flattened
        padded input (no unfolded copy); position-major for channels_last tensors;
      * "auto": a 1 x 1 convolution without padding is one batched matmul; otherwise "shifted" for
        ungrouped stride-1 convolutions with at least :data:`SHIFTED_POSITIONS_PER_CHANNEL` output
        positions per output channel (long matmuls: NB201's first stage, 16 channels at 32 x 32),
        else "grouped" (about one weight gradient of the batch; channels_last tensors are copied to
        contiguous first). The rule is what measured faster on the CPU (results/kcc-speed).
    All give the same H (tests check it).
    """
    m, g = a.shape[0], conv.groups
    last = memory_format(a) == memory_format(delta) == torch.channels_last
    if conv.kernel_size == (1, 1) and conv.padding == (0, 0):
        sub = a[:, :, ::conv.stride[0], ::conv.stride[1]]
        if last and g == 1:
            return torch.bmm(_by_position(delta).transpose(1, 2), _by_position(sub))
        return torch.bmm(_by_channel(delta, g), _by_channel(sub, g).transpose(1, 2)).reshape(m, delta.shape[1], -1)
    stride_one = conv.stride == (1, 1)
    if method == "auto":
        long = delta.shape[2] * delta.shape[3] >= SHIFTED_POSITIONS_PER_CHANNEL * delta.shape[1]
        method = "shifted" if stride_one and g == 1 and long else "grouped"
    if method == "shifted" and stride_one:
        return _shifted_weight_grad(conv, a, delta, last and g == 1)
    weight_shape = (m * conv.weight.shape[0], *conv.weight.shape[1:])
    grad = torch.ops.aten.convolution_backward(
        delta.contiguous().reshape(1, m * delta.shape[1], *delta.shape[2:]),
        a.contiguous().reshape(1, m * a.shape[1], *a.shape[2:]),
        delta.new_empty(1).expand(weight_shape), None, conv.stride, conv.padding, conv.dilation, False, [0, 0],
        m * g, [False, True, False])[1]
    return grad.reshape(m, delta.shape[1], -1)


#: "auto" takes the shifted per-sample gradients from this many output positions per output channel.
SHIFTED_POSITIONS_PER_CHANNEL = 64


def _shifted_weight_grad(conv: nn.Conv2d, a: torch.Tensor, delta: torch.Tensor, by_position: bool) -> torch.Tensor:
    """Stride-1 per-sample weight gradients by one batched matmul per kernel offset (u, v):
    H_i[o, c, u, v] = sum_t delta_i[o, t] a_pad_i[c, t + offset(u, v)] on the flattened padded grid.
    ``by_position`` (groups 1): position-major matrices, views of channels_last tensors."""
    m, c_in = a.shape[:2]
    c_out, g = delta.shape[1], conv.groups
    (kh, kw), (dh, dw), (ph, pw) = conv.kernel_size, conv.dilation, conv.padding
    width = a.shape[3] + 2 * pw  # padded width; outputs have width - (kw - 1) dw columns
    extra = -(-(kw - 1) * dw // width)  # rows appended so the last offset's window fits
    padded = F.pad(a, (pw, pw, ph, ph + extra))
    grid = F.pad(delta, (0, width - delta.shape[3]))
    if by_position:
        padded = _by_position(padded.contiguous(memory_format=torch.channels_last)).transpose(1, 2)
        grid = _by_position(grid.contiguous(memory_format=torch.channels_last)).transpose(1, 2)
    else:
        padded, grid = _by_channel(padded.contiguous(), g), _by_channel(grid.contiguous(), g)
    length = grid.shape[-1]
    out = torch.empty(kh, kw, m * g, c_out // g, c_in // g, dtype=delta.dtype, device=delta.device)
    for u in range(kh):
        for v in range(kw):
            offset = u * dh * width + v * dw
            torch.bmm(grid, padded[:, :, offset:offset + length].transpose(1, 2), out=out[u, v])
    return out.permute(2, 3, 4, 0, 1).reshape(m, c_out, -1)


def conv_cost(conv: nn.Conv2d, delta: torch.Tensor) -> tuple[int, int, int]:
    """(explicit flops, Gram-trick flops, Gram-trick elements) of a convolution's weight share."""
    m, c_out = delta.shape[:2]
    positions = delta[0, 0].numel()
    k, g = conv.weight[0].numel(), conv.groups
    return (m * positions * c_out * k + m * m * c_out * k, (m * positions) ** 2 * (g * k + c_out + g),
            g * (m * positions) ** 2)


def _gram(v: torch.Tensor) -> torch.Tensor:
    """(..., n, n) float64 inner products of the rows of v: (..., n, d)."""
    v = v.double()
    return v @ v.transpose(-1, -2)


def _pair_sum(k: torch.Tensor, m: int, steps: int) -> torch.Tensor:
    """(m T, m T) -> (m, m): the sum over both position indices."""
    return k.reshape(m, steps, m, steps).sum((1, 3))


def conv_gram_trick(conv: nn.Conv2d, a: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """A convolution weight's share of Theta without per-sample gradients: (m, m) float64,
    Theta_ij = sum_g sum_{t,s} (delta_it^g . delta_js^g)(U_it^g . U_js^g), U = a's unfolded patches."""
    m, c_out = delta.shape[:2]
    g = conv.groups
    patches = F.unfold(a, conv.kernel_size, conv.dilation, conv.padding, conv.stride)  # (m, C_in kh kw, T)
    steps = patches.shape[-1]
    u = patches.reshape(m, g, -1, steps).permute(1, 0, 3, 2).reshape(g, m * steps, -1)
    d = delta.reshape(m, g, c_out // g, steps).permute(1, 0, 3, 2).reshape(g, m * steps, -1)
    return _pair_sum((_gram(u) * _gram(d)).sum(0), m, steps)


def linear_weight_share(a: torch.Tensor, delta: torch.Tensor, contraction: str) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """A linear weight's share of Theta from a: (m, ..., d_in) and delta: (m, ..., d_out):
    (per-sample gradients (m, d_out, d_in), None) explicitly, or (None, (m, m) float64) by the trick."""
    m = delta.shape[0]
    d = delta.reshape(m, -1, delta.shape[-1])
    x = a.reshape(m, -1, a.shape[-1])
    steps, d_out, d_in = d.shape[1], d.shape[2], x.shape[2]
    explicit = m * steps * d_in * d_out + m * m * d_in * d_out
    trick = (m * steps) ** 2 * (d_in + d_out + 1)
    if choose_gram_trick(contraction, explicit, trick, (m * steps) ** 2):
        return None, _pair_sum(_gram(d.reshape(m * steps, -1)) * _gram(x.reshape(m * steps, -1)), m, steps)
    return torch.bmm(d.transpose(1, 2), x), None
