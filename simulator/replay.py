"""Replay of ``timestamp,value`` CSV files (e.g. the NAB corpus) as a source of readings.

One sensor per file; its id is the file name without extension, sanitised to
``[A-Za-z0-9_.-]+`` (other characters become ``_``; clashes get ``_2``, ``_3``...).
Timestamps may be epoch seconds or ISO-8601 date-times (``2013-07-04 00:00:00``, read as
UTC). A header row is recognised by a non-numeric first line; columns named ``timestamp``
and ``value`` are used if present, else the first two. Rows that do not parse, or carry a
non-finite value, are skipped and counted. All files are merged by timestamp (stable: ties
keep file order, then row order) so readings are published in time order.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .fleet import Tick

_INVALID_ID_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


def sanitize_sensor_id(name: str) -> str:
    return _INVALID_ID_CHARS.sub("_", name) or "sensor"


def find_csv_files(path: str | Path) -> list[Path]:
    """The CSV file itself, or every ``*.csv`` below a directory, in sorted order."""
    p = Path(path)
    if p.is_file():
        return [p]
    if p.is_dir():
        files = sorted(f for f in p.rglob("*.csv") if f.is_file())
        if files:
            return files
        raise FileNotFoundError(f"no .csv files under {p}")
    raise FileNotFoundError(f"replay path not found: {p}")


@dataclass
class Series:
    ts: np.ndarray
    values: np.ndarray
    skipped: int = 0


def parse_timestamps(raw: list[str]) -> np.ndarray:
    """Epoch seconds (float) for numbers or ISO date-times; NaN where neither parses."""
    out = np.full(len(raw), np.nan)
    for i, text in enumerate(raw):
        text = text.strip()
        try:
            out[i] = float(text)
        except ValueError:
            try:
                out[i] = np.datetime64(text.rstrip("Z"), "ms").astype(np.int64) / 1000.0
            except ValueError:
                pass
    return out


def load_csv(path: str | Path) -> Series:
    with open(path, newline="") as fh:
        rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    if not rows:
        return Series(np.zeros(0), np.zeros(0))
    t_col, v_col = 0, 1
    if not _is_number(rows[0][1] if len(rows[0]) > 1 else ""):
        header = [c.strip().lower() for c in rows[0]]
        t_col = header.index("timestamp") if "timestamp" in header else 0
        v_col = header.index("value") if "value" in header else 1
        rows = rows[1:]
    width = max(t_col, v_col) + 1
    rows_ok = [r for r in rows if len(r) >= width]
    ts = parse_timestamps([r[t_col] for r in rows_ok])
    values = np.array([_to_float(r[v_col]) for r in rows_ok])
    good = np.isfinite(ts) & np.isfinite(values)
    return Series(ts[good], values[good], skipped=len(rows) - int(good.sum()))


def _is_number(text: str) -> bool:
    return np.isfinite(_to_float(text))


def _to_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def unique_ids(files: list[Path]) -> list[str]:
    seen: Counter[str] = Counter()
    ids = []
    for f in files:
        base = sanitize_sensor_id(f.stem)
        seen[base] += 1
        ids.append(base if seen[base] == 1 else f"{base}_{seen[base]}")
    return ids


@dataclass
class ReplaySource:
    """Merged readings of CSV files, handed out by ``readings_until`` like a Fleet."""

    sensor_ids: list[str]
    sensor: np.ndarray
    ts: np.ndarray
    value: np.ndarray
    skipped: int = 0
    injected: Counter = field(default_factory=Counter)  # replay injects nothing
    _pos: int = 0
    _time: float = 0.0

    @classmethod
    def from_path(cls, path: str | Path, start_ts: float | None = None, id_prefix: str = "") -> "ReplaySource":
        """Load every CSV; with ``start_ts`` timestamps are shifted so the earliest reading
        of all files falls on it (relative spacing kept). Ids are ``id_prefix`` + file id."""
        files = find_csv_files(path)
        series = [load_csv(f) for f in files]
        sensor = np.concatenate([np.full(len(s.ts), i, np.int32) for i, s in enumerate(series)])
        ts = np.concatenate([s.ts for s in series])
        value = np.concatenate([s.values for s in series])
        if len(ts) == 0:
            raise ValueError(f"no readable rows in {path}")
        order = np.argsort(ts, kind="stable")
        ts = ts[order]
        if start_ts is not None:
            ts = np.round(ts - ts[0] + start_ts, 3)
        ids = [id_prefix + i for i in unique_ids(files)]
        src = cls(ids, sensor[order], ts, value[order], sum(s.skipped for s in series))
        src._time = float(ts[0])
        return src

    @property
    def start_ts(self) -> float:
        return float(self.ts[0])

    @property
    def end_ts(self) -> float:
        """Just past the last reading, so readings_until(end_ts) returns everything."""
        return float(np.nextafter(self.ts[-1], np.inf))

    @property
    def time(self) -> float:
        return self._time

    @property
    def readings_per_second(self) -> float:
        span = self.ts[-1] - self.ts[0]
        return len(self.ts) / span if span > 0 else float(len(self.ts))

    def readings_until(self, t_end: float) -> Tick:
        stop = int(np.searchsorted(self.ts, t_end, side="left"))
        start, self._pos = self._pos, max(self._pos, stop)
        self._time = max(self._time, t_end)
        sl = slice(start, self._pos)
        return Tick(self.sensor[sl], self.ts[sl], self.value[sl])
