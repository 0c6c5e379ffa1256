"""deploy/mosquitto: the production configuration run by a real mosquitto (paths and ports
rewritten to temporary ones, nothing else changed): it starts, the example password file and
ACL work, the size limit holds, a persistent session's queue survives a broker restart, and
the TLS example serves TLS with a throwaway certificate."""
from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import threading
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from support import free_port, mosquitto_binary, wait_until

from .helpers import DEPLOY, Child

MOSQUITTO = DEPLOY / "mosquitto"
PASSWORD = "change-me"  # the password behind every hash in passwd.example


def rewrite(text: str, replacements: dict[str, str]) -> str:
    """Replace whole lines; each must occur exactly once, so a reshaped config breaks the test
    instead of silently running with production paths."""
    lines = text.splitlines()
    for old, new in replacements.items():
        assert lines.count(old) == 1, f"expected exactly one line {old!r} in mosquitto.conf"
        lines[lines.index(old)] = new
    return "\n".join(lines) + "\n"


class Broker:
    def __init__(self, tmp_path: Path, tls: bool = False) -> None:
        binary = mosquitto_binary()
        if not os.access(binary, os.X_OK):
            pytest.fail(f"{binary} missing: run scripts/setup.sh (installs mosquitto)", pytrace=False)
        self.binary, self.dir = binary, tmp_path / "broker"
        (self.dir / "persist").mkdir(parents=True)
        (self.dir / "conf.d").mkdir()
        shutil.copy(MOSQUITTO / "passwd.example", self.dir / "passwd")
        shutil.copy(MOSQUITTO / "acl.example", self.dir / "acl")
        self.port = free_port()
        text = rewrite((MOSQUITTO / "mosquitto.conf").read_text(), {
            "persistence_location /var/lib/mosquitto/": f"persistence_location {self.dir / 'persist'}/",
            "password_file /etc/mosquitto/passwd": f"password_file {self.dir / 'passwd'}",
            "acl_file /etc/mosquitto/acl": f"acl_file {self.dir / 'acl'}",
            "listener 1883 127.0.0.1": f"listener {self.port} 127.0.0.1",
            "include_dir /etc/mosquitto/conf.d": f"include_dir {self.dir / 'conf.d'}",
        })
        if os.geteuid() == 0:  # as root mosquitto would switch to user mosquitto, locked out of tmp
            text += "user root\n"
        self.config = self.dir / "mosquitto.conf"
        self.config.write_text(text)
        self.tls_port = self._tls() if tls else None
        self.child: Child | None = None

    def _tls(self) -> int:
        """conf.d/tls.conf from the example, with a throwaway CA and server certificate."""
        certs = self.dir / "certs"
        certs.mkdir()
        openssl = shutil.which("openssl") or pytest.fail("openssl missing", pytrace=False)
        run = lambda *args: subprocess.run([openssl, *args], check=True, capture_output=True, cwd=certs)  # noqa: E731
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
            "-keyout", "ca.key", "-out", "ca.crt")
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key",
            "-out", "server.csr")
        (certs / "ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "ext", "-out", "server.crt")
        port = free_port()
        text = rewrite((MOSQUITTO / "conf.d" / "tls.conf.example").read_text(), {
            "listener 8883": f"listener {port} 127.0.0.1",
            "cafile /etc/mosquitto/certs/ca.crt": f"cafile {certs / 'ca.crt'}",
            "certfile /etc/mosquitto/certs/server.crt": f"certfile {certs / 'server.crt'}",
            "keyfile /etc/mosquitto/certs/server.key": f"keyfile {certs / 'server.key'}",
        })
        (self.dir / "conf.d" / "tls.conf").write_text(text)
        self.ca = certs / "ca.crt"
        return port

    def start(self) -> "Broker":
        self.child = Child(f"mosquitto-{uuid.uuid4().hex[:6]}", [self.binary, "-c", str(self.config)], self.dir)

        def listening() -> bool:
            assert self.child.alive(), f"mosquitto exited:\n{self.child.log()}"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return True
            except OSError:
                return False

        wait_until(listening, 10, 0.05, message=lambda: f"mosquitto listening; log:\n{self.child.log()}")
        return self

    def stop(self) -> None:
        if self.child is not None:
            assert self.child.stop(10) == 0, self.child.log()


class Client:
    """A paho client that records the CONNACK and what it receives."""

    def __init__(self, broker: Broker, user: str | None, password: str | None = PASSWORD, *,
                 client_id: str | None = None, clean: bool = True, tls: bool = False) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"t-{uuid.uuid4().hex[:8]}",
                                  clean_session=clean)
        if user:
            self.client.username_pw_set(user, password)
        if tls:
            self.client.tls_set(ca_certs=str(broker.ca), cert_reqs=ssl.CERT_REQUIRED)
        self.connack = None
        self.subacks: dict[int, list] = {}
        self.received: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.client.on_connect = lambda c, u, f, reason, p: setattr(self, "connack", reason)
        self.client.on_subscribe = lambda c, u, mid, codes, p: self.subacks.__setitem__(mid, codes)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.tls_port if tls else broker.port, keepalive=30)
        self.client.loop_start()
        wait_until(lambda: self.connack is not None, 10, message="CONNACK")

    def _on_message(self, _c, _u, message) -> None:
        with self.lock:
            self.received.append((message.topic, bytes(message.payload)))

    @property
    def accepted(self) -> bool:
        return not self.connack.is_failure

    def subscribe(self, topic: str) -> None:
        _rc, mid = self.client.subscribe(topic, 1)
        wait_until(lambda: mid in self.subacks, 10, message=f"SUBACK {topic}")

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(10)
        assert info.is_published()

    def topics(self) -> list[str]:
        with self.lock:
            return [topic for topic, _ in self.received]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def broker(tmp_path):
    broker = Broker(tmp_path).start()
    yield broker
    broker.stop()


