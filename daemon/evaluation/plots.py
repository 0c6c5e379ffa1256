"""Diagnostic plots of one series: signal with labelled windows and detections, and its score.

matplotlib is an optional dependency (extra ``plot``), so it is imported inside the function.
The figure is drawn on an explicit Agg canvas rather than through ``pyplot``: no global
figure registry, no backend switching, safe in a headless daemon or a test run.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np


def _as_plot_x(ts: Sequence) -> np.ndarray:
    """Timestamps as matplotlib accepts them: datetime64 stays, strings are parsed."""
    arr = np.asarray(ts)
    if arr.dtype.kind in "US":
        return arr.astype("datetime64[us]")
    return arr


def _detection_index(detections: Sequence | None, n: int) -> np.ndarray:
    """A boolean mask (length n) or an array of row indices, as row indices."""
    if detections is None:
        return np.zeros(0, dtype=np.int64)
    det = np.asarray(detections)
    if det.dtype == bool:
        if len(det) != n:
            raise ValueError("a boolean detections mask must have one entry per reading")
        return np.flatnonzero(det)
    return det.astype(np.int64)


def plot_series(
    path: str | os.PathLike[str],
    ts: Sequence,
    values: Sequence[float],
    scores: Sequence[float],
    threshold: float | None,
    windows: Sequence[tuple] = (),
    detections: Sequence | None = None,
    title: str = "",
) -> None:
    """Write a two-panel PNG to ``path``.

    Top: the signal, labelled anomaly ``windows`` (``(start, end)`` in the units of ``ts``)
    shaded, ``detections`` (bool mask or row indices) marked. Bottom: the anomaly score and
    the ``threshold`` line (omitted when None).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x = _as_plot_x(ts)
    values = np.asarray(values, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if not (len(x) == len(values) == len(scores)):
        raise ValueError("ts, values and scores differ in length")
    det = _detection_index(detections, len(x))

    fig = Figure(figsize=(12, 6), dpi=100)
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    top.plot(x, values, lw=0.8, color="tab:blue", label="value")
    for k, (start, end) in enumerate(windows):
        start, end = _as_plot_x([start, end])
        top.axvspan(start, end, color="tab:orange", alpha=0.25, label="labelled window" if k == 0 else None)
        bottom.axvspan(start, end, color="tab:orange", alpha=0.25)
    if det.size:
        top.scatter(x[det], values[det], marker="v", s=30, color="tab:red", zorder=3, label="detection")
    top.set_ylabel("value")
    top.set_title(title)
    top.legend(loc="upper left", fontsize="small")

    bottom.plot(x, scores, lw=0.8, color="tab:green", label="anomaly score")
    if threshold is not None:
        bottom.axhline(threshold, color="tab:red", ls="--", lw=1, label=f"threshold {threshold:.4g}")
    bottom.set_ylabel("score")
    bottom.legend(loc="upper left", fontsize="small")
    fig.autofmt_xdate()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    fig.savefig(os.fspath(path), format="png")
