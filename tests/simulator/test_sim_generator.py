"""The pure generator: determinism, signal variety, anomaly injection and its labels."""

from __future__ import annotations

import re

import numpy as np
import pytest

from anomalyd.simulator import (
    FAMILY_NAMES, KIND_NAMES, AnomalyConfig, Fleet, FleetConfig, generate_scenario, training_series,
)

START = 1_700_000_000.0


def _collect(fleet: Fleet, ends) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    ticks = [fleet.readings_until(t) for t in ends]
    s = np.concatenate([t.sensor for t in ticks])
    ts = np.concatenate([t.ts for t in ticks])
    v = np.concatenate([t.value for t in ticks])
    order = np.lexsort((ts, s))
    labels = sorted((lb for t in ticks for lb in t.labels), key=lambda lb: (lb.sensor, lb.start_ts, lb.kind))
    return s[order], ts[order], v[order], labels


def _config(**kw) -> FleetConfig:
    base = dict(n_sensors=40, seed=7, start_ts=START, period=0.5, missing=0.05, churn=0.1, churn_horizon=600,
                anomalies=AnomalyConfig(rate_per_hour=20, warmup=10))
    return FleetConfig(**(base | kw))


def test_same_seed_same_readings_and_labels_whatever_the_tick_size():
    whole = _collect(Fleet(_config()), [START + 600])
    ragged = _collect(Fleet(_config()), list(START + np.cumsum(np.full(1621, 0.37)).clip(max=600)) + [START + 600])
    for a, b in zip(whole[:3], ragged[:3]):
        np.testing.assert_array_equal(a, b)
    assert whole[3] == ragged[3] and len(whole[3]) > 10


def test_different_seed_differs_and_timestamps_follow_start_ts():
    a = _collect(Fleet(_config()), [START + 60])
    b = _collect(Fleet(_config(seed=8)), [START + 60])
    assert not np.array_equal(a[2][:100], b[2][:100])
    shifted = _collect(Fleet(_config(start_ts=START + 1000)), [START + 1060])
    np.testing.assert_array_equal(a[2], shifted[2])  # values independent of the start time
    np.testing.assert_allclose(shifted[1] - a[1], 1000.0, atol=1e-3)


def test_sensor_parameters_do_not_depend_on_fleet_size():
    small = _collect(Fleet(_config(n_sensors=5, churn=0.0)), [START + 30])
    big = _collect(Fleet(_config(n_sensors=50, churn=0.0)), [START + 30])
    mask = big[0] < 5
    np.testing.assert_array_equal(small[2], big[2][mask])


def test_scales_families_and_ids():
    sc = generate_scenario(300, 120, seed=1, anomaly_rate=0)
    medians = np.array([np.median(np.abs(v)) for v in sc.values if len(v)])
    assert medians.max() / medians[medians > 0].min() > 1e6  # 1e-3 .. 1e6 scales
    assert set(sc.families) == set(FAMILY_NAMES)
    assert all(re.fullmatch(r"s\d{5}", s) for s in sc.sensor_ids)
    assert all(np.all(np.isfinite(v)) for v in sc.values)
    counters = [v for v, f in zip(sc.values, sc.families) if f == "counter"]
    assert all(np.all(np.diff(v) >= 0) for v in counters)  # no resets this short


def test_missing_and_jitter():
    cfg = _config(n_sensors=20, missing=0.2, churn=0.0, jitter=0.5, anomalies=AnomalyConfig())
    fleet = Fleet(cfg)
    tick = fleet.readings_until(START + 500)
    assert 0.17 < 1 - len(tick) / (20 * 1000) < 0.23
    per_sensor = [np.diff(np.sort(tick.ts[tick.sensor == i])) for i in range(20)]
    gaps = np.concatenate(per_sensor)
    assert gaps.min() > 0 and np.std(gaps[gaps < 0.75]) > 0.01  # jittered, still ordered


def test_every_kind_is_injected_and_labelled_with_sane_spans():
    sc = generate_scenario(60, 3 * 3600, seed=11, period=1.0, anomaly_rate=6, churn=0.1, warmup=60)
    kinds = {lb.kind for lb in sc.labels}
    assert kinds == set(KIND_NAMES) | {"appear", "vanish"}
    for lb in sc.labels:
        ts, v = sc.series(lb.sensor)
        assert sc.start_ts <= lb.start_ts <= lb.end_ts <= sc.end_ts
        inside = (ts >= lb.start_ts) & (ts <= lb.end_ts)
        if lb.kind == "spike":
            assert lb.start_ts == lb.end_ts and lb.start_ts in ts
        elif lb.kind == "dropout":
            assert not inside.any()
        elif lb.kind == "stuck":
            assert len(np.unique(v[inside])) == 1
        elif lb.kind == "appear":
            assert ts.min() >= lb.start_ts
        elif lb.kind == "vanish":
            assert ts.max() < lb.start_ts
        else:
            assert inside.sum() >= 10 and lb.end_ts - lb.start_ts >= 10
        if lb.kind in KIND_NAMES:
            assert lb.start_ts >= sc.start_ts + 60  # warm-up respected
    by_sensor = {}
    for lb in sc.labels:
        if lb.kind in KIND_NAMES:
            by_sensor.setdefault(lb.sensor, []).append(lb)
    for spans in by_sensor.values():  # one sensor's anomalies never overlap
        assert all(a.end_ts < b.start_ts for a, b in zip(spans, spans[1:]))