def test_starts_and_authenticates_with_the_example_password_file(broker):
    good = Client(broker, "anomalyd")
    assert good.accepted, good.connack
    good.close()
    assert not Client(broker, None).accepted  # allow_anonymous false
    assert not Client(broker, "anomalyd", "wrong").accepted
    log = broker.child.log()
    assert f"Opening ipv4 listen socket on port {broker.port}" in log


def test_acl_and_message_size_limit(broker):
    daemon, sensors, consumer = Client(broker, "anomalyd"), Client(broker, "sensors"), Client(broker, "consumer")
    daemon.subscribe("sensors/#")
    consumer.subscribe("anomalyd/scores/#")
    sensors.publish("sensors/big", b"x" * 300_000)  # over message_size_limit: acknowledged, not delivered
    sensors.publish("anomalyd/scores/forged", b"{}")  # sensors may not write scores
    sensors.publish("sensors/s1", b"1.5")
    daemon.publish("anomalyd/scores/s1", b'{"score":0.1}')
    # Messages from one publisher arrive in order: once the later ones are in, the earlier are decided.
    wait_until(lambda: "sensors/s1" in daemon.topics(), 10, message="reading delivered to anomalyd")
    wait_until(lambda: "anomalyd/scores/s1" in consumer.topics(), 10, message="score delivered to consumer")
    assert "sensors/big" not in daemon.topics()
    assert "anomalyd/scores/forged" not in consumer.topics()
    for client in (daemon, sensors, consumer):
        client.close()


def test_persistent_session_queue_survives_a_broker_restart(tmp_path):
    broker = Broker(tmp_path).start()
    try:
        daemon = Client(broker, "anomalyd", client_id="anomalyd", clean=False)
        daemon.subscribe("sensors/+")
        daemon.close()  # the daemon is down; the broker queues for its session
        sensors = Client(broker, "sensors")
        for i in range(5):
            sensors.publish(f"sensors/s{i}", str(i).encode())
        sensors.close()
        broker.stop()  # SIGTERM: mosquitto saves its state (persistence true)
        assert (broker.dir / "persist" / "mosquitto.db").is_file()
        broker.start()
        daemon = Client(broker, "anomalyd", client_id="anomalyd", clean=False)
        wait_until(lambda: len(daemon.topics()) == 5, 10, message=lambda: f"queued readings, got {daemon.topics()}")
        assert sorted(daemon.topics()) == [f"sensors/s{i}" for i in range(5)]
        daemon.close()
    finally:
        broker.stop()


def test_tls_listener_from_the_example(tmp_path):
    broker = Broker(tmp_path, tls=True).start()
    try:
        secure = Client(broker, "anomalyd", tls=True)
        assert secure.accepted, secure.connack
        secure.subscribe("sensors/#")
        plain = Client(broker, "sensors")
        plain.publish("sensors/s1", b"2.0")
        wait_until(lambda: secure.topics() == ["sensors/s1"], 10, message="delivery over TLS")
        secure.close()
        plain.close()
    finally:
        broker.stop()


def test_daemon_over_tls_with_password_file_against_the_production_config(tmp_path):
    """mqtts://, CA verification, a password read from a file and never logged, ACLs as shipped."""
    from support.daemon import DaemonProcess

    broker = Broker(tmp_path, tls=True).start()
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    daemon = None
    try:
        consumer = Client(broker, "consumer")
        consumer.subscribe("anomalyd/scores/#")
        tls_broker = type("TlsBroker", (), {"url": f"mqtts://anomalyd@127.0.0.1:{broker.tls_port}"})()
        daemon = DaemonProcess(tls_broker, tmp_path / "daemon", {"mqtt": {
            "password_file": str(password_file), "tls_ca_file": str(broker.ca)}}).start()
        sensors = Client(broker, "sensors")
        sensors.publish("sensors/tls1", b"42.5")
        wait_until(lambda: consumer.topics() == ["anomalyd/scores/tls1"], 15, message="a score over TLS")
        assert PASSWORD not in daemon.log_text()
        assert "mqtts://anomalyd:" not in daemon.log_text() or "***" in daemon.log_text()
        sensors.close()
        consumer.close()
    finally:
        if daemon is not None:
            assert daemon.stop() == 0
        broker.stop()
