"""The autograd functions the fast NTK pass (:mod:`searchkit.metrics.ntk_fast`) runs known layers with.

Each keeps only what its input gradient needs, with the layer's parameters as constants (the
pass computes parameter gradients per sample itself), and returns the gradient in its input's
memory format, as autograd's own convolution does: elementwise kernels on mixed layouts
(channels_last activations, contiguous gradients) are several times slower.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from searchkit.metrics.ntk_contractions import memory_format


class ReLUKeepingInput(torch.autograd.Function):
    """relu(x) that saves x rather than its output: the inputs of a node's several ReLUs are one tensor."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return torch.relu(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return torch.ops.aten.threshold_backward(grad.contiguous(memory_format=memory_format(x)), x, 0)


class FrozenNorm(torch.autograd.Function):
    """BatchNorm with constant statistics and affine weights: the fused evaluation kernel forward
    (output in x's memory format), backward grad * scale (scale = weight / sqrt(var + eps)); saves
    only the scale."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, module: nn.Module, mean: torch.Tensor, var: torch.Tensor,
                scale: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(scale)
        ctx.layout = memory_format(x)
        weight = None if module.weight is None else module.weight.detach()
        bias = None if module.bias is None else module.bias.detach()
        return F.batch_norm(x, mean, var, weight, bias, False, 0.0, module.eps)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (scale,) = ctx.saved_tensors
        grad = grad.contiguous(memory_format=ctx.layout)
        return grad * scale.view((1, -1) + (1,) * (grad.dim() - 2)), None, None, None, None


class ConvInputGradOnly(torch.autograd.Function):
    """conv2d(x, W, b) with constant W, b that saves W only (its backward needs no x)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, conv: nn.Conv2d) -> torch.Tensor:
        ctx.save_for_backward(weight)
        ctx.conf = (x.shape, memory_format(x), conv.stride, conv.padding, conv.dilation, conv.groups)
        return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (weight,) = ctx.saved_tensors
        shape, layout, stride, padding, dilation, groups = ctx.conf
        like = torch.empty(shape, dtype=grad.dtype, device=grad.device, memory_format=layout)  # shape, layout only
        return torch.ops.aten.convolution_backward(grad.contiguous(memory_format=layout), like, weight, None, stride,
                                                   padding, dilation, False, [0, 0], groups,
                                                   [True, False, False])[0], None, None, None
