"""The daemon: wires configuration, MQTT, the detector, metrics and systemd together.

Threads: paho's network thread decodes messages and queues readings; one worker thread runs
the ticks (detector, publishing, metrics, housekeeping); the main thread waits for signals.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time

import numpy as np

from anomalyd.daemon import __version__
from anomalyd.daemon import config as config_module
from anomalyd.daemon.config import Config, ConfigError
from anomalyd.daemon.detector import Detector, DetectorSettings, TickResult
from anomalyd.daemon.durability import StateKeeper
from anomalyd.daemon.ingest import IngestQueue, Pending
from anomalyd.daemon.journal import Position
from anomalyd.daemon.logs import RateLimiter, setup as setup_logging
from anomalyd.daemon.metrics import Metrics, TopSensors
from anomalyd.daemon.mqtt_io import MqttLink, PublishAborted
from anomalyd.daemon.notify import Notifier
from anomalyd.daemon.output import batches, score_objects
from anomalyd.daemon.payload import Decoder, Limits
from anomalyd.models import artifact as artifact_module

SWITCH_INTERVAL = 0.0005  # seconds; see Service.run
HOUSEKEEPING_INTERVAL = 5.0  # seconds between gauge refreshes, top-k publication, idle checks


class Service:
    def __init__(self, config: Config, config_path: str | None = None, environ: dict | None = None) -> None:
        self.config, self.config_path = config, config_path
        self.environ = dict(os.environ if environ is None else environ)
        self.log = setup_logging(config.logging.level, config.logging.format)
        self.metrics = Metrics()
        self.notifier = Notifier(self.environ)
        self.stopping = threading.Event()
        self._reload = threading.Event()
        self._limiter = RateLimiter()
        self._last_housekeeping = 0.0
        self._last_watchdog = 0.0
        self._healthy = True
        self._totals = {"scored": 0, "anomalies": 0}  # for the one-line STATUS= summary
        # Messages and readings received, counted by the network thread alone (no lock: a
        # Prometheus counter's lock costs about a microsecond per message on the hot path).
        self._intake = [0, 0]
        self._exported = [0, 0]

    # -- start-up ------------------------------------------------------------------------
    def _build(self) -> None:
        cfg = self.config
        self.artifact = artifact_module.load(cfg.detector.model)
        self.detector = Detector(self.artifact, DetectorSettings(
            capacity=cfg.detector.max_sensors, batch_size=cfg.detector.batch_size,
            backend=cfg.detector.backend, max_gap=cfg.detector.max_gap), cfg.scoring)
        self._warm_engine()
        self.decoder = Decoder(Limits(
            max_payload_bytes=cfg.input.max_payload_bytes, max_readings_per_message=cfg.input.max_readings_per_message,
            sensor_id_pattern=cfg.input.sensor_id_pattern, topic_pattern=cfg.mqtt.sensor_pattern,
            min_value=cfg.input.min_value, max_value=cfg.input.max_value,
            max_future_seconds=cfg.input.max_future_seconds))
        self.queue = IngestQueue(cfg.input.queue_limit)
        self.top = TopSensors(self.metrics.sensor_score, cfg.metrics.top_k, cfg.metrics.sensors)
        self.metrics.describe(__version__, self.artifact.fingerprint, list(self.artifact.network.units),
                              cfg.detector.backend, cfg.detector.max_sensors)
        self.metrics.threshold.set(self.detector.threshold)
        broker = cfg.broker()
        password = config_module.resolve_password(cfg.mqtt, broker, self.environ)
        self.link = MqttLink(cfg.mqtt, broker, password, self._on_message, self._on_reset,
                             self.metrics, self.log,
                             {"version": __version__, "fingerprint": self.artifact.fingerprint})
        self.keeper = StateKeeper(cfg.state, self.metrics, self.log, cfg.state.checkpoint_write_rate)
        self.restored = self.keeper.restore(self.detector)
        self._processed: Position = self.restored.position

    def _warm_engine(self) -> None:
        """One real step before READY, so the first tick does not pay for initialisation."""
        engine = self.detector.engine
        zeros = np.zeros((engine.batch_size, engine.state_width), np.float32)
        engine.step(np.zeros((engine.batch_size, engine.n_features), np.float32), zeros, zeros,
                    np.zeros(engine.batch_size, np.float32))

    # -- network thread ----------------------------------------------------------------------
    def _on_message(self, topic: str, payload: bytes, now: float) -> bool:
        """Decode and queue one message; False (do not acknowledge) once intake has stopped."""
        if self.stopping.is_set():
            return False
        self._intake[0] += 1  # plain counts here, exported by the worker: see _export_intake
        decoded = self.decoder.decode(topic, payload, now)
        for reason in decoded.rejected:
            self._reject(reason, topic)
        if not decoded.sensors:
            return True
        position = self.keeper.append(decoded.sensors, decoded.ts, decoded.values, now)
        if not self.queue.put(decoded.sensors, decoded.ts, decoded.values, now, position):
            return False
        self._intake[1] += len(decoded.sensors)
        return True

    def _on_reset(self, sensor: str) -> None:
        self.queue.request_reset(sensor, self.keeper.append([], [], [], time.time(), reset=sensor))

    def _reject(self, reason: str, where: str) -> None:
        self.metrics.readings_rejected.labels(reason).inc()
        self._limiter.log(self.log, logging.WARNING, f"reject:{reason}", "rejected a reading (%s) from %s",
                          reason, where)

    # -- worker thread -------------------------------------------------------------------------
    def _work(self) -> None:
        cfg = self.config.detector
        while True:
            pending = self.queue.take(cfg.batch_size, cfg.tick_interval)
            try:
                self._tick(pending)
            except PublishAborted:
                self.log.warning("stopped while waiting to publish; unpublished scores are lost "
                                 "unless the journal replays them")
                return
            except Exception:  # noqa: BLE001 - a bug in one tick must not end the service
                self._healthy = False
                self._limiter.log(self.log, logging.ERROR, "tick", "tick failed", exc_info=True)
            self._housekeeping()
            if self.stopping.is_set() and len(self.queue) == 0:
                return

    def _tick(self, pending: Pending) -> None:
        """Score what was taken; control resets apply where they arrived among the readings."""
        start = 0
        for cut, sensor in [*pending.resets, (len(pending), None)]:
            if cut > start:
                self._score(pending, start, cut)
            if sensor is not None and self.detector.reset_sensor(sensor):
                self.metrics.resets.labels("control").inc()
            start = cut
        if pending.position is not None:
            self._processed = pending.position
        self._healthy = True

    def _score(self, pending: Pending, start: int, stop: int) -> None:
        started = time.perf_counter()
        ts, values, arrival, replayed = (array[start:stop] for array in pending.arrays())
        sensors = pending.sensors[start:stop]
        result = self.detector.process(sensors, ts, values, now=float(arrival.max()))
        self.metrics.tick_duration.observe(time.perf_counter() - started)
        self._count(result, sensors)
        self._publish(result, replayed[result.index])
        self.metrics.latency.observe_many(time.time() - arrival[result.index])

    def _count(self, result: TickResult, sensors: list[str]) -> None:
        m = self.metrics
        for index, reason in result.rejected:
            self._reject(reason, f"sensor {sensors[index]}")
        for reason, count in result.resets.items():
            m.resets.labels(reason).inc(count)
        flagged = int(result.anomaly.sum())
        m.readings_scored.inc(len(result))
        m.anomalies.inc(flagged)
        self._totals["scored"] += len(result)
        self._totals["anomalies"] += flagged
        batch = self.detector.engine.batch_size
        for size in _batch_sizes(len(result), batch):
            m.batch_fill.observe(size / batch)
        self.top.observe(result.sensors, result.score)

    def _publish(self, result: TickResult, replayed: np.ndarray) -> None:
        if not len(result):
            return
        mqtt_cfg = self.config.mqtt
        texts = score_objects(result.sensors, result.ts, result.values, result.prediction, result.score,
                              result.anomaly, result.warmup, replayed)
        if mqtt_cfg.batch_scores:
            for text in batches(texts):
                self.link.publish(mqtt_cfg.batch_topic, text, mqtt_cfg.score_qos, self.stopping)
        else:
            template = mqtt_cfg.score_topic
            for sensor, text in zip(result.sensors, texts):
                self.link.publish(template.replace("{sensor}", sensor), text, mqtt_cfg.score_qos, self.stopping)
        self.metrics.scores_published.inc(len(texts))

    def _export_intake(self) -> None:
        messages, readings = self._intake
        self.metrics.messages_received.inc(messages - self._exported[0])
        self.metrics.readings_received.inc(readings - self._exported[1])
        self._exported = [messages, readings]

    def _housekeeping(self) -> None:
        now = time.monotonic()
        self._export_intake()
        self.metrics.last_tick.set(time.time())
        self.metrics.queue_depth.set(len(self.queue))
        self.metrics.publish_queue.set(self.link.outstanding)
        if self._reload.is_set():
            self._reload.clear()
            self._apply_reload()
        if self.notifier.watchdog_interval and self._healthy and now - self._last_watchdog >= self.notifier.watchdog_interval:
            self.notifier.watchdog()
            self._last_watchdog = now
        self.keeper.maybe_checkpoint(self.detector, self._processed)
        if now - self._last_housekeeping < HOUSEKEEPING_INTERVAL:
            return
        self._last_housekeeping = now
        evicted = self.detector.evict_idle(time.time(), self.config.detector.idle_timeout)
        if evicted:
            self.metrics.resets.labels("idle").inc(len(evicted))
            self.log.info("evicted %d idle sensors", len(evicted))
        active = len(self.detector.table)
        self.metrics.active_sensors.set(active)
        self.metrics.occupancy.set(active / self.detector.table.capacity)
        self.top.publish()
        self.notifier.status(self._summary())

    def _summary(self) -> str:
        return (f"{len(self.detector.table)} sensors, {self._totals['scored']} scored, "
                f"{self._totals['anomalies']} anomalies, mqtt {'up' if self.link.connected else 'down'}")

    # -- signals -----------------------------------------------------------------------------
    def request_stop(self, *_args) -> None:
        """SIGTERM/SIGINT: stop intake now (unacknowledged messages stay with the broker), let
        the worker score what is queued, then shut down."""
        self.stopping.set()
        self.queue.close()

    def request_reload(self, *_args) -> None:
        self._reload.set()

    def _apply_reload(self) -> None:
        """SIGHUP: new threshold and log level from the config file; state stays as it is."""
        self.notifier.reloading()
        try:
            fresh = config_module.load(self.config_path)
        except ConfigError as exc:
            self.log.error("reload refused, keeping the running configuration: %s", exc)
            self.notifier.ready(self._summary())
            return
        self.detector.threshold = fresh.scoring.threshold
        self.metrics.threshold.set(fresh.scoring.threshold)
        setup_logging(fresh.logging.level, self.config.logging.format)
        self.log.info("reloaded: threshold %.4f, log level %s", fresh.scoring.threshold, fresh.logging.level)
        self.notifier.ready(self._summary())

    # -- main --------------------------------------------------------------------------------
    def run(self) -> int:
        # The network thread needs the GIL briefly for every packet; with Python's default
        # 5 ms switch interval a busy worker makes it wait that long each time, and readings
        # queue up in the socket (measured: p50 latency 600 ms at 5,000 readings/s).
        sys.setswitchinterval(SWITCH_INTERVAL)
        try:
            self._build()
            host, port = self.metrics.serve(*config_module.parse_address(self.config.metrics.address))
        except (ConfigError, artifact_module.ArtifactError, OSError, ValueError) as exc:
            self.log.error("cannot start: %s", exc)
            return 2
        self.log.info("anomalyd %s: model %s, metrics on http://%s:%d/metrics, broker %s", __version__,
                      self.artifact.short_fingerprint, host, port, self.config.broker().redacted())
        for signum, handler in ((signal.SIGTERM, self.request_stop), (signal.SIGINT, self.request_stop),
                                (signal.SIGHUP, self.request_reload)):
            signal.signal(signum, handler)
        self.keeper.start()
        self.link.start()
        self._replay()
        worker = threading.Thread(target=self._work, name="anomalyd-worker", daemon=True)
        worker.start()
        self._wait_ready()
        while not self.stopping.wait(0.5):
            pass
        return self._shutdown(worker)

    def _replay(self) -> None:
        """Score again what the journal holds beyond the restored checkpoint, before live input
        (which meanwhile waits in the queue). Scores go out with ``replayed: true``."""
        batch, replayed = Pending(), 0
        for record in self.keeper.replay_records(self._processed):
            if self.stopping.is_set():
                break
            if record.reset is not None:
                batch.add_reset(record.reset, record.position)
            else:
                batch.add(record.sensors, record.ts.tolist(), record.values.tolist(), record.arrival, True,
                          record.position)
                replayed += len(record.sensors)
            if len(batch) >= self.config.detector.batch_size:
                self._tick(batch)
                batch = Pending()
        self._tick(batch)
        if replayed:
            self.log.info("replayed %d journaled readings after %s", replayed,
                          self.restored.checkpoint or "an empty state")

    def _wait_ready(self) -> None:
        while not self.stopping.is_set():
            if self.link.wait_subscribed(0.5):
                self.notifier.ready(self._summary())
                self.log.info("ready: subscribed to %s", ", ".join(self.config.mqtt.topics))
                return

    def _shutdown(self, worker: threading.Thread) -> int:
        self.log.info("stopping")
        self.notifier.stopping()
        deadline = time.monotonic() + self.config.shutdown_timeout
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            self.log.warning("the worker did not finish within %.0f s", self.config.shutdown_timeout)
        self.link.stop(max(1.0, deadline - time.monotonic()))
        self.keeper.final_checkpoint(self.detector, self._processed, max(1.0, deadline - time.monotonic()))
        self.keeper.close()
        self.metrics.close()
        self.log.info("stopped")
        return 0


def _batch_sizes(n: int, batch: int) -> list[int]:
    """Engine batch sizes a tick of n readings used (approximation: full batches, then the rest)."""
    return [batch] * (n // batch) + ([n % batch] if n % batch else [])
