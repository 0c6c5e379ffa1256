"""Counter-based random numbers: a value is a pure function of (seed, stream, keys...).

Why not ``numpy.random.Generator``: a stream generator hands out numbers in call order, so
the value of sensor 7's 1000th reading would depend on how readings were grouped into
ticks (wall-clock dependent), on how many sensors exist, and on which other features were
enabled. Hashing (seed, stream, sensor, sample index) instead makes every number
reproducible regardless of batching, fleet size or enabled features, and is fully
vectorised (a few uint64 operations per number, ~10 ns each).

The mixer is SplitMix64's finaliser, which passes BigCrush as a counter-based generator;
plenty for simulated sensor noise.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Stream(IntEnum):
    """One id per independent random quantity, so no two features ever share numbers."""

    FAMILY = 1
    PERIOD = 2
    PHASE = 3
    JITTER_MAX = 4
    SCALE = 5
    OFFSET = 6
    OFFSET_SIGN = 7
    NOISE = 8
    SHAPE_A = 9
    SHAPE_B = 10
    SHAPE_C = 11
    SHAPE_D = 12
    SHAPE_E = 13
    SHAPE_F = 14
    SHAPE_G = 15
    SAMPLE_JITTER = 20
    SAMPLE_NOISE = 21
    SAMPLE_MISSING = 22
    SAMPLE_INNOVATION = 23
    SAMPLE_RESET = 24
    REGIME = 25
    ANOMALY_HAS = 30
    ANOMALY_KIND = 31
    ANOMALY_DURATION = 32
    ANOMALY_OFFSET = 33
    ANOMALY_SIGN = 34
    ANOMALY_FACTOR = 35
    ANOMALY_NOISE = 36
    CHURN_JOIN = 40
    CHURN_JOIN_AT = 41
    CHURN_LEAVE = 42
    CHURN_LEAVE_AT = 43


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_TWO_PI = 2.0 * np.pi


def _mix(x: np.ndarray) -> np.ndarray:
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def hash64(seed: int, stream: int, *keys: np.ndarray | int) -> np.ndarray:
    """uint64 hash of (seed, stream, keys...), broadcasting the keys like numpy does."""
    with np.errstate(over="ignore"):  # wrap-around multiplication is the point
        h = _mix(np.asarray((seed * 0x9E3779B97F4A7C15 + stream) & 0xFFFFFFFFFFFFFFFF, np.uint64))
        for key in keys:
            k = np.asarray(key).astype(np.uint64)  # negative ints wrap, still distinct
            h = _mix(h + _GOLDEN + k * _M2)
    return h


def uniform(seed: int, stream: int, *keys: np.ndarray | int) -> np.ndarray:
    """Uniform floats in [0, 1) with 53 random bits."""
    return (hash64(seed, stream, *keys) >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)


def normal(seed: int, stream: int, *keys: np.ndarray | int) -> np.ndarray:
    """Standard normal floats (Box-Muller on two independent uniforms)."""
    u1 = uniform(seed, stream, *keys)
    u2 = uniform(seed, stream ^ 0x5BD1E995, *keys)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(_TWO_PI * u2)


def integers(seed: int, stream: int, high: int, *keys: np.ndarray | int) -> np.ndarray:
    """Integers in [0, high)."""
    return (uniform(seed, stream, *keys) * high).astype(np.int64)


def log_uniform(seed: int, stream: int, low: float, high: float, *keys: np.ndarray | int) -> np.ndarray:
    """Values spread evenly in log space between low and high (scales, durations)."""
    u = uniform(seed, stream, *keys)
    return np.exp(np.log(low) + u * (np.log(high) - np.log(low)))
