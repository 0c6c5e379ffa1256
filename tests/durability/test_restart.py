"""Crash-exact restarts, corrupt checkpoints, another model, an unwritable state directory."""
from __future__ import annotations

import json
import random
import time

import numpy as np

from anomalyd.daemon import checkpoint
from support.daemon import DaemonProcess, publish_all
from support.wait import wait_until

from .conftest import make_unwritable, make_writable, newest_state, readings, scored_keys, state_difference

SENSORS, PER_SENSOR = 20, 150
CONFIG = {"scoring": {"warmup": 30}, "state": {"checkpoint_interval": 0.3}}


def run_and_stop(broker, workdir, client_id: str, sensors: int, per_sensor: int, config: dict = CONFIG) -> DaemonProcess:
    """Start a daemon, feed it readings, wait until all are scored, stop it cleanly."""
    daemon = DaemonProcess(broker, workdir, config, client_id=client_id).start()
    publish_all(broker, readings(sensors, per_sensor, time.time() - 60.0 * per_sensor))
    total = sensors * per_sensor
    wait_until(lambda: daemon.metric("anomalyd_readings_scored_total") >= total, 30, message=f"{total} scored")
    assert daemon.stop() == 0
    return daemon


def run_uninterrupted(broker, workdir, messages) -> checkpoint.Loaded:
    daemon = DaemonProcess(broker, workdir, CONFIG, client_id="reference").start()
    publish_all(broker, messages)
    wait_until(lambda: daemon.metric("anomalyd_readings_scored_total") >= len(messages), 60,
               message="reference run scored everything")
    assert daemon.stop() == 0
    return newest_state(workdir / "state")


def test_kill_9_at_random_points_loses_nothing_and_restores_exact_state(mosquitto_persistent, collector, tmp_path):
    broker = mosquitto_persistent
    messages = readings(SENSORS, PER_SENSOR, time.time() - 60.0 * PER_SENSOR)
    reference = run_uninterrupted(broker, tmp_path / "reference", messages)

    rng = random.Random(7)
    cuts = sorted(rng.sample(range(200, len(messages) - 200), 3))
    workdir = tmp_path / "crashing"
    state = workdir / "state"
    # A slow checkpoint writer, so a kill can land in the middle of a checkpoint write.
    config = {**CONFIG, "state": {**CONFIG["state"], "checkpoint_write_rate": 20_000}}
    daemon = DaemonProcess(broker, workdir, config, client_id="crashing").start()
    kill_when = [
        (lambda: list(state.glob("checkpoint-*.ckpt")), "a completed checkpoint"),
        (lambda: list(state.glob(".checkpoint-*.tmp")), "a checkpoint write in progress"),
        (lambda: daemon.metric("anomalyd_readings_scored_total") > 0, "some scoring"),
    ]
    previous = 0
    for cut, (condition, what) in zip(cuts, kill_when):
        publish_all(broker, messages[previous:cut])
        previous = cut
        wait_until(condition, 30, message=what)
        daemon.kill()  # SIGKILL
        daemon.start()
    scored_before = scored_keys(collector)
    collector.clear()
    publish_all(broker, messages[previous:])
    last = {(f"d{s:02d}", json.loads(messages[-SENSORS + s][1])["ts"]) for s in range(SENSORS)}
    # The restarted daemon has worked through its backlog once it scored every sensor's last reading.
    wait_until(lambda: last <= scored_keys(collector), 90, message="the last reading of every sensor scored")
    assert daemon.stop() == 0
    crashed = newest_state(state)
    assert state_difference(reference, crashed) <= 1e-6
    every_reading = {(json.loads(payload)["ts"], topic.rsplit("/", 1)[1]) for topic, payload in messages}
    all_scored = {(ts, sensor) for sensor, ts in scored_keys(collector) | scored_before}
    assert every_reading <= all_scored, f"{len(every_reading - all_scored)} readings never scored"
    assert "replayed" in daemon.log_text()


