"""Prometheus metrics on the daemon's own registry (no global state), served over HTTP.

Names follow Prometheus conventions: ``anomalyd_`` prefix, base units, ``_total`` counters.
The only per-sensor series is ``anomalyd_sensor_score``, bounded by ``top_k`` plus an
explicit allow-list, so a fleet of 100,000 sensors cannot blow up the time-series database.
"""
from __future__ import annotations

import platform
import threading

import numpy as np
from prometheus_client import (CollectorRegistry, Counter, Gauge, Histogram, Info, ProcessCollector,
                               PlatformCollector, disable_created_metrics, start_http_server)
from prometheus_client.core import HistogramMetricFamily

from anomalyd.daemon.payload import REASONS

RESET_REASONS = ("new", "gap", "non_finite", "control", "idle", "model_change")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TICK_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
FILL_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
CHECKPOINT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        disable_created_metrics()  # the *_created series double the output and nobody graphs them
        self.registry = registry or CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self.messages_received = Counter("anomalyd_messages_received_total", "MQTT messages received", registry=r)
        self.readings_received = Counter("anomalyd_readings_received_total",
                                         "Readings decoded from messages and queued for scoring", registry=r)
        self.readings_scored = Counter("anomalyd_readings_scored_total", "Readings scored", registry=r)
        self.readings_rejected = Counter("anomalyd_readings_rejected_total", "Readings or messages refused",
                                         ["reason"], registry=r)
        self.anomalies = Counter("anomalyd_anomalies_total", "Readings flagged as anomalous", registry=r)
        self.scores_published = Counter("anomalyd_scores_published_total", "Score messages published", registry=r)
        self.resets = Counter("anomalyd_resets_total", "Sensor state resets", ["reason"], registry=r)
        self.active_sensors = Gauge("anomalyd_active_sensors", "Sensors holding a slot", registry=r)
        self.warming_sensors = Gauge("anomalyd_warmup_sensors", "Sensors still in warm-up (last tick)", registry=r)
        self.capacity = Gauge("anomalyd_slot_capacity", "Maximum number of sensors (slots)", registry=r)
        self.occupancy = Gauge("anomalyd_slot_occupancy_ratio", "Fraction of slots in use", registry=r)
        self.tick_duration = Histogram("anomalyd_tick_duration_seconds", "Time to score one tick",
                                       buckets=TICK_BUCKETS, registry=r)
        self.batch_fill = Histogram("anomalyd_batch_fill_ratio", "Used fraction of each engine batch",
                                    buckets=FILL_BUCKETS, registry=r)
        self.latency = ArrayHistogram("anomalyd_reading_to_publish_seconds",
                                      "From a reading's arrival to its score being handed to the MQTT client",
                                      LATENCY_BUCKETS, r)
        self.queue_depth = Gauge("anomalyd_ingest_queue_depth", "Readings waiting for the worker", registry=r)
        self.publish_queue = Gauge("anomalyd_publish_queue_depth", "Outgoing messages held by the MQTT client",
                                   registry=r)
        self.mqtt_connected = Gauge("anomalyd_mqtt_connected", "1 while connected to the broker", registry=r)
        self.mqtt_reconnects = Counter("anomalyd_mqtt_reconnects_total", "Connections after the first",
                                       registry=r)
        self.last_tick = Gauge("anomalyd_last_tick_timestamp_seconds", "When the tick loop last ran", registry=r)
        self.sensor_score = Gauge("anomalyd_sensor_score", "Highest recent score of the top-k and allow-listed "
                                  "sensors", ["sensor"], registry=r)
        self.model = Info("anomalyd_model", "The model being served", registry=r)
        self.build = Info("anomalyd_build", "Version of the running daemon", registry=r)
        self.threshold = Gauge("anomalyd_threshold", "Score at or above which a reading is flagged", registry=r)
        self.checkpoint_last = Gauge("anomalyd_checkpoint_last_success_timestamp_seconds",
                                     "When the last checkpoint was written", registry=r)
        self.checkpoint_duration = Histogram("anomalyd_checkpoint_duration_seconds", "Time to write a checkpoint",
                                             buckets=CHECKPOINT_BUCKETS, registry=r)
        self.checkpoint_bytes = Gauge("anomalyd_checkpoint_bytes", "Size of the last checkpoint", registry=r)
        self.checkpoint_failures = Counter("anomalyd_checkpoint_failures_total", "Checkpoints that failed",
                                           registry=r)
        self.checkpoint_failing = Gauge("anomalyd_checkpoint_failing",
                                        "1 while the last checkpoint attempt failed", registry=r)
        self.checkpoint_interval = Gauge("anomalyd_checkpoint_interval_seconds",
                                         "Configured seconds between checkpoints", registry=r)
        self.checkpoint_invalid = Counter("anomalyd_checkpoint_invalid_total",
                                          "Checkpoints found corrupt or unreadable at start-up", registry=r)
        self.journal_failures = Counter("anomalyd_journal_failures_total",
                                        "Journal writes or fsyncs that failed (readings not durable)", registry=r)
        self.journal_bytes = Gauge("anomalyd_journal_bytes", "Size of the journal since the last checkpoint",
                                   registry=r)
        self.restore = Info("anomalyd_restore", "How the state was restored at start-up", registry=r)
        for reason in REASONS:
            self.readings_rejected.labels(reason)
        for reason in RESET_REASONS:
            self.resets.labels(reason)
        self._server = None

    def describe(self, version: str, fingerprint: str, units: list[int], backend: str, capacity: int) -> None:
        self.build.info({"version": version, "python": platform.python_version()})
        self.model.info({"fingerprint": fingerprint, "units": ",".join(map(str, units)), "backend": backend})
        self.capacity.set(capacity)

    def serve(self, host: str, port: int) -> tuple[str, int]:
        """Start the /metrics HTTP endpoint on a daemon thread; returns the bound address."""
        self._server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return self._server.server_address[:2]

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class ArrayHistogram:
    """A histogram fed whole NumPy arrays at once (one observation per reading would cost a
    Python call per reading on the hot path); exported like any Prometheus histogram."""

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...],
                 registry: CollectorRegistry) -> None:
        self.name, self.documentation = name, documentation
        self.bounds = np.asarray(buckets, np.float64)
        self._counts = np.zeros(len(buckets) + 1, np.int64)  # last bucket: above every bound
        self._sum = 0.0
        self._lock = threading.Lock()
        registry.register(self)

    def observe_many(self, values: np.ndarray) -> None:
        if len(values) == 0:
            return
        slots = np.searchsorted(self.bounds, values, side="left")  # le semantics: v <= bound
        counts = np.bincount(slots, minlength=len(self._counts))
        with self._lock:
            self._counts += counts
            self._sum += float(np.sum(values))

    def collect(self):
        with self._lock:
            cumulative = np.cumsum(self._counts)
            total = self._sum
        buckets = [(repr(float(bound)), int(count)) for bound, count in zip(self.bounds, cumulative[:-1])]
        buckets.append(("+Inf", int(cumulative[-1])))
        family = HistogramMetricFamily(self.name, self.documentation, buckets=buckets, sum_value=total)
        yield family

    def describe(self):
        return [HistogramMetricFamily(self.name, self.documentation, buckets=[("+Inf", 0)], sum_value=0)]


