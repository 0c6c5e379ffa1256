"""A slow checkpoint write must not slow the ticks down (it runs on its own thread)."""
from __future__ import annotations

import logging
import time

import numpy as np

from anomalyd.daemon.config import StateConfig
from anomalyd.daemon.detector import Detector, DetectorSettings
from anomalyd.daemon.durability import StateKeeper
from anomalyd.daemon.journal import START
from anomalyd.daemon.metrics import Metrics
from anomalyd.daemon.scoring import ScoringSettings
from anomalyd.models.artifact import load

SENSORS, PER_TICK = 20_000, 2_000


def tick_times(detector: Detector, rng: np.random.Generator, clock: list[float], count: int) -> list[float]:
    durations = []
    for _ in range(count):
        chosen = rng.choice(SENSORS, PER_TICK, replace=False)
        clock[0] += 1.0
        started = time.perf_counter()
        detector.process([f"s{i}" for i in chosen], np.full(PER_TICK, clock[0]), rng.normal(size=PER_TICK))
        durations.append(time.perf_counter() - started)
    return durations


def test_ticks_during_a_slow_checkpoint_stay_within_twice_normal(tmp_path):
    # The per-sensor head learns from the second reading on: ticks cost the same from the start.
    detector = Detector(load(), DetectorSettings(capacity=SENSORS, batch_size=1024),
                        ScoringSettings(warmup=5, head_skip=0))
    rng = np.random.default_rng(0)
    clock = [1e9]
    detector.process([f"s{i}" for i in range(SENSORS)], np.full(SENSORS, clock[0]), rng.normal(size=SENSORS))
    # Steady state before measuring: random ticks spread the sensors' reading counts, so the
    # head's periodic folds and refits fall evenly on ticks, as they do in the long run.
    tick_times(detector, rng, clock, 150)
    normal = tick_times(detector, rng, clock, 30)

    keeper = StateKeeper(StateConfig(directory=str(tmp_path), checkpoint_interval=0.0), Metrics(),
                         logging.getLogger("test"), write_rate=3e6)  # bytes/s: a deliberately slow disk
    keeper.start()
    try:
        assert keeper.maybe_checkpoint(detector, START)
        during = []
        while keeper.writing:
            during += tick_times(detector, rng, clock, 1)
        assert len(during) >= 10, "the checkpoint finished too fast to measure anything"
    finally:
        keeper.close()
    assert list(tmp_path.glob("checkpoint-*.ckpt")), "the checkpoint was written"
    assert np.median(during) <= 2 * np.median(normal)
    assert np.percentile(during, 90) <= 2 * np.percentile(normal, 90)