def test_corrupt_newest_checkpoint_falls_back_and_says_so(mosquitto_persistent, tmp_path):
    workdir = tmp_path / "d"
    config = {**CONFIG, "state": {**CONFIG["state"], "keep": 6}}  # room for the damaged files
    daemon = DaemonProcess(mosquitto_persistent, workdir, config, client_id="corrupt").start()
    publish_all(mosquitto_persistent, readings(3, 40, time.time() - 4000))
    wait_until(lambda: daemon.metric("anomalyd_readings_scored_total") >= 120, 30, message="scored")
    wait_until(lambda: len(checkpoint.list_checkpoints(workdir / "state")) >= 2, 30, message="two checkpoints")
    assert daemon.stop() == 0
    for damage in ("truncate", "flip", "delete"):
        (_, newest), *others = checkpoint.list_checkpoints(workdir / "state")
        older = next(path for _, path in others if checkpoint.describe(path)["valid"])
        invalid_before = sum(not checkpoint.describe(path)["valid"] for _, path in others)
        data = newest.read_bytes()
        if damage == "truncate":
            newest.write_bytes(data[:-100])
        elif damage == "flip":
            newest.write_bytes(data[:50] + bytes([data[50] ^ 0x10]) + data[51:])
        else:
            newest.unlink()
        daemon.start()
        wait_until(lambda: f"restored 3 sensors from {older.name}" in daemon.log_text(), 30,
                   message=lambda: f"restore from {older.name} ({damage}); log:\n{daemon.log_text()[-2000:]}")
        if damage != "delete":
            assert f"checkpoint {newest.name} is not usable" in daemon.log_text()
            skipped = str(invalid_before + 1)
            assert daemon.metric("anomalyd_restore_info", outcome="fallback", checkpoint=older.name, skipped=skipped) == 1
        assert daemon.stop() == 0


def test_all_checkpoints_corrupt_starts_fresh_loudly(mosquitto_persistent, tmp_path):
    workdir = tmp_path / "d"
    daemon = run_and_stop(mosquitto_persistent, workdir, "allbad", 2, 10)
    for _, path in checkpoint.list_checkpoints(workdir / "state"):
        path.write_bytes(b"garbage")
    daemon.start()
    assert "no valid checkpoint" in daemon.log_text()
    assert daemon.metric("anomalyd_checkpoint_invalid_total") >= 1
    daemon.stop()


def test_checkpoint_of_another_model_keeps_normalisers_and_resets_network_state(mosquitto_persistent, tmp_path):
    import shutil

    from tests.models.conftest import make_artifact

    workdir = tmp_path / "d"
    daemon = run_and_stop(mosquitto_persistent, workdir, "model", 4, 60)
    before = newest_state(workdir / "state")
    other = make_artifact(tmp_path / "other_model", (32,), seed=42)
    daemon.write_config({**daemon.config, "detector": {**daemon.config["detector"], "model": str(other.path)}})
    daemon.start()
    assert "network state of 4 sensors reset" in daemon.log_text()
    assert daemon.stop() == 0
    after = newest_state(workdir / "state")
    assert after.fingerprint == other.fingerprint != before.fingerprint
    for sensor, row in before.rows.items():
        new_row = after.rows[sensor]
        assert np.array_equal(after.arrays["norm_mean"][new_row], before.arrays["norm_mean"][row])
        assert np.array_equal(after.arrays["count"][new_row], before.arrays["count"][row])
        assert not after.arrays["state"][new_row].any() and np.isnan(after.arrays["prediction"][new_row])
        assert before.arrays["state"][row].any()
    shutil.rmtree(tmp_path / "other_model")


def test_unwritable_state_directory_keeps_scoring_and_raises_the_failure_metric(mosquitto, tmp_path):
    workdir = tmp_path / "d"
    daemon = DaemonProcess(mosquitto, workdir, CONFIG, client_id="readonly").start()
    state = workdir / "state"
    make_unwritable(state)
    try:
        start = time.time() - 1000
        publish_all(mosquitto, [("sensors/ro", f'{{"value": {i}, "ts": {start + i}}}') for i in range(50)])
        wait_until(lambda: daemon.metric("anomalyd_checkpoint_failures_total") >= 2, 30, message="failures")
        wait_until(lambda: daemon.metric("anomalyd_readings_scored_total") >= 50, 30, message="scoring goes on")
        assert daemon.metric("anomalyd_checkpoint_failing") == 1
        assert daemon.process.poll() is None
    finally:
        make_writable(state)
    wait_until(lambda: daemon.metric("anomalyd_checkpoint_failing") == 0, 30, message="recovers when writable")
    daemon.stop()


def test_state_inspect_and_verify(mosquitto, tmp_path):
    import subprocess
    import sys

    workdir = tmp_path / "d"
    run_and_stop(mosquitto, workdir, "inspect", 3, 20)
    state = workdir / "state"

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "anomalyd.daemon.cli", "state", *args, str(state)],
                              capture_output=True, text=True, timeout=60)

    inspect = cli("inspect")
    assert inspect.returncode == 0 and "3 sensors" in inspect.stdout and " ok " in inspect.stdout
    assert cli("verify").returncode == 0
    (_, newest), *_ = checkpoint.list_checkpoints(state)
    newest.write_bytes(newest.read_bytes()[:-1])
    bad = cli("verify")
    assert bad.returncode == 1 and newest.name in bad.stderr and "CORRUPT" in bad.stdout
