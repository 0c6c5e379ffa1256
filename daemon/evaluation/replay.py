"""Offline, strictly causal replay of series through the daemon's own detection core.

All series advance together, one reading of each per tick, so one engine call serves every
series at once; the detector cannot see a reading before its tick. Readings the daemon would
refuse (a duplicate or out-of-order timestamp, a non-finite value) get no score from it; the
replay reports them as score 0, flag false, so that every input row has an output row.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anomalyd.daemon.detector import Detector


@dataclass
class SeriesScores:
    score: np.ndarray
    anomaly: np.ndarray
    warmup: np.ndarray
    prediction: np.ndarray
    rejected: np.ndarray  # True where the daemon would have refused the reading


def replay(detector: Detector, names: list[str], series: list[tuple[np.ndarray, np.ndarray]],
           predictions: list[np.ndarray] | None = None) -> list[SeriesScores]:
    """Score every (ts, values) series; ``names`` become the sensor ids. With ``predictions``
    (one array per series, aligned with its values), each reading is judged against that
    instead of the model's prediction (see ``Detector.set_predictions``)."""
    lengths = np.array([len(ts) for ts, _ in series], np.int64)
    n, steps = len(series), int(lengths.max(initial=0))
    ts_grid, value_grid = np.zeros((n, steps)), np.zeros((n, steps))
    for i, (ts, values) in enumerate(series):
        ts_grid[i, :len(ts)], value_grid[i, :len(values)] = ts, values
    if predictions is not None:
        prediction_grid = np.full((n, steps), np.nan)
        for i, given in enumerate(predictions):
            prediction_grid[i, :len(given)] = given
    score, prediction = np.zeros((n, steps)), np.full((n, steps), np.nan)
    anomaly, warmup, rejected = (np.zeros((n, steps), bool) for _ in range(3))
    order = np.argsort(-lengths, kind="stable")  # active series are a prefix of this order
    for t in range(steps):
        active = order[:np.searchsorted(-lengths[order], -t, side="left")]
        sensors = [names[i] for i in active]
        if predictions is not None:
            detector.set_predictions(sensors, prediction_grid[active, t])
        result = detector.process(sensors, ts_grid[active, t], value_grid[active, t],
                                  now=float(ts_grid[active, t].max()))
        rows = active[result.index]
        score[rows, t], anomaly[rows, t], warmup[rows, t] = result.score, result.anomaly, result.warmup
        prediction[rows, t] = result.prediction
        rejected[active[[index for index, _ in result.rejected]], t] = True
    return [SeriesScores(score[i, :k], anomaly[i, :k], warmup[i, :k], prediction[i, :k], rejected[i, :k])
            for i, k in enumerate(lengths)]
