"""Project-wide fixtures: a fresh private mosquitto broker per test."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Make ``tests.support`` importable as ``support`` whatever the rootdir/import mode.
sys.path.insert(0, str(Path(__file__).parent))

from support.mosquitto import BINARY_ENV, MosquittoBroker, mosquitto_binary  # noqa: E402


def _require_mosquitto() -> None:
    binary = mosquitto_binary()
    if not os.access(binary, os.X_OK):
        pytest.fail(
            f"mosquitto not found at {binary}. The integration tests need a real broker: run the "
            f"project's setup script (it installs mosquitto, e.g. apt-get install mosquitto), "
            f"or point ${BINARY_ENV} at a mosquitto binary.",
            pytrace=False,
        )


@pytest.fixture
def mosquitto(tmp_path: Path):
    """A private broker on a free port (no persistence), stopped after the test."""
    _require_mosquitto()
    broker = MosquittoBroker(tmp_path / "mosquitto")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def mosquitto_persistent(tmp_path: Path):
    """A private broker with persistence on; ``restart()`` keeps port and stored sessions."""
    _require_mosquitto()
    broker = MosquittoBroker(tmp_path / "mosquitto", persistence=True)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(autouse=True)
def _no_daemon_outlives_its_test():
    """Kill any daemon subprocess a test started and did not stop (e.g. after a failure)."""
    from support.daemon import DaemonProcess

    yield
    while DaemonProcess.live:
        DaemonProcess.live.pop().kill()
