"""``anomalyd bench e2e``: throughput and latency through a real broker, against a bare relay.

One run on the same machine, three measurements for each consumer (the baseline relay, then
anomalyd with the shipped model and its default settings), each repeated in 3 rounds that
alternate relay and anomalyd with a fresh private mosquitto each time (1 round with --quick);
the median round is reported, with every round's figure beside it:
- single: 1,000 sensors, one reading per message, QoS 1, a backlog queued in the broker while
  the consumer is down, then drained at full speed (sustained readings/s, CPU, peak RSS);
- senml100: the same with SenML messages of 100 readings (anomalyd publishes its scores as
  one array per tick, the relay one array per message);
- latency: 5,000 readings/s offered live by a separate single-threaded load generator
  (bench.loadgen); reading-to-score latency from the publish time it writes into each payload
  to the arrival of its score at a separate collector process.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from anomalyd.daemon.bench.procstat import cpu_seconds, peak_rss_bytes
from anomalyd.daemon.bench.timing import machine
from anomalyd.daemon.local_broker import MosquittoBroker, free_port
from anomalyd.models.artifact import Artifact

SENSORS = 1000
WINDOW = 20_000  # messages the load generator keeps in flight
ROUNDS = 3  # relay/anomalyd pairs per measurement (1 with --quick)
BROKER_CONFIG = "max_queued_messages 0\nmax_queued_bytes 0\n"  # the backlog must fit in the broker


# -- load generation ---------------------------------------------------------------------------
def single_messages(count: int, start: float) -> list[tuple[str, str]]:
    """``count`` JSON readings round-robin over the sensors, one second apart per sensor."""
    return [(f"sensors/b{i % SENSORS:04d}", json.dumps({"value": float(np.sin(i / 977.0) * 10 + i % 7),
                                                          "ts": start + i // SENSORS}))
            for i in range(count)]


def senml_messages(count: int, start: float, per_message: int = 100,
                   sensors: int = SENSORS) -> list[tuple[str, str]]:
    messages = []
    for m in range(count):
        first = m * per_message
        records = [{"n": f"b{(first + k) % sensors:06d}", "t": (first + k) // sensors, "v": float(k % 13)}
                   for k in range(per_message)]
        records[0]["bt"] = start
        messages.append(("sensors/senml", json.dumps(records)))
    return messages


def publish(broker: MosquittoBroker, messages: list[tuple[str, str]]) -> None:
    """Publish a backlog with QoS 1 as fast as the broker takes it, and wait until the broker
    has them all. At most ``WINDOW`` messages are outstanding: paho has 65,535 message ids and
    refuses to reuse one still in flight. (The paced, time-stamped load of the latency
    measurement comes from ``bench.loadgen``.)"""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-load-{time.monotonic_ns()}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(broker.host, broker.port)
    client.loop_start()
    pending = deque()
    for topic, payload in messages:
        pending.append(client.publish(topic, payload, qos=1))
        while len(pending) > WINDOW:
            pending.popleft().wait_for_publish(120)
    for info in pending:
        info.wait_for_publish(120)
    client.disconnect()
    client.loop_stop()


# -- processes ---------------------------------------------------------------------------------
def _wait_line(process: subprocess.Popen, line: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = process.stdout.readline()
        if text.strip() == line:
            return
        if not text and process.poll() is not None:
            raise RuntimeError(f"process exited before {line}")
    raise RuntimeError(f"no {line} within {timeout} s")


class Collector:
    def __init__(self, broker: MosquittoBroker, topic_filter: str, expected: int, mode: str) -> None:
        self.out = Path(tempfile.mkstemp(suffix=".json")[1])
        self.process = subprocess.Popen([sys.executable, "-m", "anomalyd.daemon.bench.collector", broker.host,
                                         str(broker.port), topic_filter, str(expected), mode, str(self.out)],
                                        stdout=subprocess.PIPE, text=True)
        _wait_line(self.process, "READY")

    def result(self, timeout: float) -> dict:
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            self.process.wait(30)
        data = json.loads(self.out.read_text())
        self.out.unlink()
        return data


class Consumer:
    """The relay or the daemon as a child process, sampled for CPU while it works."""

    def __init__(self, kind: str, broker: MosquittoBroker, workdir: Path, batch_scores: bool = False,
                 extra: dict | None = None) -> None:
        self.kind, self.broker, self.workdir, self.batch_scores = kind, broker, workdir, batch_scores
        self.extra = extra or {}  # more daemon configuration, section by section
        self.samples: list[tuple[float, float]] = []
        self._sampling = threading.Event()

    def start(self) -> None:
        if self.kind == "relay":
            self.process = subprocess.Popen([sys.executable, "-m", "anomalyd.daemon.bench.relay", self.broker.host,
                                             str(self.broker.port), "bench-relay"], stdout=subprocess.PIPE, text=True)
            _wait_line(self.process, "READY")
        else:
            self._start_daemon()
        self._sampling.set()
        threading.Thread(target=self._sample, daemon=True).start()

    def _start_daemon(self) -> None:
        config = {"mqtt": {"broker": f"mqtt://{self.broker.host}:{self.broker.port}", "client_id": "bench-anomalyd",
                           "batch_scores": self.batch_scores, "batch_topic": "anomalyd/batch"},
                  "metrics": {"address": f"127.0.0.1:{free_port()}"},
                  "state": {"directory": str(self.workdir / "state")}, "logging": {"level": "WARNING"}}
        for section, values in self.extra.items():
            config[section] = {**config.get(section, {}), **values}
        path = self.workdir / "anomalyd.yaml"
        path.write_text(yaml.safe_dump(config))
        notify_path = str(self.workdir / "notify.sock")
        if os.path.exists(notify_path):
            os.unlink(notify_path)
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(notify_path)
        notify.settimeout(60)
        self.process = subprocess.Popen([sys.executable, "-m", "anomalyd.daemon.cli", "run", "--config", str(path)],
                                        env={**os.environ, "NOTIFY_SOCKET": notify_path})
        try:
            while b"READY=1" not in notify.recv(4096):
                pass
        finally:
            notify.close()

    def _sample(self) -> None:
        while self._sampling.is_set() and self.process.poll() is None:
            try:
                self.samples.append((time.time(), cpu_seconds(self.process.pid)))
            except OSError:
                return
            time.sleep(0.05)

    def cpu_between(self, first: float, last: float) -> float:
        times = np.array([t for t, _ in self.samples])
        cpu = np.array([c for _, c in self.samples])
        return float(np.interp(last, times, cpu) - np.interp(first, times, cpu))

    def stop(self) -> int:
        self._sampling.clear()
        rss = peak_rss_bytes(self.process.pid) if self.process.poll() is None else 0
        self.process.terminate()
        self.process.wait(120)
        return rss


# -- measurements ------------------------------------------------------------------------------
def output_filter(kind: str, batch: bool) -> str:
    if kind == "relay":
        return "relay/batch" if batch else "relay/scores/#"
    return "anomalyd/batch" if batch else "anomalyd/scores/#"


def drain(kind: str, broker: MosquittoBroker, workdir: Path, messages: list, readings: int, batch: bool) -> dict:
    """Queue a backlog while the consumer is away, then time how fast it works through it."""
    workdir.mkdir(parents=True, exist_ok=True)
    consumer = Consumer(kind, broker, workdir, batch)
    consumer.start()  # registers its persistent session and subscriptions
    consumer.stop()
    publish(broker, messages)
    collector = Collector(broker, output_filter(kind, batch), readings, "count")
    consumer.start()
    # From the moment the consumer is subscribed (its READY), not from its first output: the
    # daemon's network thread can read and queue much of a backlog before the first tick
    # publishes, work a first-to-last-output window would leave out.
    started = time.time()
    result = collector.result(timeout=900)
    rss = consumer.stop()
    seconds = max(1e-9, result["last"] - started)
    cpu = consumer.cpu_between(started, result["last"])
    return {"readings": result["count"], "seconds": round(seconds, 3),
            "readings_per_s": round(result["count"] / seconds), "cpu_s_per_million": round(cpu / result["count"] * 1e6, 2),
            "peak_rss_bytes": rss}


def latency(kind: str, broker: MosquittoBroker, workdir: Path, rate: float, seconds: float) -> dict:
    count = int(rate * seconds)
    workdir.mkdir(parents=True, exist_ok=True)
    consumer = Consumer(kind, broker, workdir)
    consumer.start()
    collector = Collector(broker, output_filter(kind, False), count, "latency")
    subprocess.run([sys.executable, "-m", "anomalyd.daemon.bench.loadgen", broker.host, str(broker.port), str(rate),
                    str(count), str(SENSORS)], check=True, stdout=subprocess.DEVNULL, timeout=seconds + 300)
    result = collector.result(timeout=300)
    consumer.stop()
    values = np.array(result["latencies"]) * 1000.0
    return {"offered_per_s": rate, "readings": int(len(values)), "p50_ms": round(float(np.percentile(values, 50)), 1),
            "p99_ms": round(float(np.percentile(values, 99)), 1), "max_ms": round(float(values.max()), 1)}


def run(artifact: Artifact, quick: bool = False) -> dict:
    single_count, senml_count, latency_seconds = (20_000, 2_000, 6.0) if quick else (100_000, 10_000, 20.0)
    rounds = 1 if quick else ROUNDS
    report = {"benchmark": "e2e", "machine": machine(), "model": artifact.fingerprint, "sensors": SENSORS,
              "rounds": rounds}
    start = time.time() - 10 * 86_400
    variants = {"single": (single_messages(single_count, start), single_count, False),
                "senml100": (senml_messages(senml_count, start), senml_count * 100, True)}
    with tempfile.TemporaryDirectory(prefix="anomalyd-bench-") as tmp:
        for name, (messages, readings, batch) in variants.items():
            def measure(kind: str, where: Path, broker: MosquittoBroker) -> dict:
                return drain(kind, broker, where, messages, readings, batch)
            report[name] = _paired_rounds(Path(tmp) / name, rounds, measure, "readings_per_s")
        report["latency"] = _paired_rounds(
            Path(tmp) / "latency", rounds,
            lambda kind, where, broker: latency(kind, broker, where, 5000.0, latency_seconds), "p99_ms", ratio=False)
    report["bars"] = {
        "single_ratio_to_relay>=0.7": report["single"]["ratio_to_relay"] >= 0.7,
        "senml100_readings_per_s>=100000": report["senml100"]["anomalyd"]["readings_per_s"] >= 100_000,
        "latency_p99_ms<=200_at_5000_per_s": report["latency"]["anomalyd"]["p99_ms"] <= 200,
    }
    return report


def _paired_rounds(directory: Path, rounds: int, measure, key: str, ratio: bool = True) -> dict:
    """``rounds`` rounds of the relay then anomalyd, each with a fresh broker. Each consumer's
    figures are those of its median round by ``key`` (every round's value is listed); the ratio
    (with ``ratio``) is the median of the rounds' anomalyd/relay ratios, each from two runs
    measured back to back, so a noisy stretch of a shared machine moves one round, not the result."""
    results: dict[str, list[dict]] = {"relay": [], "anomalyd": []}
    for index in range(rounds):
        for kind in results:
            where = directory / f"{kind}-{index}"
            with MosquittoBroker(where / "broker", extra_config=BROKER_CONFIG) as broker:
                results[kind].append(measure(kind, where, broker))
    report = {}
    for kind, runs in results.items():
        ordered = sorted(runs, key=lambda run: run[key])
        report[kind] = {**ordered[len(ordered) // 2], f"{key}_rounds": [run[key] for run in runs]}
    if ratio:
        ratios = [a[key] / r[key] for a, r in zip(results["anomalyd"], results["relay"])]
        report["ratio_to_relay"] = round(float(np.median(ratios)), 3)
        report["ratio_rounds"] = [round(value, 3) for value in ratios]
    return report
