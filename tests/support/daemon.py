"""Run the real daemon (``anomalyd run``) as a subprocess against a test broker.

Readiness is observed through systemd's notification protocol: the daemon gets a real
AF_UNIX datagram socket as NOTIFY_SOCKET and the test waits for READY=1, which the daemon
sends only once its model is warm and its subscriptions are acknowledged.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from .mosquitto import free_port
from .wait import wait_until


def deep_merge(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = deep_merge(merged.get(key, {}), value) if isinstance(value, dict) else value
    return merged


class NotifySocket:
    """A datagram socket collecting sd_notify messages, like systemd's."""

    def __init__(self, directory: Path) -> None:
        self.path = str(Path(tempfile.mkdtemp(dir=directory)) / "notify.sock")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self.path)
        self._sock.settimeout(0.2)
        self.messages: list[str] = []
        self._lock = threading.Lock()
        self._running = True
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while self._running:
            try:
                data = self._sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.messages.extend(data.decode().split("\n"))

    def received(self) -> list[str]:
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self._running = False
        self._thread.join(2)
        self._sock.close()


class DaemonProcess:
    # Every daemon a test starts; the autouse fixture in tests/conftest.py kills the leftovers,
    # so a failing test never leaves a daemon running.
    live: list["DaemonProcess"] = []

    def __init__(self, broker, workdir: Path, config: dict | None = None, client_id: str | None = None,
                 env: dict | None = None) -> None:
        DaemonProcess.live.append(self)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.metrics_port = free_port()
        base = {
            "mqtt": {"broker": broker.url, "client_id": client_id or f"anomalyd-test-{os.getpid()}-{id(self)}",
                     "reconnect_min_delay": 1.0, "reconnect_max_delay": 2.0},
            "metrics": {"address": f"127.0.0.1:{self.metrics_port}"},
            "state": {"directory": str(self.workdir / "state")},
            "detector": {"batch_size": 64, "tick_interval": 0.02},
        }
        self.config = deep_merge(base, config or {})
        self.config_path = self.workdir / "config.yaml"
        self.write_config(self.config)
        self.extra_env = env or {}
        self.process: subprocess.Popen | None = None
        self.notify: NotifySocket | None = None
        self.log_path = self.workdir / "daemon.log"

    def write_config(self, config: dict) -> None:
        self.config = config
        self.config_path.write_text(yaml.safe_dump(config))

    def start(self, wait_ready: bool = True, timeout: float = 60.0) -> "DaemonProcess":
        self.notify = NotifySocket(self.workdir)
        env = dict(os.environ, NOTIFY_SOCKET=self.notify.path, **self.extra_env)
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen([sys.executable, "-m", "anomalyd.daemon.cli", "run", "--config",
                                         str(self.config_path)], stdout=self._log, stderr=subprocess.STDOUT,
                                        env=env)
        if wait_ready:
            self.wait_notified("READY=1", timeout)
        return self

    def wait_notified(self, line: str, timeout: float = 30.0) -> None:
        def seen():
            if self.process.poll() is not None:
                raise AssertionError(f"daemon exited with {self.process.returncode}:\n{self.log_text()}")
            return line in self.notify.received()
        wait_until(seen, timeout, message=lambda: f"{line} from the daemon; log:\n{self.log_text()[-3000:]}")

    def send_signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        finally:
            self._close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
        self._close()

    def _close(self) -> None:
        if self.notify is not None:
            self.notify.close()
            self.notify = None
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            return response.read().decode()

    def metrics(self) -> dict[tuple[str, tuple], float]:
        """Every sample as {(name, sorted label items): value}."""
        samples = {}
        for family in text_string_to_metric_families(self.metrics_text()):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    def metric(self, name: str, **labels) -> float:
        return self.metrics().get((name, tuple(sorted(labels.items()))), 0.0)

    def __enter__(self) -> "DaemonProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.kill()


def publish_all(broker, messages: list[tuple[str, str | bytes]], qos: int = 1, client_id: str | None = None,
                timeout: float = 60.0) -> None:
    """Publish many messages quickly (a window of unacknowledged ones) and wait for them all."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"pub-{time.monotonic_ns()}")
    client.max_inflight_messages_set(500)
    client.max_queued_messages_set(0)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=qos) for topic, payload in messages]
        deadline = time.monotonic() + timeout
        for info in infos:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            assert info.is_published(), "a test message was not published in time"
    finally:
        client.disconnect()
        client.loop_stop()
