"""Fixtures: a real daemon on the test broker, and a client that collects its output."""
from __future__ import annotations

import json

import pytest

from support.daemon import DaemonProcess
from support.mqtt import MqttTestClient


@pytest.fixture
def scores(mosquitto):
    """A client subscribed to everything the daemon publishes."""
    client = MqttTestClient.for_broker(mosquitto)
    client.subscribe("anomalyd/#", qos=1)
    yield client
    client.disconnect()


@pytest.fixture
def make_daemon(mosquitto, tmp_path):
    started = []

    def make(config: dict | None = None, start: bool = True, **kwargs) -> DaemonProcess:
        daemon = DaemonProcess(mosquitto, tmp_path / f"daemon{len(started)}", config, **kwargs)
        started.append(daemon)
        return daemon.start() if start else daemon

    yield make
    for daemon in started:
        daemon.kill()


def score_messages(client) -> list[dict]:
    return [json.loads(m.payload) for m in client.messages if m.topic.startswith("anomalyd/scores/")]
