"""Training and evaluating networks under named protocols."""
from searchkit.train.trainer import (
    PROTOCOLS,
    Protocol,
    TrainResult,
    augment_batch,
    evaluate,
    get_protocol,
    train,
)

__all__ = [
    "PROTOCOLS",
    "Protocol",
    "TrainResult",
    "augment_batch",
    "evaluate",
    "get_protocol",
    "train",
]
