"""The journal: a write-ahead log of accepted readings since the last checkpoint.

Each decoded message is appended as one record before its readings are queued for scoring.
A plain ``write`` hands the record to the kernel, so a killed process loses nothing; a group
``fsync`` every ``fsync_interval`` seconds bounds what a power loss can take. The journal is
split into numbered segment files; a checkpoint records the position (segment, offset) up to
which its state includes readings, the journal starts a new segment, and once the checkpoint
is safely on disk every older segment is deleted.

Record layout (little-endian): magic u32, payload length u32, CRC-32 of the payload u32, then
the payload: count u32, arrival f64, ts f64[count], values f64[count], sensor ids as UTF-8
joined by newlines. A record with count 0 and one id is a control reset of that sensor. A torn
record at the end (a crash mid-write) fails its CRC and ends replay of its segment.
"""
from __future__ import annotations

import os
import re
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from anomalyd.daemon.fsutil import fsync_dir
MAGIC = 0x4A4E4C31  # "JNL1"
_HEADER = struct.Struct("<III")
_COUNT = struct.Struct("<Id")
_SEGMENT = re.compile(r"^journal-(\d{12})\.log$")


@dataclass(frozen=True, order=True)
class Position:
    segment: int
    offset: int

    def to_dict(self) -> dict:
        return {"segment": self.segment, "offset": self.offset}

    @classmethod
    def from_dict(cls, data: dict) -> "Position":
        return cls(int(data["segment"]), int(data["offset"]))


START = Position(0, 0)


@dataclass
class Record:
    position: Position  # where the record ends
    arrival: float
    sensors: list[str]
    ts: np.ndarray
    values: np.ndarray
    reset: str | None = None  # a control reset of this sensor instead of readings


def encode(sensors: list[str], ts: list[float], values: list[float], arrival: float,
           reset: str | None = None) -> bytes:
    n = len(sensors)
    ids = reset if reset is not None else "\n".join(sensors)
    payload = b"".join((_COUNT.pack(n, arrival), np.asarray(ts, "<f8").tobytes(),
                        np.asarray(values, "<f8").tobytes(), ids.encode()))
    return _HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def segment_path(directory: Path, segment: int) -> Path:
    return directory / f"journal-{segment:012d}.log"


def segments(directory: Path) -> list[int]:
    found = []
    for entry in os.listdir(directory) if directory.exists() else ():
        match = _SEGMENT.match(entry)
        if match:
            found.append(int(match.group(1)))
    return sorted(found)


class Journal:
    """Appends from the network thread; rotation, fsync and trimming from others."""

    def __init__(self, directory: Path, fsync_interval: float = 1.0) -> None:
        self.directory = Path(directory)
        self.fsync_interval = fsync_interval
        self._lock = threading.Lock()
        existing = segments(self.directory)
        self._segment = (existing[-1] + 1) if existing else 1
        self._first_segment = self._segment
        self._fd = self._open(self._segment)
        self._offset = 0
        self._dirty = False
        self.failures = 0

    def _open(self, segment: int) -> int:
        fd = os.open(segment_path(self.directory, segment), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        fsync_dir(self.directory)
        return fd

    @property
    def position(self) -> Position:
        with self._lock:
            return Position(self._segment, self._offset)

    @property
    def first_segment(self) -> int:
        """The segment this process started writing: older ones are what replay reads."""
        return self._first_segment

    def append(self, sensors: list[str], ts: list[float], values: list[float], arrival: float,
               reset: str | None = None) -> Position:
        """Write one message's readings (or a control reset); returns the position just after
        them. Raises OSError when the disk refuses (the caller counts it and keeps scoring)."""
        record = encode(sensors, ts, values, arrival, reset)
        with self._lock:
            written = os.write(self._fd, record)
            if written != len(record):  # a full disk can write part of a record: undo it
                os.ftruncate(self._fd, self._offset)
                raise OSError(28, "short write to the journal")
            self._offset += written
            self._dirty = True
            return Position(self._segment, self._offset)

    def sync(self) -> None:
        """The group fsync: make everything appended so far survive a power loss."""
        with self._lock:
            if not self._dirty:
                return
            fd, self._dirty = self._fd, False
        os.fsync(fd)

    def rotate(self) -> Position:
        """Start a new segment; returns its start. Called when a checkpoint is taken."""
        with self._lock:
            old = self._fd
            self._segment += 1
            self._fd = self._open(self._segment)
            self._offset = 0
            new = Position(self._segment, 0)
        os.fsync(old)
        os.close(old)
        return new

    def trim(self, keep_from: Position) -> int:
        """Delete segments wholly before ``keep_from``; returns the bytes freed."""
        freed = 0
        for segment in segments(self.directory):
            if segment < keep_from.segment:
                path = segment_path(self.directory, segment)
                freed += path.stat().st_size
                path.unlink()
        return freed

    def size(self) -> int:
        return sum(segment_path(self.directory, s).stat().st_size for s in segments(self.directory))

    def close(self) -> None:
        with self._lock:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1


def replay(directory: Path, start: Position = START, before_segment: int | None = None) -> Iterator[Record]:
    """Every intact record from ``start`` on, across segments (up to ``before_segment``,
    exclusive: the segment the running process writes), in order.

    A record that fails its checks ends its segment (a torn tail after a crash); later
    segments are still read, since a new process always starts a new segment.
    """
    for segment in segments(Path(directory)):
        if segment < start.segment:
            continue
        if before_segment is not None and segment >= before_segment:
            return
        offset = start.offset if segment == start.segment else 0
        yield from _read_segment(segment_path(Path(directory), segment), segment, offset)


def _read_segment(path: Path, segment: int, offset: int) -> Iterator[Record]:
    data = path.read_bytes()
    while offset + _HEADER.size <= len(data):
        magic, length, crc = _HEADER.unpack_from(data, offset)
        start = offset + _HEADER.size
        payload = data[start:start + length]
        if magic != MAGIC or len(payload) != length or zlib.crc32(payload) != crc:
            return
        offset = start + length
        yield _decode(payload, Position(segment, offset))


def _decode(payload: bytes, position: Position) -> Record:
    n, arrival = _COUNT.unpack_from(payload, 0)
    base = _COUNT.size
    ts = np.frombuffer(payload, "<f8", n, base)
    values = np.frombuffer(payload, "<f8", n, base + 8 * n)
    ids = payload[base + 16 * n:].decode()
    if n == 0:
        return Record(position, arrival, [], ts.astype(np.float64), values.astype(np.float64), ids or None)
    return Record(position, arrival, ids.split("\n"), ts.astype(np.float64), values.astype(np.float64))

