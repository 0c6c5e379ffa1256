"""The hand-off from the MQTT network thread to the worker: a bounded queue of readings.

The network thread appends whole decoded messages (lists, no per-reading objects); the worker
takes everything pending at once, when a batch's worth is waiting or the tick interval has
passed. When the queue is full the network thread waits: the broker then holds the backlog
(QoS 1, persistent session) instead of this process dropping it.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from anomalyd.daemon.journal import Position


@dataclass
class Pending:
    sensors: list[str] = field(default_factory=list)
    ts: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    arrival: list[float] = field(default_factory=list)  # one per reading
    replayed: list[bool] = field(default_factory=list)
    # Control resets as (number of readings queued before it, sensor): applied in that place.
    resets: list[tuple[int, str]] = field(default_factory=list)
    position: Position | None = None  # journal position just after the newest reading here

    def __len__(self) -> int:
        return len(self.sensors)

    def add(self, sensors: list[str], ts, values, arrival: float, replayed: bool,
            position: Position | None) -> None:
        self.sensors.extend(sensors)
        self.ts.extend(ts)
        self.values.extend(values)
        self.arrival.extend([arrival] * len(sensors))
        self.replayed.extend([replayed] * len(sensors))
        if position is not None:
            self.position = position

    def add_reset(self, sensor: str, position: Position | None) -> None:
        self.resets.append((len(self.sensors), sensor))
        if position is not None:
            self.position = position

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return (np.asarray(self.ts, np.float64), np.asarray(self.values, np.float64),
                np.asarray(self.arrival, np.float64), np.asarray(self.replayed, bool))


class IngestQueue:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._pending = Pending()
        self._cond = threading.Condition()
        self._closed = False
        self._want = 1

    def __len__(self) -> int:
        return len(self._pending)

    def put(self, sensors: list[str], ts: list[float], values: list[float], arrival: float,
            position: Position | None = None) -> bool:
        """Queue one message's readings; waits while full. False once the queue is closed."""
        with self._cond:
            while len(self._pending) >= self.limit and not self._closed:
                self._cond.wait(0.1)
            if self._closed:
                return False
            pending = self._pending
            pending.add(sensors, ts, values, arrival, False, position)
            if len(pending) >= self._want:
                self._cond.notify_all()
            return True

    def request_reset(self, sensor: str, position: Position | None = None) -> None:
        with self._cond:
            self._pending.add_reset(sensor, position)
            self._cond.notify_all()

    def take(self, want: int, timeout: float) -> Pending:
        """Everything pending, once ``want`` readings wait or ``timeout`` seconds passed."""
        with self._cond:
            self._want = want
            if len(self._pending) < want and not self._pending.resets:
                self._cond.wait_for(lambda: len(self._pending) >= want or self._closed, timeout)
            taken, self._pending = self._pending, Pending()
            self._cond.notify_all()  # wake a producer waiting for room
            return taken

    def close(self) -> None:
        """Refuse further readings (what is pending can still be taken)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
