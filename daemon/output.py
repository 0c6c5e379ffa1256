"""Score messages: one small JSON object per scored reading, or arrays of them per tick.

Formatted by hand rather than with ``json.dumps`` per reading: this runs for every reading on
the hot path, and the fields are plain numbers and a validated sensor id.
"""
from __future__ import annotations

import json
import math

import numpy as np


def _name(sensor: str) -> str:
    if sensor.isprintable() and '"' not in sensor and "\\" not in sensor:
        return sensor
    return json.dumps(sensor)[1:-1]


def _number(value: float) -> str:
    return repr(value) if math.isfinite(value) else "null"


def score_objects(sensors: list[str], ts: np.ndarray, values: np.ndarray, prediction: np.ndarray,
                  score: np.ndarray, anomaly: np.ndarray, warmup: np.ndarray,
                  replayed: np.ndarray | None = None) -> list[str]:
    """The JSON text of each scored reading, in order."""
    ts_list, value_list, pred_list = ts.tolist(), values.tolist(), prediction.tolist()
    score_list = np.round(score, 6).tolist()
    flags, warm = anomaly.tolist(), warmup.tolist()
    again = replayed.tolist() if replayed is not None else [False] * len(sensors)
    texts = []
    for i, sensor in enumerate(sensors):
        tail = ',"replayed":true}' if again[i] else "}"
        texts.append(f'{{"sensor":"{_name(sensor)}","ts":{ts_list[i]!r},"value":{value_list[i]!r},'
                     f'"prediction":{_number(pred_list[i])},"score":{score_list[i]!r},'
                     f'"anomaly":{"true" if flags[i] else "false"},"warmup":{"true" if warm[i] else "false"}{tail}')
    return texts


def batches(texts: list[str], size: int = 1000) -> list[str]:
    """JSON arrays of at most ``size`` score objects (for the per-tick batched output)."""
    return ["[" + ",".join(texts[start:start + size]) + "]" for start in range(0, len(texts), size)]
