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


def replay(detector: Detector, names: list[str], series: list[tuple[np.ndarray, np.ndarray]]) -> list[SeriesScores]:
    """Score every (ts, values) series; ``names`` become the sensor ids."""
    outputs = [SeriesScores(np.zeros(len(ts)), np.zeros(len(ts), bool), np.zeros(len(ts), bool),
                            np.full(len(ts), np.nan), np.zeros(len(ts), bool)) for ts, _ in series]
    lengths = np.array([len(ts) for ts, _ in series])
    for t in range(int(lengths.max(initial=0))):
        active = np.flatnonzero(lengths > t)
        ts = np.array([series[i][0][t] for i in active])
        values = np.array([series[i][1][t] for i in active])
        result = detector.process([names[i] for i in active], ts, values, now=float(ts.max()))
        for position, index in enumerate(result.index):
            out = outputs[active[index]]
            out.score[t], out.anomaly[t] = result.score[position], result.anomaly[position]
            out.warmup[t], out.prediction[t] = result.warmup[position], result.prediction[position]
        for index, _reason in result.rejected:
            outputs[active[index]].rejected[t] = True
    return outputs
