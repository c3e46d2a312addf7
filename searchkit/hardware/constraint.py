"""A hardware budget: ``{device: pixel3, latency_ms: 5}`` or ``{device: fpga, energy_mj: 1.2}``.

An architecture is feasible when its cost is at most the limit. An architecture whose cost is
unknown (NaN: HW-NAS-Bench's Edge TPU gaps) is never feasible: nothing shows that it fits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Any, Mapping

import numpy as np

from searchkit.errors import SearchkitError
from searchkit.hardware.cost_models import MEASURED_DEVICE
from searchkit.tabular.hwnas import DEVICES, UNITS, check_device, devices_text

#: config key -> quantity
LIMIT_KEYS = {"latency_ms": "latency", "energy_mj": "energy"}
_VERB = {"latency": ("runs within", "the fastest takes"), "energy": ("uses at most", "the most frugal uses")}
_HOW = f"write e.g. {{device: pixel3, latency_ms: 5}}; devices: {MEASURED_DEVICE} (latency measured here), "


def _fmt(value: float) -> str:
    return f"{value:.4g}"


@dataclass(frozen=True)
class Constraint:
    """``quantity`` (latency | energy) on ``device`` must be <= ``limit`` (ms | mJ)."""

    device: str
    quantity: str
    limit: float

    @classmethod
    def parse(cls, spec: Mapping[str, Any]) -> "Constraint":
        """From a config mapping with ``device`` and exactly one of ``latency_ms``, ``energy_mj``."""
        if not isinstance(spec, Mapping):
            raise SearchkitError(f"constraint must be a mapping, got {spec!r}; {_HOW}{devices_text()}")
        unknown = sorted(str(k) for k in spec if k != "device" and k not in LIMIT_KEYS)
        if unknown:
            raise SearchkitError(f"unknown constraint key(s) {', '.join(unknown)}; allowed: device, latency_ms, energy_mj")
        limits = [k for k in LIMIT_KEYS if k in spec]
        if len(limits) != 1:
            problem = "both latency_ms and energy_mj" if limits else "no latency_ms or energy_mj"
            raise SearchkitError(f"constraint has {problem}; give exactly one budget; {_HOW}{devices_text()}")
        if "device" not in spec or not isinstance(spec["device"], str):
            raise SearchkitError(f"constraint needs a device name; {_HOW}{devices_text()}")
        key = limits[0]
        value = spec[key]
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value <= 0:
            raise SearchkitError(f"constraint {key} must be a positive number, got {value!r}")
        return cls.of(spec["device"].strip().lower(), LIMIT_KEYS[key], float(value))

    @classmethod
    def of(cls, device: str, quantity: str, limit: float) -> "Constraint":
        """A checked constraint: the device must report the quantity (HW-NAS-Bench, or cpu latency)."""
        if device == MEASURED_DEVICE:
            if quantity != "latency":
                raise SearchkitError(
                    f"{quantity} cannot be measured on this machine's cpu; use latency_ms, or a HW-NAS-Bench device "
                    f"with {quantity}: {', '.join(d for d, qs in DEVICES.items() if quantity in qs)}"
                )
        elif device not in DEVICES:
            raise SearchkitError(f"unknown constraint device {device!r}; choose one of: {MEASURED_DEVICE} (latency "
                                 f"measured on this machine), {devices_text()}")
        else:
            check_device(device, quantity)
        return cls(device, quantity, float(limit))

    @property
    def key(self) -> str:
        """The config key of the limit: ``latency_ms`` or ``energy_mj``."""
        return f"{self.quantity}_{UNITS[self.quantity].lower()}"

    @property
    def unit(self) -> str:
        return UNITS[self.quantity]

    def as_mapping(self) -> dict[str, Any]:
        """The config form, inverse of :meth:`parse`."""
        return {"device": self.device, self.key: self.limit}

    def __str__(self) -> str:
        return f"{self.device} {self.quantity} <= {_fmt(self.limit)} {self.unit}"

    def feasible(self, costs: np.ndarray) -> np.ndarray:
        """Boolean mask, same shape as ``costs``: cost <= limit (NaN: False)."""
        with np.errstate(invalid="ignore"):
            return np.asarray(costs, dtype=np.float64) <= self.limit

    def satisfied(self, cost: float) -> bool:
        return bool(self.feasible(np.array(cost)))

    def require_achievable(self, costs: np.ndarray, what: str = "NB201 cell") -> np.ndarray:
        """The feasible mask of ``costs`` (every ``what`` there is); SearchkitError, one line, when it
        is empty, saying the smallest cost there is: "no NB201 cell runs within 0.5 ms on pixel3; the
        fastest takes 1.23 ms"."""
        costs = np.asarray(costs, dtype=np.float64)
        mask = self.feasible(costs)
        if mask.any():
            return mask
        within, best = _VERB[self.quantity]
        known = costs[~np.isnan(costs)]
        smallest = f"{best} {_fmt(float(known.min()))} {self.unit}" if len(known) else f"none has a {self.quantity} on it"
        raise SearchkitError(f"infeasible constraint {self.key}: {_fmt(self.limit)}: no {what} {within} "
                             f"{_fmt(self.limit)} {self.unit} on {self.device}; {smallest}")
