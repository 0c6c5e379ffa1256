"""Checkpoints: every sensor's state in one self-checking file, written atomically.

File layout: ``MAGIC``, u64 length of a JSON header, the header (sensor table, field list
with dtype/shape/offset, model fingerprint, semantic settings, journal position, creation
time), the raw field arrays, and a SHA-256 of everything before it. Written to a temporary
file in the same directory, flushed, fsynced, renamed over ``checkpoint-<seq>.ckpt``, and the
directory fsynced; the newest ``keep`` files are kept. A reader trusts a file only if its
checksum matches, so a torn or corrupted file is detected and the previous one is used.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np

from anomalyd.daemon.fsutil import fsync_dir
from anomalyd.daemon.journal import Position

MAGIC = b"ANOMALYD-CKPT-1\n"
_LENGTH = struct.Struct("<Q")
_NAME = re.compile(r"^checkpoint-(\d{12})\.ckpt$")
_DIGEST = 32


class CheckpointError(Exception):
    """A checkpoint file is unreadable, truncated or fails its checksum."""


@dataclass
class Snapshot:
    """A consistent copy of the detector's state, taken between ticks."""

    rows: dict[str, int]
    arrays: dict[str, np.ndarray]  # each [high_water, ...]
    fingerprint: str
    settings: dict  # configuration that changes what the state means
    position: Position  # the journal position the state includes readings up to
    created: float = field(default_factory=time.time)


def checkpoint_path(directory: Path, sequence: int) -> Path:
    return directory / f"checkpoint-{sequence:012d}.ckpt"


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """(sequence, path), newest first."""
    found = []
    for entry in os.listdir(directory) if directory.exists() else ():
        match = _NAME.match(entry)
        if match:
            found.append((int(match.group(1)), directory / entry))
    return sorted(found, reverse=True)


def serialise(snapshot: Snapshot) -> tuple[bytes, list[np.ndarray]]:
    """The header bytes and the arrays to write after it."""
    fields, offset, arrays = [], 0, []
    for name, array in snapshot.arrays.items():
        array = np.ascontiguousarray(array)
        fields.append({"name": name, "dtype": array.dtype.str, "shape": list(array.shape), "offset": offset})
        offset += array.nbytes
        arrays.append(array)
    sensors = [""] * len(next(iter(snapshot.arrays.values()), []))
    for sensor_id, row in snapshot.rows.items():
        sensors[row] = sensor_id
    header = {"format": 1, "created": snapshot.created, "fingerprint": snapshot.fingerprint,
              "settings": snapshot.settings, "journal": snapshot.position.to_dict(),
              "sensors": sensors, "free": [row for row, name in enumerate(sensors) if name == ""],
              "fields": fields}
    text = json.dumps(header).encode()
    return MAGIC + _LENGTH.pack(len(text)) + text, arrays


class CheckpointWriter:
    """Writes snapshots to ``directory``; ``write_rate`` (bytes/s, 0 = unlimited) spreads a
    large checkpoint over time so it does not starve other I/O."""

    def __init__(self, directory: Path, keep: int = 3, write_rate: float = 0.0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.directory, self.keep, self.write_rate = Path(directory), keep, write_rate
        self._clock, self._sleep = clock, sleep
        existing = list_checkpoints(self.directory)
        self._sequence = existing[0][0] if existing else 0

    def write(self, snapshot: Snapshot) -> tuple[Path, int]:
        """Write one checkpoint atomically; returns its path and size. Raises OSError."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._sequence += 1
        final = checkpoint_path(self.directory, self._sequence)
        temporary = self.directory / f".{final.name}.tmp"
        header, arrays = serialise(snapshot)
        digest = hashlib.sha256()
        try:
            with open(temporary, "wb") as handle:
                size = self._write_all(handle, digest, [header, *arrays])
                handle.write(digest.digest())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, final)
            fsync_dir(self.directory)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        self._prune()
        return final, size + _DIGEST

    def _write_all(self, handle: BinaryIO, digest, parts: list) -> int:
        started, written = self._clock(), 0
        for part in parts:
            if isinstance(part, np.ndarray):
                part = np.ascontiguousarray(part).reshape(-1).view(np.uint8)
            view = memoryview(part)
            for start in range(0, len(view), 1 << 20):
                chunk = view[start:start + (1 << 20)]
                digest.update(chunk)
                handle.write(chunk)
                written += len(chunk)
                if self.write_rate > 0:
                    ahead = written / self.write_rate - (self._clock() - started)
                    if ahead > 0:
                        self._sleep(ahead)
        return written

    def _prune(self) -> None:
        for _sequence, path in list_checkpoints(self.directory)[self.keep:]:
            path.unlink(missing_ok=True)


@dataclass
class Loaded:
    path: Path
    header: dict
    rows: dict[str, int]
    arrays: dict[str, np.ndarray]

    @property
    def position(self) -> Position:
        return Position.from_dict(self.header["journal"])

    @property
    def fingerprint(self) -> str:
        return self.header["fingerprint"]


def read(path: Path) -> Loaded:
    """Read and verify one checkpoint; CheckpointError if it cannot be trusted."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path}: unreadable: {exc.strerror or exc}") from None
    if len(data) < len(MAGIC) + _LENGTH.size + _DIGEST or not data.startswith(MAGIC):
        raise CheckpointError(f"{path}: not a checkpoint or truncated")
    if hashlib.sha256(memoryview(data)[:-_DIGEST]).digest() != data[-_DIGEST:]:
        raise CheckpointError(f"{path}: checksum mismatch (truncated or corrupted)")
    (length,) = _LENGTH.unpack_from(data, len(MAGIC))
    start = len(MAGIC) + _LENGTH.size
    try:
        header = json.loads(data[start:start + length])
        body = memoryview(data)[start + length:-_DIGEST]
        arrays = {}
        for spec in header["fields"]:
            dtype = np.dtype(spec["dtype"])
            count = int(np.prod(spec["shape"], dtype=np.int64))
            arrays[spec["name"]] = np.frombuffer(body, dtype, count, spec["offset"]).reshape(spec["shape"])
        rows = {name: row for row, name in enumerate(header["sensors"]) if name}
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: malformed content: {exc}") from None
    return Loaded(Path(path), header, rows, arrays)


def newest_valid(directory: Path, on_invalid: Callable[[Path, CheckpointError], None]) -> Loaded | None:
    """The newest checkpoint that verifies, reporting each one skipped."""
    for _sequence, path in list_checkpoints(Path(directory)):
        try:
            return read(path)
        except CheckpointError as exc:
            on_invalid(path, exc)
    return None


def describe(path: Path, now: float | None = None) -> dict:
    """What ``anomalyd state inspect`` prints for one file."""
    now = time.time() if now is None else now
    info = {"file": Path(path).name, "bytes": Path(path).stat().st_size}
    try:
        loaded = read(path)
    except CheckpointError as exc:
        return {**info, "valid": False, "error": str(exc)}
    header = loaded.header
    return {**info, "valid": True, "age_seconds": round(now - header["created"], 1), "sensors": len(loaded.rows),
            "fingerprint": header["fingerprint"], "journal": header["journal"]}


