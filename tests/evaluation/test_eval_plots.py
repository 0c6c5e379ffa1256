"""The diagnostic plot writes a real PNG of the requested size."""

from __future__ import annotations

import struct

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from anomalyd.daemon.evaluation.plots import plot_series  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which must come first."""
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("time_kind", ["seconds", "datetime"])
def test_plot_series_writes_png(tmp_path, time_kind):
    n = 300
    x = np.arange(n, dtype=np.float64)
    ts = x * 60 if time_kind == "seconds" else np.datetime64("2024-01-01T00:00") + np.arange(n) * np.timedelta64(1, "m")
    values = np.sin(x / 10)
    values[150] += 4
    scores = np.clip(np.abs(np.diff(values, prepend=values[0])) / 4, 0, 1)
    windows = [(ts[140], ts[160])]
    path = tmp_path / "series.png"
    plot_series(path, ts, values, scores, 0.5, windows, scores >= 0.5, title="synthetic spike")
    data = path.read_bytes()
    assert len(data) > 10_000  # a 1200x600 chart with content, not an empty canvas
    assert png_size(data) == (1200, 600)
    assert data.rstrip(b"\x00")[-8:-4] == b"IEND"


def test_plot_series_rejects_mismatched_lengths(tmp_path):
    with pytest.raises(ValueError, match="length"):
        plot_series(tmp_path / "x.png", np.arange(5), np.zeros(5), np.zeros(4), 0.5, (), None, "")
