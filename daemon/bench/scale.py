"""``anomalyd bench scale``: cost per reading as the fleet grows, and checkpoint figures.

For 1,000 / 10,000 / 100,000 active sensors, each reporting once per tick through the
detector (engine and scorer, no broker): tick time p50/p99, readings/s, peak RSS, checkpoint
size, snapshot, write and restore time, and the p99 of 1,024-reading ticks with and without a
checkpoint being written at the same time. Each size runs in its own process so RSS figures
do not mix; that process's peak includes a second, restored copy of the state (the restore
measurement), so the memory bar is judged on the real daemon holding the largest fleet.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from anomalyd.daemon import checkpoint
from anomalyd.daemon.bench.procstat import peak_rss_bytes
from anomalyd.daemon.bench.timing import machine
from anomalyd.daemon.config import StateConfig
from anomalyd.daemon.detector import Detector, DetectorSettings
from anomalyd.daemon.durability import StateKeeper
from anomalyd.daemon.journal import START
from anomalyd.daemon.metrics import Metrics
from anomalyd.models.artifact import Artifact, load

SIZES = (1_000, 10_000, 100_000)
SMALL_TICK = 1024


def _tick(detector: Detector, ids: list[str], rows: np.ndarray, clock: float, rng) -> float:
    started = time.perf_counter()
    detector.process([ids[i] for i in rows], np.full(len(rows), clock), rng.normal(size=len(rows)), now=clock)
    return time.perf_counter() - started


def _small_ticks(detector, ids, clock, rng, count: int) -> tuple[list[float], float]:
    durations = []
    for _ in range(count):
        clock += 1.0
        durations.append(_tick(detector, ids, rng.choice(len(ids), min(SMALL_TICK, len(ids)), replace=False),
                               clock, rng))
    return durations, clock


def measure(n: int, artifact: Artifact, ticks: int) -> dict:
    rng = np.random.default_rng(0)
    detector = Detector(artifact, DetectorSettings(capacity=n, batch_size=1024))
    ids = [f"s{i:06d}" for i in range(n)]
    everyone = np.arange(n)
    clock = 1.7e9
    for _ in range(3):  # first readings allocate rows; time the steady state
        clock += 1.0
        _tick(detector, ids, everyone, clock, rng)
    full = []
    for _ in range(ticks):
        clock += 1.0
        full.append(_tick(detector, ids, everyone, clock, rng))
    quiet, clock = _small_ticks(detector, ids, clock, rng, 30)
    result = {"sensors": n, "tick_p50_s": round(float(np.median(full)), 4),
              "tick_p99_s": round(float(np.percentile(full, 99)), 4),
              "readings_per_s": round(n / float(np.median(full))),
              "us_per_reading": round(float(np.median(full)) / n * 1e6, 2)}
    with tempfile.TemporaryDirectory(prefix="anomalyd-scale-") as tmp:
        result.update(_checkpoint_figures(detector, artifact, Path(tmp)))
        busy, clock = _ticks_while_writing(detector, ids, clock, rng, Path(tmp) / "busy")
    result["small_tick_p99_s"] = round(float(np.percentile(quiet, 99)), 5)
    result["small_tick_p99_during_checkpoint_s"] = round(float(np.percentile(busy, 99)), 5) if busy else None
    result["small_ticks_during_checkpoint"] = len(busy)
    result["peak_rss_bytes"] = peak_rss_bytes(os.getpid())
    return result


def _checkpoint_figures(detector: Detector, artifact: Artifact, directory: Path) -> dict:
    started = time.perf_counter()
    rows, arrays = detector.snapshot_arrays()
    snapshot_s = time.perf_counter() - started
    snap = checkpoint.Snapshot(rows, arrays, artifact.fingerprint, {}, START)
    started = time.perf_counter()
    path, size = checkpoint.CheckpointWriter(directory).write(snap)
    write_s = time.perf_counter() - started
    del snap, arrays  # the restore below holds a second full copy of the state
    started = time.perf_counter()
    loaded = checkpoint.read(path)
    Detector(artifact, DetectorSettings(capacity=detector.table.capacity, batch_size=1024)).load_state(
        loaded.rows, loaded.arrays, same_model=True)
    restore_s = time.perf_counter() - started
    return {"checkpoint_bytes": size, "checkpoint_snapshot_s": round(snapshot_s, 4),
            "checkpoint_write_s": round(write_s, 3), "restore_s": round(restore_s, 3)}


def _ticks_while_writing(detector, ids, clock, rng, directory: Path) -> tuple[list[float], float]:
    """Small ticks while the background writer writes a checkpoint of the whole state."""
    keeper = StateKeeper(StateConfig(directory=str(directory), checkpoint_interval=0.0), Metrics(),
                         logging.getLogger("anomalyd.bench"))
    keeper.start()
    durations = []
    try:
        keeper.maybe_checkpoint(detector, START)
        while keeper.writing:
            ticks, clock = _small_ticks(detector, ids, clock, rng, 1)
            durations += ticks
    finally:
        keeper.close()
    return durations, clock


def daemon_peak_rss(sensors: int) -> dict:
    """The real daemon (MQTT, journal, checkpoints) holding ``sensors`` sensors: its peak RSS
    once every sensor has a slot and a checkpoint of them all has been written."""
    from anomalyd.daemon.bench import e2e
    from anomalyd.daemon.bench.procstat import peak_rss_bytes as rss_of
    from anomalyd.daemon.local_broker import MosquittoBroker

    with tempfile.TemporaryDirectory(prefix="anomalyd-rss-") as tmp, \
            MosquittoBroker(Path(tmp) / "broker", extra_config=e2e.BROKER_CONFIG) as broker:
        daemon = e2e.Consumer("anomalyd", broker, Path(tmp), batch_scores=True,
                              extra={"detector": {"max_sensors": sensors},
                                     "state": {"checkpoint_interval": 5.0}})
        daemon.start()
        messages = e2e.senml_messages(sensors // 100, time.time() - 3600, sensors=sensors)
        e2e.publish(broker, messages)
        state = Path(tmp) / "state"
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not _checkpoint_with(state, sensors):
            time.sleep(0.5)  # polling a file the daemon writes on its own schedule
        rss = rss_of(daemon.process.pid)
        daemon.stop()
    return {"sensors": sensors, "daemon_peak_rss_bytes": rss}


def _checkpoint_with(directory: Path, sensors: int) -> bool:
    newest = checkpoint.list_checkpoints(directory)
    if not newest:
        return False
    try:
        return len(checkpoint.read(newest[0][1]).rows) >= sensors
    except checkpoint.CheckpointError:
        return False


def run(artifact: Artifact, quick: bool = False) -> dict:
    sizes = SIZES[:2] if quick else SIZES
    results = []
    for n in sizes:
        command = [sys.executable, "-m", "anomalyd.daemon.bench.scale", str(n), str(artifact.path),
                   "5" if quick else "15"]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
    report = {"benchmark": "scale", "machine": machine(), "model": artifact.fingerprint, "sizes": results,
              "daemon": daemon_peak_rss(sizes[-1])}
    first, last = results[0], results[-1]
    report["per_reading_cost_ratio"] = round(last["us_per_reading"] / first["us_per_reading"], 2)
    if last["sensors"] == SIZES[-1]:
        # The bar is the daemon's: the measuring process also holds the restored copy.
        report["bars"] = {"rss_at_100k<=2GiB": report["daemon"]["daemon_peak_rss_bytes"] <= 2 * 1024 ** 3,
                          "per_reading_cost_at_100k<=2x_1k": report["per_reading_cost_ratio"] <= 2.0}
    return report


if __name__ == "__main__":
    size, model_path, tick_count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    print(json.dumps(measure(size, load(model_path), tick_count)))
