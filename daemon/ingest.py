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


@dataclass
class Pending:
    sensors: list[str] = field(default_factory=list)
    ts: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    arrival: list[float] = field(default_factory=list)  # one per reading
    replayed: list[bool] = field(default_factory=list)
    resets: list[str] = field(default_factory=list)  # control requests, applied before readings

    def __len__(self) -> int:
        return len(self.sensors)

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
            replayed: bool = False) -> bool:
        """Queue one message's readings; waits while full. False once the queue is closed."""
        with self._cond:
            while len(self._pending) >= self.limit and not self._closed:
                self._cond.wait(0.1)
            if self._closed:
                return False
            pending = self._pending
            pending.sensors.extend(sensors)
            pending.ts.extend(ts)
            pending.values.extend(values)
            pending.arrival.extend([arrival] * len(sensors))
            pending.replayed.extend([replayed] * len(sensors))
            if len(pending) >= self._want:
                self._cond.notify_all()
            return True

    def request_reset(self, sensor: str) -> None:
        with self._cond:
            self._pending.resets.append(sensor)
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
