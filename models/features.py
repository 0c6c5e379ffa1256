"""Online, per-sensor input features shared by training and serving.

The network never sees raw values: every sensor's value is standardised by that sensor's own
running mean and variance, so one shared model serves sensors of any scale and offset. Training
runs this exact code over its series, so there is no train/serve skew.

Everything here is vectorised over rows: ``NormState`` holds one entry per sensor (or per
training series) and every function updates all given rows at once.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FEATURE_NAMES = ("z", "log_dt_ratio")
N_FEATURES = len(FEATURE_NAMES)


@dataclass(frozen=True)
class FeatureSpec:
    """How raw readings become network inputs (stored in every model artifact)."""

    norm_window: int = 2000  # horizon (readings) of the running mean/variance
    z_clip: float = 8.0  # a standardised value beyond this carries no extra information
    dt_window: int = 50  # horizon (readings) of the typical sampling interval
    dt_clip: float = 4.0  # |log(dt / typical dt)| cap
    rel_std_floor: float = 1e-4  # std floor relative to |mean|: flat signals must not divide by 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict) -> "FeatureSpec":
        return cls(**data)


# Field name -> (per-row shape, dtype, initial value). The slot table allocates these.
NORM_FIELDS: dict[str, tuple[tuple[int, ...], type, float]] = {
    "norm_count": ((), np.float64, 0.0),
    "norm_mean": ((), np.float64, 0.0),
    "norm_var": ((), np.float64, 0.0),
    "dt_log_typ": ((), np.float64, 0.0),
    "last_ts": ((), np.float64, np.nan),
}


def new_norm_state(n: int) -> dict[str, np.ndarray]:
    """Initial normaliser state for ``n`` rows (used by training and tests)."""
    return {name: np.full((n, *shape), init, dtype) for name, (shape, dtype, init) in NORM_FIELDS.items()}


def norm_std(spec: FeatureSpec, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """Standard deviation with a floor, so constant signals stay finite."""
    floor = spec.rel_std_floor * np.maximum(np.abs(mean), 1e-6)
    return np.maximum(np.sqrt(np.maximum(var, 0.0)), floor)


def running_mean_var(mean: np.ndarray, var: np.ndarray, x: np.ndarray,
                     rate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One step of a running mean and variance with weight ``rate`` on ``x`` (1/count gives
    the exact Welford estimate, a fixed rate an exponentially weighted one)."""
    delta = x - mean
    return mean + rate * delta, (1.0 - rate) * (var + rate * delta * delta)


def observe(spec: FeatureSpec, state: dict[str, np.ndarray], ts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Fold one reading per row into the running statistics (in place) and return the
    network input [n, N_FEATURES] for it.

    The mean and variance are exact (Welford) until ``norm_window`` readings, then an
    exponentially weighted estimate with that horizon, so slow level changes are followed.
    The interval feature compares this gap with the row's typical gap (log scale), so
    sensors sampled every second and every hour look alike to the network.
    """
    count = state["norm_count"] + 1.0
    alpha = 1.0 / np.minimum(count, spec.norm_window)
    state["norm_mean"], state["norm_var"] = running_mean_var(state["norm_mean"], state["norm_var"], values, alpha)
    state["norm_count"] = count

    gap = ts - state["last_ts"]
    has_gap = np.isfinite(gap) & (gap > 0)
    log_gap = np.log(np.where(has_gap, gap, 1.0))
    log_ratio = np.where(has_gap & (count > 2), log_gap - state["dt_log_typ"], 0.0)
    beta = 1.0 / np.clip(count - 1.0, 1.0, spec.dt_window)
    typ = state["dt_log_typ"] + beta * (log_gap - state["dt_log_typ"])
    state["dt_log_typ"] = np.where(has_gap, typ, state["dt_log_typ"])
    state["last_ts"] = ts

    x = np.empty((len(values), N_FEATURES), np.float32)
    x[:, 0] = to_standard(spec, state, values)
    x[:, 1] = np.clip(log_ratio, -spec.dt_clip, spec.dt_clip)
    return x


def to_standard(spec: FeatureSpec, state: dict[str, np.ndarray], values: np.ndarray) -> np.ndarray:
    """Values in the rows' current standardised frame, clipped like the inputs."""
    std = norm_std(spec, state["norm_mean"], state["norm_var"])
    return np.clip((values - state["norm_mean"]) / std, -spec.z_clip, spec.z_clip)


def from_standard(spec: FeatureSpec, state: dict[str, np.ndarray], z: np.ndarray) -> np.ndarray:
    """Inverse of ``to_standard`` (without the clip): a standardised prediction in raw units."""
    return state["norm_mean"] + norm_std(spec, state["norm_mean"], state["norm_var"]) * z
