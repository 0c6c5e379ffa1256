"""The detection core without MQTT: ordering, duplicates, resets, capacity, eviction."""
from __future__ import annotations

import numpy as np
import pytest

from anomalyd.daemon.detector import Detector, DetectorSettings
from anomalyd.daemon.scoring import ScoringSettings
from anomalyd.models.artifact import load


@pytest.fixture(scope="module")
def artifact():
    return load()


def make(artifact, **settings) -> Detector:
    return Detector(artifact, DetectorSettings(**{"capacity": 16, "batch_size": 4, **settings}),
                    ScoringSettings(warmup=3))


def test_readings_are_applied_in_timestamp_order_per_sensor(artifact):
    shuffled, ordered = make(artifact), make(artifact)
    ts = np.array([5.0, 1.0, 3.0, 2.0, 4.0])
    values = np.array([50.0, 10.0, 30.0, 20.0, 40.0])
    a = shuffled.process(["s"] * 5, ts, values)
    order = np.argsort(ts)
    b = ordered.process(["s"] * 5, ts[order], values[order])
    assert a.ts.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0] and a.index.tolist() == [1, 3, 2, 4, 0]
    assert np.array_equal(a.score, b.score) and np.allclose(a.prediction, b.prediction, equal_nan=True)


def test_duplicates_and_stale_readings_are_rejected_in_and_across_ticks(artifact):
    detector = make(artifact)
    first = detector.process(["s", "s", "s"], np.array([10.0, 10.0, 11.0]), np.array([1.0, 1.0, 2.0]))
    assert len(first) == 2 and [reason for _, reason in first.rejected] == ["duplicate"]
    second = detector.process(["s", "s", "s"], np.array([9.0, 11.0, 9.5]), np.array([1.0, 2.0, 3.0]))
    assert len(second) == 0
    assert sorted(reason for _, reason in second.rejected) == ["duplicate", "out_of_order", "out_of_order"]


def test_capacity_refuses_newcomers_until_a_slot_frees(artifact):
    detector = make(artifact, capacity=2)
    result = detector.process(["a", "b", "c"], np.array([1.0, 1.0, 1.0]), np.ones(3), now=100.0)
    assert result.sensors == ["a", "b"] and result.rejected == [(2, "capacity")]
    assert result.resets["new"] == 2
    detector.process(["a"], np.array([2.0]), np.ones(1), now=200.0)
    assert detector.evict_idle(now=250.0, idle_timeout=100.0) == ["b"]
    assert detector.process(["c"], np.array([3.0]), np.ones(1)).sensors == ["c"]


def test_non_finite_value_is_rejected_and_restarts_the_sensor(artifact):
    detector = make(artifact)
    detector.process(["s"] * 5, np.arange(1.0, 6.0), np.arange(5.0))
    result = detector.process(["s"], np.array([6.0]), np.array([np.nan]))
    assert result.rejected == [(0, "non_finite")] and result.resets["non_finite"] == 1
    after = detector.process(["s"], np.array([7.0]), np.array([1.0]))
    assert after.warmup[0] and np.isnan(after.prediction[0])  # starts afresh
    stale = detector.process(["s"], np.array([2.0]), np.array([1.0]))
    assert stale.rejected == [(0, "out_of_order")]  # but its ordering guard survives


def test_gap_resets_context_only(artifact):
    detector = make(artifact, max_gap=100.0)
    detector.process(["s"] * 6, np.arange(1.0, 7.0), np.arange(6.0))
    row = detector.table.row("s")
    count_before = detector.table["count"][row]
    result = detector.process(["s"], np.array([500.0]), np.array([6.0]))
    assert result.resets["gap"] == 1 and np.isnan(result.prediction[0])
    assert not result.warmup[0] and detector.table["count"][row] == count_before + 1


def test_control_reset_starts_one_sensor_afresh_and_leaves_others(artifact):
    detector = make(artifact)
    detector.process(["a", "b"] * 6, np.repeat(np.arange(1.0, 7.0), 2), np.tile([1.0, 2.0], 6))
    b_row = detector.table.row("b")
    before = {name: array[b_row].copy() for name, array in detector.table.arrays.items()}
    assert detector.reset_sensor("a") and not detector.reset_sensor("nobody")
    assert all(np.array_equal(detector.table[name][b_row], value, equal_nan=True) for name, value in before.items())
    result = detector.process(["a", "b"], np.array([7.0, 7.0]), np.array([1.0, 2.0]))
    assert result.warmup.tolist() == [True, False]


