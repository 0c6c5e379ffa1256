"""A private mosquitto broker: free port, own config, own log, own persistence.

Used by the benchmarks and the demo (a broker nobody else talks to, so measurements see no
foreign traffic) and by the tests (each test gets its own, can kill and restart it at will).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DEFAULT_BINARY = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
BINARY_ENV = "ANOMALYD_MOSQUITTO"


def mosquitto_binary() -> str:
    """Path of the mosquitto executable (overridable with $ANOMALYD_MOSQUITTO)."""
    return os.environ.get(BINARY_ENV, DEFAULT_BINARY)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the broker binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class BrokerError(RuntimeError):
    pass


class MosquittoBroker:
    """Runs ``mosquitto -c <conf>`` on 127.0.0.1:<free port> until ``stop()``/``kill()``."""

    host = "127.0.0.1"

    def __init__(
        self,
        workdir: str | os.PathLike[str] | None = None,
        *,
        persistence: bool = False,
        max_inflight_messages: int = 1000,
        max_queued_messages: int = 1_000_000,
        extra_config: str = "",
        start_timeout: float = 10.0,
        binary: str | None = None,
    ) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="mosquitto-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.persistence = persistence
        self.max_inflight_messages = max_inflight_messages
        self.max_queued_messages = max_queued_messages
        self.extra_config = extra_config
        self.start_timeout = start_timeout
        self.binary = binary or mosquitto_binary()
        self.config_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        self.persistence_dir = self.workdir / "persistence"
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- addresses -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self._require_port()}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> "MosquittoBroker":
        """Start on a fresh free port; retried because another process may grab the port
        between our probe and mosquitto's bind."""
        if self.running:
            raise BrokerError("broker already running")
        last_error: Exception | None = None
        for _ in range(5):
            self.port = free_port(self.host)
            try:
                self._launch()
                return self
            except BrokerError as exc:
                last_error = exc
        raise BrokerError(f"mosquitto did not start: {last_error}")

    def restart(self, graceful: bool = True) -> "MosquittoBroker":
        """Stop (or kill) and start again on the same port with the same persistence dir."""
        if self.running:
            self.stop() if graceful else self.kill()
        self._launch()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM and wait; mosquitto writes its persistence file on this path."""
        self._signal_and_wait(signal.SIGTERM, timeout)

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL: a crash, nothing is saved beyond what autosave already wrote."""
        self._signal_and_wait(signal.SIGKILL, timeout)

    def close(self) -> None:
        """Stop if running and remove the work dir if this object created it."""
        if self.running:
            self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "MosquittoBroker":
        return self if self.running else self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- internals -------------------------------------------------------------------------
    def _require_port(self) -> int:
        if self.port is None:
            raise BrokerError("broker has not been started")
        return self.port

    def _write_config(self) -> None:
        lines = [
            f"listener {self._require_port()} {self.host}",
            "allow_anonymous true",
            "log_dest stderr",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            f"max_queued_messages {self.max_queued_messages}",
            f"max_inflight_messages {self.max_inflight_messages}",
            f"persistence {'true' if self.persistence else 'false'}",
        ]
        if self.persistence:
            self.persistence_dir.mkdir(exist_ok=True)
            lines.append(f"persistence_location {self.persistence_dir}/")
        if os.geteuid() == 0:
            # Started as root, mosquitto switches to user "mosquitto", which cannot write
            # our root-owned temp dirs; stay root (it is a private, throwaway broker).
            lines.append("user root")
        if self.extra_config:
            lines.append(self.extra_config.strip())
        self.config_path.write_text("\n".join(lines) + "\n")

    def _launch(self) -> None:
        if not os.access(self.binary, os.X_OK):
            raise FileNotFoundError(f"mosquitto binary not found or not executable: {self.binary}")
        self._write_config()
        with open(self.log_path, "ab") as log:
            log.write(f"--- starting on port {self.port} ---\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                [self.binary, "-c", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise BrokerError(f"mosquitto exited at start-up:\n{self.log_text()[-2000:]}")
            try:
                with socket.create_connection((self.host, self._require_port()), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.02)  # poll interval, bounded by the deadline above
        self.kill()
        raise BrokerError(f"mosquitto not accepting connections after {self.start_timeout}s")

    def _signal_and_wait(self, sig: signal.Signals, timeout: float) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