class TopSensors:
    """Keeps the k highest scores seen in the current interval, and publishes them (plus the
    allow-listed sensors) to the per-sensor gauge once per interval."""

    def __init__(self, gauge: Gauge, k: int, allow: tuple[str, ...] = ()) -> None:
        self.gauge, self.k, self.allow = gauge, k, set(allow)
        self._candidates: dict[str, float] = {}
        self._shown: set[str] = set()
        self._lock = threading.Lock()

    def observe(self, sensors: list[str], scores: np.ndarray) -> None:
        if len(scores) == 0:
            return
        picks = np.argpartition(-scores, min(self.k, len(scores) - 1))[:self.k] if self.k else []
        with self._lock:
            for index in picks:
                self._offer(sensors[index], float(scores[index]))
            if self.allow:
                for sensor, value in zip(sensors, scores):
                    if sensor in self.allow:
                        self._offer(sensor, float(value))

    def _offer(self, sensor: str, value: float) -> None:
        if value > self._candidates.get(sensor, -1.0):
            self._candidates[sensor] = value

    def publish(self) -> None:
        with self._lock:
            ranked = sorted(self._candidates.items(), key=lambda item: -item[1])
            chosen = dict(ranked[:self.k])
            chosen.update({s: v for s, v in self._candidates.items() if s in self.allow})
            self._candidates = {}
        for sensor in self._shown - chosen.keys():
            self.gauge.remove(sensor)
        for sensor, value in chosen.items():
            self.gauge.labels(sensor).set(value)
        self._shown = set(chosen)
