"""Training data: series of (timestamps, values) turned into network inputs and targets.

Inputs and targets come from ``features.observe``, the code the daemon runs per reading, so
what the network is trained on is exactly what it will be served.
"""
from __future__ import annotations

import csv
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from anomalyd.models.features import N_FEATURES, FeatureSpec, new_norm_state, observe, to_standard

Series = tuple[np.ndarray, np.ndarray]  # (unix seconds, values), both 1-D, same length


def parse_timestamp(text: str) -> float:
    """Unix seconds from a number or an ISO 8601 date (naive dates are UTC, as in NAB)."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        stamp = datetime.fromisoformat(text)
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=timezone.utc)
        return stamp.timestamp()


def read_series_csv(path: Path | str) -> Series:
    """A ``timestamp,value`` CSV (header required) as float arrays."""
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"timestamp", "value"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected a header with 'timestamp' and 'value' columns")
        rows = [(parse_timestamp(row["timestamp"]), float(row["value"])) for row in reader]
    if not rows:
        raise ValueError(f"{path}: no rows")
    ts, values = (np.array(column, np.float64) for column in zip(*rows))
    return ts, values


def featurize(spec: FeatureSpec, series: list[Series]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs [n, T, F], next-value targets [n, T] and validity [n, T] for each series.

    Series are stepped in parallel (vectorised across series); shorter ones are padded and
    marked invalid. The target at t is reading t+1 in the standardised frame of step t, which
    is how the daemon scores reading t+1 against the prediction made at step t.
    """
    n, length = len(series), max(len(values) for _, values in series)
    ts = np.full((n, length), np.nan)
    values = np.zeros((n, length))
    valid = np.zeros((n, length), bool)
    for index, (series_ts, series_values) in enumerate(series):
        ts[index, :len(series_ts)] = series_ts
        values[index, :len(series_values)] = series_values
        valid[index, :len(series_values) - 1] = True  # the last reading has no target
    state = new_norm_state(n)
    inputs = np.zeros((n, length, N_FEATURES), np.float32)
    targets = np.zeros((n, length), np.float32)
    for t in range(length - 1):
        inputs[:, t] = observe(spec, state, ts[:, t], values[:, t])
        targets[:, t] = to_standard(spec, state, values[:, t + 1])
    return inputs, targets, valid


def windows(inputs: np.ndarray, targets: np.ndarray, valid: np.ndarray, length: int,
            burn_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut featurised series into non-overlapping windows for truncated backpropagation.

    Each window starts from a zero state, so its first ``burn_in`` steps carry no loss: the
    network is judged only once it has seen some history, as in serving after warm-up.
    """
    n, total, features = inputs.shape
    count = total // length
    shape = (n * count, length)
    x = inputs[:, :count * length].reshape(*shape, features)
    y = targets[:, :count * length].reshape(shape)
    weight = valid[:, :count * length].reshape(shape).astype(np.float32)
    weight[:, :burn_in] = 0.0
    keep = weight.sum(axis=1) > 0
    return x[keep], y[keep], weight[keep]
