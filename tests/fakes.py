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
