"""Pacing: maps the wall clock to simulated time and feeds each tick to a sink.

Simulated time advances ``time_scale`` seconds per wall second (or as fast as the sink
accepts with ``fast``). Each loop takes everything the source produced up to the current
simulated time and hands it to the sink, which may block (MQTT back-pressure); when the
sink is slower than the target, simulated time simply lags and the achieved rate says so.
Between ticks the sink's ``idle`` runs its network loop instead of sleeping.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Protocol, TextIO

from .anomalies import Label
from .fleet import Tick
from .payloads import Encoder
from .publisher import MqttPublisher, PublishStopped


class Source(Protocol):
    sensor_ids: list[str]
    injected: Counter

    @property
    def time(self) -> float: ...

    @property
    def readings_per_second(self) -> float: ...

    def readings_until(self, t_end: float) -> Tick: ...


class Sink(Protocol):
    readings: int
    messages: int

    def send(self, tick: Tick) -> None: ...

    def idle(self, timeout: float) -> None: ...

    def close(self, timeout: float) -> bool: ...


@dataclass(frozen=True)
class Pacing:
    time_scale: float = 1.0  # simulated seconds per wall second
    fast: bool = False  # ignore the clock: publish as fast as the sink takes it
    end_ts: float | None = None  # stop when simulated time reaches this
    tick: float = 0.02  # wall seconds between ticks when caught up
    max_tick_readings: int = 20_000  # bound on one tick's arrays when catching up


@dataclass
class RunStats:
    readings: int = 0
    messages: int = 0
    labels: int = 0
    wall_seconds: float = 0.0
    sim_start: float = 0.0
    sim_time: float = 0.0
    lag_seconds: float = 0.0  # how far simulated time trails the paced target
    anomalies: dict[str, int] = field(default_factory=dict)
    stopped_by: str = "running"
    flushed: bool = True

    @property
    def achieved_rate(self) -> float:
        return self.readings / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {
            "readings": self.readings,
            "messages": self.messages,
            "labels": self.labels,
            "duration_s": round(self.wall_seconds, 3),
            "achieved_rate": round(self.achieved_rate, 1),
            "simulated_seconds": round(self.sim_time - self.sim_start, 3),
            "sim_start_ts": self.sim_start,
            "sim_end_ts": round(self.sim_time, 3),
            "anomalies": dict(sorted(self.anomalies.items())),
            "stopped_by": self.stopped_by,
            "all_delivered": self.flushed,
        }


class Runner:
    def __init__(
        self,
        source: Source,
        sink: Sink,
        pacing: Pacing,
        *,
        stop: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_progress: Callable[[RunStats], None] | None = None,
        progress_interval: float = 1.0,
    ) -> None:
        self.source, self.sink, self.pacing = source, sink, pacing
        self.stop = stop or threading.Event()
        self.clock = clock
        self.on_progress = on_progress
        self.progress_interval = progress_interval
        self.stats = RunStats(sim_start=source.time, sim_time=source.time)

    def run(self, flush_timeout: float = 10.0) -> RunStats:
        p, src = self.pacing, self.source
        wall0 = self.clock()
        sim0 = src.time
        max_step = p.max_tick_readings / max(src.readings_per_second, 1e-9)
        next_progress = wall0 + self.progress_interval
        self.stats.stopped_by = "signal"
        try:
            while not self.stop.is_set():
                paced = sim0 + (self.clock() - wall0) * p.time_scale
                target = src.time + max_step if p.fast else min(paced, src.time + max_step)
                if p.end_ts is not None:
                    target = min(target, p.end_ts)
                if target > src.time:
                    self._send(src.readings_until(target))
                if p.end_ts is not None and src.time >= p.end_ts:
                    self.stats.stopped_by = "end"
                    break
                now = self.clock()
                self.stats.lag_seconds = 0.0 if p.fast else max(0.0, paced - src.time)
                if now >= next_progress:
                    next_progress = now + self.progress_interval
                    self._progress(wall0)
                if not p.fast and src.time >= sim0 + (now - wall0) * p.time_scale:
                    self.sink.idle(p.tick)  # caught up: wait for the next tick doing I/O
        except PublishStopped:
            pass
        self.stats.flushed = self.sink.close(flush_timeout)
        self._update(wall0)
        return self.stats

    def _send(self, tick: Tick) -> None:
        self.stats.labels += len(tick.labels)
        self.sink.send(tick)

    def _update(self, wall0: float) -> None:
        s = self.stats
        s.readings, s.messages = self.sink.readings, self.sink.messages
        s.wall_seconds = self.clock() - wall0
        s.sim_time = self.source.time
        s.anomalies = dict(self.source.injected)

    def _progress(self, wall0: float) -> None:
        self._update(wall0)
        if self.on_progress:
            self.on_progress(self.stats)


class LabelSink:
    """Ground-truth labels to a JSONL file (flushed per line, so a killed run keeps them)
    and/or a topic."""

    def __init__(self, file: TextIO | None, publisher: MqttPublisher | None, topic: str | None) -> None:
        self.file, self.publisher, self.topic = file, publisher, topic

    def write(self, labels: list[Label]) -> None:
        for label in labels:
            line = label.to_json()
            if self.file is not None:
                self.file.write(line + "\n")
                self.file.flush()
            if self.publisher is not None and self.topic:
                self.publisher.publish(self.topic, line.encode(), qos=1)


class MqttSink:
    """Encodes ticks into messages and publishes them; partial SenML packs go out after
    ``senml_max_delay`` wall seconds so slow fleets are not held back by batching."""

    def __init__(
        self,
        publisher: MqttPublisher,
        encoder: Encoder,
        labels: LabelSink | None = None,
        *,
        senml_max_delay: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.publisher, self.encoder, self.labels = publisher, encoder, labels
        self.senml_max_delay = senml_max_delay
        self.clock = clock
        self.readings = 0
        self.messages = 0
        self._last_flush = clock()

    def send(self, tick: Tick) -> None:
        if self.labels is not None and tick.labels:
            self.labels.write(tick.labels)
        self._publish(self.encoder.messages(tick.sensor, tick.ts, tick.value))
        if self.encoder.pending and self.clock() - self._last_flush >= self.senml_max_delay:
            self._flush_partial()

    def idle(self, timeout: float) -> None:
        if self.encoder.pending and self.clock() - self._last_flush >= self.senml_max_delay:
            self._flush_partial()
        self.publisher.service(timeout)

    def close(self, timeout: float) -> bool:
        try:
            self._flush_partial()
            return self.publisher.flush(timeout)
        except PublishStopped:
            return False
        finally:
            self.publisher.close()

    def _flush_partial(self) -> None:
        self._publish(self.encoder.flush())
        self._last_flush = self.clock()

    def _publish(self, messages) -> None:
        publish = self.publisher.publish
        for topic, payload, n in messages:
            publish(topic, payload)
            self.messages += 1
            self.readings += n
