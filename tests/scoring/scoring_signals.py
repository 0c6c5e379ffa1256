"""Ordinary synthetic signals for the scorer's sanity checks (NumPy only, deterministic).

Four families, each with white measurement noise, at random scales (1e-3 .. 1e6) and offsets:
seasonal (a cycle of 100-1440 readings with a harmonic), random walk (Ornstein-Uhlenbeck,
time constant 50-1000 readings), sawtooth and square wave (20-200 readings per cycle). Every
series also carries its ``sigma``: the unpredictable part of one reading (the noise, plus the
random walk's innovation), the unit in which spike sizes are given.
"""
from __future__ import annotations

import numpy as np

FAMILIES = ("seasonal", "random_walk", "sawtooth", "square")


def ordinary_signals(per_family: int, length: int, seed: int, period: float = 60.0):
    """Returns (series, families, sigmas): series is a list of (ts, values)."""
    rng = np.random.default_rng(seed)
    series, families, sigmas = [], [], []
    for family in FAMILIES:
        for _ in range(per_family):
            t = np.arange(length)
            ts = 1.6e9 + period * (t + rng.uniform(-0.1, 0.1, length))
            scale = 10.0 ** rng.uniform(-3, 6)
            offset = rng.uniform(-10, 10) * scale
            noise = rng.uniform(0.01, 0.2)
            sigma = noise
            if family == "seasonal":
                cycle = rng.choice([100, 288, 1440])
                phase = rng.uniform(0, 2 * np.pi)
                clean = np.sin(2 * np.pi * t / cycle + phase) + 0.3 * np.sin(4 * np.pi * t / cycle + phase)
            elif family == "random_walk":
                a = np.exp(-1.0 / rng.uniform(50, 1000))
                innovation = np.sqrt(1 - a * a)
                steps = rng.normal(0.0, innovation, length)
                clean = np.empty(length)
                level = rng.normal()
                for i in range(length):
                    level = a * level + steps[i]
                    clean[i] = level
                sigma = np.hypot(noise, innovation)
            elif family == "sawtooth":
                clean = 2 * np.mod(t / rng.uniform(20, 200) + rng.uniform(), 1.0) - 1
            else:
                duty = rng.uniform(0.2, 0.8)
                clean = np.where(np.mod(t / rng.uniform(20, 200) + rng.uniform(), 1.0) < duty, 1.0, -1.0)
            values = clean + noise * rng.normal(size=length)
            series.append((ts, values * scale + offset))
            families.append(family)
            sigmas.append(sigma * scale)
    return series, families, np.array(sigmas)


def with_one_spike(series, sigmas, size: float | tuple[float, float], first: int, seed: int):
    """A copy of every series with one spike of ``size`` sigmas (or uniform in a (low, high)
    range; random sign) at a random position from ``first`` on; returns (series, positions)."""
    rng = np.random.default_rng(seed)
    low, high = size if isinstance(size, tuple) else (size, size)
    spiked, positions = [], []
    for (ts, values), sigma in zip(series, sigmas):
        position = int(rng.integers(first, len(values) - 10))
        values = values.copy()
        values[position] += rng.choice([-1.0, 1.0]) * rng.uniform(low, high) * sigma
        spiked.append((ts, values))
        positions.append(position)
    return spiked, np.array(positions)
