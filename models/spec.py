"""The network's architecture as plain data, importable without TensorFlow."""
from __future__ import annotations

from dataclasses import dataclass

from anomalyd.models.features import N_FEATURES


@dataclass(frozen=True)
class NetworkSpec:
    """Architecture of the network (stored in every artifact)."""

    units: tuple[int, ...] = (32,)
    n_features: int = N_FEATURES

    def __post_init__(self) -> None:
        if not self.units or any(int(u) < 1 for u in self.units):
            raise ValueError(f"units must be a non-empty list of positive integers, got {self.units!r}")
        object.__setattr__(self, "units", tuple(int(u) for u in self.units))

    @property
    def state_width(self) -> int:
        return sum(self.units)

    def to_dict(self) -> dict:
        return {"units": list(self.units), "n_features": self.n_features}

    @classmethod
    def from_dict(cls, data: dict) -> "NetworkSpec":
        return cls(units=tuple(data["units"]), n_features=int(data["n_features"]))
