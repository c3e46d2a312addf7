"""BatchNorm handling the metrics share: every module's train flag set and restored
(:func:`train_mode`), and BN buffers replaced by a batch's own statistics (:func:`batch_statistics`,
the NTK's ``bn="batchstats"``). Both are re-exported by :mod:`searchkit.metrics.ntk`."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn
from torch.func import functional_call

#: the BatchNorm layers whose statistics the metrics handle
BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@contextmanager
def train_mode(net: nn.Module, training: bool) -> Iterator[None]:
    """Set every module's training flag to ``training``; restore each module's own flag on exit."""
    previous = [(m, m.training) for m in net.modules()]
    net.train(training)
    try:
        yield
    finally:
        for module, was_training in previous:
            module.training = was_training


def batch_statistics(net: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """BN buffers replaced by the batch's own statistics (biased variance, as BN normalises).

    One train-mode forward with hooks; the network's real buffers are left untouched.
    Returns name -> tensor for every buffer, ready for ``functional_call``.
    """
    stats: dict[str, torch.Tensor] = {}
    names = {module: name for name, module in net.named_modules()}
    hooks = []

    def capture(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        dims = [0] + list(range(2, inputs[0].dim()))
        prefix = names[module] + "." if names[module] else ""
        stats[prefix + "running_mean"] = inputs[0].mean(dims).detach()
        stats[prefix + "running_var"] = inputs[0].var(dims, unbiased=False).detach()

    for module in net.modules():
        if isinstance(module, BN_TYPES):
            hooks.append(module.register_forward_pre_hook(capture))
    buffers = {k: v.detach().clone() for k, v in net.named_buffers()}
    try:
        with torch.no_grad(), train_mode(net, True):
            functional_call(net, buffers, (x,))  # clones absorb the running-stat update
    finally:
        for hook in hooks:
            hook.remove()
    buffers.update(stats)
    return buffers
