"""Small shared test doubles."""
import torch
from torch.utils.data import Dataset


class PlainData(Dataset):
    """Map-style dataset yielding (x (C,H,W) float32, y int); no ``.tensors()`` fast path."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i], int(self.y[i])


def drive(strategy, score, accuracy, extras=None):
    """The engine's ask/tell protocol without the engine, on synthetic oracles: ``score(arch)``,
    ``accuracy(arch)`` and optional ``extras(arch) -> dict``. Returns the validated
    (arch, accuracy) sequence."""
    from searchkit.strategies import Validate

    validated = []
    while True:
        asks = strategy.ask()
        if not asks:
            return validated
        for item in asks:
            if isinstance(item, Validate):
                value = accuracy(item.arch)
                strategy.tell_validation(item.arch, value)
                validated.append((item.arch, value))
            else:
                if extras is not None:
                    strategy.tell_extras(item, extras(item))
                strategy.tell(item, score(item))
