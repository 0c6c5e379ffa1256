"""Helpers for the scorer tests: a small driver for ``score`` (importable as ``scorer_driver``)."""
from __future__ import annotations

import numpy as np

from anomalyd.daemon.scoring import ScoringSettings, score, scorer_fields


def new_state(settings: ScoringSettings, n: int) -> dict[str, np.ndarray]:
    return {name: np.full((n, *field.shape), field.initial, field.dtype)
            for name, field in scorer_fields(settings).items()}


def run_scorer(settings: ScoringSettings, values: np.ndarray, predictions: np.ndarray,
               state: dict[str, np.ndarray] | None = None, elapsed: np.ndarray | None = None):
    """Score [n, T] readings against given predictions (NaN: none), all rows at once, with the
    signal's scale fixed at 1 and its mean at 0. Returns (score, anomaly, warmup), each [n, T];
    ``state``, if given, is the scorer state to start from and is left as it ends; ``elapsed``
    [n, T], if given, the seconds since each row's previous reading."""
    values, predictions = np.atleast_2d(values).astype(np.float64), np.atleast_2d(predictions).astype(np.float64)
    n, steps = values.shape
    state = new_state(settings, n) if state is None else state
    out = [np.zeros((n, steps)), np.zeros((n, steps), bool), np.zeros((n, steps), bool)]
    ones, zeros = np.ones(n), np.zeros(n)
    for t in range(steps):
        state["prediction"] = predictions[:, t].copy()
        result = score(settings, state, values[:, t], ones, zeros,
                       elapsed=None if elapsed is None else elapsed[:, t])
        for array, column in zip(out, result):
            array[:, t] = column
    return tuple(out)
