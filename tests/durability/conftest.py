"""Helpers for restart tests: readings, a persistent collector, checkpoint comparison."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from anomalyd.daemon import checkpoint
from support.mqtt import MqttTestClient

# Wall-clock bookkeeping, not model state: allowed to differ between runs.
VOLATILE_FIELDS = {"seen_at"}


def readings(n_sensors: int, n_per_sensor: int, start: float, seed: int = 0) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    messages = []
    for i in range(n_per_sensor):
        for s in range(n_sensors):
            value = 50.0 * s + 10.0 * np.sin(i / 9.0 + s) + rng.normal(0, 0.5)
            messages.append((f"sensors/d{s:02d}", json.dumps({"value": value, "ts": start + 60.0 * i})))
    return messages


@pytest.fixture
def collector(mosquitto_persistent):
    client = MqttTestClient(mosquitto_persistent.host, mosquitto_persistent.port, client_id="score-collector",
                            clean_session=False).connect()
    client.subscribe("anomalyd/scores/#", qos=1)
    yield client
    client.disconnect()


def scored_keys(client) -> set[tuple[str, float]]:
    keys = set()
    for message in client.messages:
        if message.topic.startswith("anomalyd/scores/"):
            body = json.loads(message.payload)
            keys.add((body["sensor"], body["ts"]))
    return keys


def newest_state(directory: Path) -> checkpoint.Loaded:
    (_, path), *_ = checkpoint.list_checkpoints(Path(directory))
    return checkpoint.read(path)


def state_difference(a: checkpoint.Loaded, b: checkpoint.Loaded) -> float:
    """Largest absolute difference over every sensor and field (NaN == NaN)."""
    assert set(a.rows) == set(b.rows), "different sensors"
    worst = 0.0
    for name, array in a.arrays.items():
        if name in VOLATILE_FIELDS:
            continue
        for sensor, row in a.rows.items():
            x, y = array[row].astype(np.float64), b.arrays[name][b.rows[sensor]].astype(np.float64)
            both_nan = np.isnan(x) & np.isnan(y)
            if not np.array_equal(np.isinf(x), np.isinf(y)) or not np.array_equal(np.isnan(x), np.isnan(y)):
                return float("inf")
            finite = ~(both_nan | np.isinf(x))
            if finite.any():
                worst = max(worst, float(np.max(np.abs(x[finite] - y[finite]))))
    return worst


def make_unwritable(directory: Path) -> None:
    """Make ``directory`` refuse new files, even for root (whom permission bits do not stop)."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(directory)], check=True)
    else:
        directory.chmod(0o555)
    probe = directory / "probe"
    try:
        probe.write_text("x")
    except OSError:
        return
    probe.unlink()
    pytest.fail(f"could not make {directory} unwritable on this file system")


def make_writable(directory: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(directory)], check=False)
    directory.chmod(0o755)
