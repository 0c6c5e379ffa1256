"""The slot table: every sensor's state in contiguous arrays, one row per sensor.

Each field (LSTM h and c, normaliser and scorer statistics, ...) is one array of shape
[capacity, *field_shape]. A sensor owns a row from its first reading until it is released;
released rows are reused first. Capacity is a hard limit: the table refuses a newcomer rather
than grow. Arrays are allocated zeroed and untouched pages cost no memory, so a large capacity
is cheap until sensors arrive; a row's fields are written with their initial values when the
row is assigned or reset, never implicitly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np


@dataclass(frozen=True)
class Field:
    shape: tuple[int, ...]
    dtype: type
    initial: float = 0.0


class SlotTable:
    def __init__(self, capacity: int, fields: dict[str, Field]) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.fields = dict(fields)
        self.arrays = {name: np.zeros((capacity, *f.shape), f.dtype) for name, f in self.fields.items()}
        self._row_of: dict[str, int] = {}
        self._id_of: list[str | None] = []  # grows to the high-water mark, never past capacity
        self._free: list[int] = []

    def __len__(self) -> int:
        return len(self._row_of)

    def __contains__(self, sensor_id: str) -> bool:
        return sensor_id in self._row_of

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    @property
    def high_water(self) -> int:
        """Rows ever used; arrays beyond this have never been touched."""
        return len(self._id_of)

    def row(self, sensor_id: str) -> int | None:
        return self._row_of.get(sensor_id)

    def rows_of(self, sensor_ids: Iterable[str]) -> list[int | None]:
        """``row`` for many ids at once (a tick's worth: one C-level loop)."""
        return list(map(self._row_of.get, sensor_ids))

    def sensor(self, row: int) -> str | None:
        return self._id_of[row] if row < len(self._id_of) else None

    def items(self) -> Iterator[tuple[str, int]]:
        return iter(self._row_of.items())

    def active_rows(self) -> np.ndarray:
        return np.fromiter(self._row_of.values(), np.int64, len(self._row_of))

    def assign(self, sensor_id: str) -> int | None:
        """Give ``sensor_id`` a fresh row (its existing one if it has one); None when full."""
        row = self._row_of.get(sensor_id)
        if row is not None:
            return row
        if self._free:
            row = self._free.pop()
        elif len(self._id_of) < self.capacity:
            row = len(self._id_of)
            self._id_of.append(None)
        else:
            return None
        self._row_of[sensor_id] = row
        self._id_of[row] = sensor_id
        self.reset([row])
        return row

    def release(self, sensor_id: str) -> int | None:
        """Free the sensor's row for reuse; returns the row (None if unknown)."""
        row = self._row_of.pop(sensor_id, None)
        if row is not None:
            self._id_of[row] = None
            self._free.append(row)
        return row

    def reset(self, rows: Iterable[int] | np.ndarray, fields: Iterable[str] | None = None) -> None:
        """Write the initial values into the given rows; every other row is untouched."""
        rows = np.asarray(list(rows) if not isinstance(rows, np.ndarray) else rows, np.int64)
        for name in fields if fields is not None else self.fields:
            self.arrays[name][rows] = self.fields[name].initial

    def gather(self, name: str, rows: np.ndarray) -> np.ndarray:
        return self.arrays[name][rows]

    def scatter(self, name: str, rows: np.ndarray, values: np.ndarray) -> None:
        self.arrays[name][rows] = values

    def restore(self, rows_by_id: dict[str, int], arrays: dict[str, np.ndarray]) -> None:
        """Replace the whole table (sensor map and the first rows of every array) from a
        snapshot; rows not named in ``rows_by_id`` become free."""
        high_water = int(max(rows_by_id.values(), default=-1)) + 1
        if high_water > self.capacity:
            raise ValueError(f"snapshot needs {high_water} rows, capacity is {self.capacity}")
        for name, array in self.arrays.items():
            array[:high_water] = arrays[name][:high_water]
        self._row_of = dict(rows_by_id)
        self._id_of = [None] * high_water
        for sensor_id, row in self._row_of.items():
            self._id_of[row] = sensor_id
        self._free = [row for row in range(high_water - 1, -1, -1) if self._id_of[row] is None]


def batch_plan(rows: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Order pending readings into engine batches.

    ``rows`` holds the slot row of each pending reading, already in arrival (timestamp) order
    per sensor. Returns lists of reading indices: within one batch every row appears at most
    once; the k-th reading of each sensor goes in round k, so a sensor's readings are stepped
    in order; a round with more rows than ``batch_size`` is split into several batches.
    """
    if len(rows) == 0:
        return []
    order = np.argsort(rows, kind="stable")
    sorted_rows = rows[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_rows)) + 1]
    run_lengths = np.diff(np.r_[starts, len(rows)])
    rank = np.arange(len(rows)) - np.repeat(starts, run_lengths)  # k within its sensor
    by_round = order[np.lexsort((sorted_rows, rank))]
    round_of = np.sort(rank)
    batches = []
    for round_indices in np.split(by_round, np.flatnonzero(np.diff(round_of)) + 1):
        batches.extend(np.split(round_indices, range(batch_size, len(round_indices), batch_size)))
    return batches