def test_more_sensors_than_the_batch_and_several_readings_each(artifact):
    detector = make(artifact, capacity=64, batch_size=4)
    sensors = [f"s{i}" for i in range(10)] * 3
    ts = np.repeat([1.0, 2.0, 3.0], 10)
    result = detector.process(sensors, ts, np.arange(30.0))
    assert len(result) == 30 and len(detector.table) == 10
    for name in set(sensors):
        own = [t for s, t in zip(result.sensors, result.ts) if s == name]
        assert own == [1.0, 2.0, 3.0]


def test_counters_are_judged_against_their_trend_and_their_spikes_flagged(artifact):
    # Eight counters (increments of mean 5, local sigma 1.5) through the real engine and head;
    # each gets a 7-sigma spike late in its run.
    n, steps = 8, 1600
    rng = np.random.default_rng(3)
    values = 1e4 + np.cumsum(rng.normal(5.0, 1.5, (steps, n)), axis=0)
    spike_at = 1400 + 20 * np.arange(n)
    values[spike_at, np.arange(n)] += np.where(np.arange(n) % 2, 7 * 1.5, -7 * 1.5)
    detector = Detector(artifact, DetectorSettings(capacity=n, batch_size=n), ScoringSettings())
    sensors = [f"counter{i}" for i in range(n)]
    flagged, published = np.zeros((steps, n), bool), np.zeros((steps, n))
    for t in range(steps):
        result = detector.process(sensors, np.full(n, 1.7e9 + 5.0 * t), values[t])
        flagged[t, result.index], published[t, result.index] = result.anomaly, result.prediction
    # The published prediction is the fallback's: previous reading plus the mean increment.
    quiet = np.arange(1200, 1390)
    assert np.abs(published[quiet] - (values[quiet - 1] + 5.0)).max() < 1.0
    caught = [flagged[at:at + 3, i].any() for i, at in enumerate(spike_at)]
    assert np.mean(caught) >= 0.75  # the return test misses about one in eight (test_scoring)
    assert flagged[300:1390].sum() <= 2  # and the ramp itself raises nothing


def test_a_sensor_that_falls_silent_is_flagged_when_it_returns(artifact):
    # Eight noisy sensors every 5 s (with jitter) through the real engine; sensor i misses
    # 6 + 3 i readings once, late in its run.
    n, steps = 8, 800
    rng = np.random.default_rng(4)
    ts = 1.7e9 + 5.0 * np.arange(steps)[:, None] + rng.uniform(-0.5, 0.5, (steps, n))
    values = 20.0 + rng.normal(0.0, 1.0, (steps, n))
    silent_from = 600 + 10 * np.arange(n)
    present = np.ones((steps, n), bool)
    for i, start in enumerate(silent_from):
        present[start:start + 6 + 3 * i, i] = False
    detector = Detector(artifact, DetectorSettings(capacity=n, batch_size=n), ScoringSettings())
    sensors = np.array([f"sensor{i}" for i in range(n)])
    flagged = np.zeros((steps, n), bool)
    for t in range(steps):
        here = np.flatnonzero(present[t])
        result = detector.process(list(sensors[here]), ts[t, here], values[t, here])
        flagged[t, here[result.index]] = result.anomaly
    back = [start + 6 + 3 * i for i, start in enumerate(silent_from)]
    assert all(flagged[at, i] for i, at in enumerate(back))


def test_set_predictions_replaces_only_pending_model_predictions(artifact):
    detector = make(artifact)
    detector.set_predictions(["a", "new"], np.array([5.0, 5.0]))  # nothing pending yet: ignored
    first = detector.process(["a", "b"], np.array([1.0, 1.0]), np.array([1.0, 2.0]))
    assert np.isnan(first.prediction).all()
    model = detector.process(["a", "b"], np.array([2.0, 2.0]), np.array([1.5, 2.5]))
    detector.set_predictions(["a", "b", "unknown"], np.array([42.0, np.nan, 7.0]))
    judged = detector.process(["a", "b"], np.array([3.0, 3.0]), np.array([1.5, 2.5]))
    assert judged.prediction[0] == 42.0  # judged against the given value
    assert np.isfinite(judged.prediction[1]) and judged.prediction[1] != 42.0  # NaN: the model's kept
    assert detector.table.row("unknown") is None and np.isfinite(model.prediction).all()