@pytest.mark.parametrize("kind", ["spike", "level_shift", "drift"])
def test_labelled_deviation_has_the_requested_magnitude(kind):
    kw = dict(seed=5, period=1.0, magnitude=5.0, jitter=0.2)
    clean = generate_scenario(30, 7200, anomaly_rate=0, **kw)
    dirty = generate_scenario(30, 7200, anomaly_rate=4, kinds=(kind,), **kw)
    labels = [lb for lb in dirty.labels if lb.kind == kind]
    assert len(labels) > 20
    for lb in labels:
        i = dirty.sensor_ids.index(lb.sensor)
        ts, v = dirty.series(lb.sensor)
        base = clean.values[i]
        np.testing.assert_array_equal(ts, clean.ts[i])
        inside = (ts >= lb.start_ts) & (ts <= lb.end_ts)
        delta = (v - base) / dirty.local_sigma[i]
        assert abs(lb.magnitude) == 5.0
        if kind == "drift":  # ramps to the full magnitude at the last reading
            assert delta[inside][-1] == pytest.approx(lb.magnitude, rel=1e-6)
            assert np.all(np.diff(np.abs(delta[inside])) > 0)
        else:
            np.testing.assert_allclose(delta[inside], lb.magnitude, rtol=1e-6)
    changed = sum(int(np.sum(dirty.values[i] != clean.values[i])) for i in range(30))
    in_spans = 0
    for lb in labels:
        ts = dirty.series(lb.sensor)[0]
        in_spans += int(np.sum((ts >= lb.start_ts) & (ts <= lb.end_ts)))
    assert changed == in_spans  # every reading in a span moved, nothing outside did


def test_variance_and_frequency_anomalies_are_visible_in_every_family():
    kw = dict(seed=9, period=1.0, magnitude=6.0)
    clean = generate_scenario(60, 7200, anomaly_rate=0, **kw)
    dirty = generate_scenario(60, 7200, anomaly_rate=3, kinds=("variance", "frequency"), **kw)
    assert {lb.kind for lb in dirty.labels} == {"variance", "frequency"}
    families = {dirty.families[dirty.sensor_ids.index(lb.sensor)] for lb in dirty.labels if lb.kind == "frequency"}
    assert families == set(FAMILY_NAMES)
    for lb in dirty.labels:
        i = dirty.sensor_ids.index(lb.sensor)
        ts = dirty.ts[i]
        inside = (ts >= lb.start_ts) & (ts <= lb.end_ts)
        diff = (dirty.values[i] - clean.values[i]) / dirty.local_sigma[i]
        if lb.kind == "variance":
            assert 3.0 < np.std(diff[inside]) < 9.0
        else:
            assert 2.0 <= lb.magnitude <= 4.0
            assert np.count_nonzero(diff[inside]) > 0.2 * inside.sum(), lb


def test_training_series_clean_varied_and_deterministic():
    series = training_series(50, 300, seed=3)
    again = training_series(50, 300, seed=3)
    assert len(series) == 50
    for (ts, v), (ts2, v2) in zip(series, again):
        assert ts.shape == v.shape == (300,)
        assert np.all(np.diff(ts) > 0) and np.all(np.isfinite(v))
        np.testing.assert_array_equal(v, v2)
    periods = {round(float(np.median(np.diff(ts))), 0) for ts, _ in series}
    assert len(periods) >= 4  # several sampling rates
    scales = [np.std(v) for _, v in series]
    assert max(scales) / min(scales) > 1e4


def test_regime_sigma_is_that_of_the_noisiest_regime_in_use():
    from anomalyd.simulator.signals import _loudest_regime, regime_noise_multiplier

    shape = np.zeros((2, 7))
    shape[:, 6] = 0.2  # noise multipliers of regimes 0, 1, 2: 0.80, 1.37, 1.95
    shape[0, 3], shape[1, 3] = 0.9, 0.1  # the first sensor has two regimes, the second three
    assert regime_noise_multiplier(shape[0], np.arange(3)) == pytest.approx([0.8, 1.373, 1.946], abs=1e-3)
    assert _loudest_regime(shape) == pytest.approx([1.373, 1.946], abs=1e-3)
