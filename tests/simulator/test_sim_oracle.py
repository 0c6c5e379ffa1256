"""The ideal one-step predictor: its errors are the unpredictable part of each reading only."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from anomalyd.simulator.oracle import first_visits, ideal_predictions
from anomalyd.simulator.scenario import generate_scenario
from anomalyd.simulator.signals import FAMILY_NAMES

GAUSSIAN_MEDIAN_ABS = 0.674  # median |z| of a standard normal


def relative_errors(scenario, predictions):
    return [np.abs(values - predicted) / sigma
            for values, predicted, sigma in zip(scenario.values, predictions, scenario.local_sigma)]


def test_errors_on_clean_signals_are_the_noise_and_nothing_more():
    scenario = generate_scenario(150, 2 * 3600, seed=5, period=5.0, anomaly_rate=0.0)
    predictions = ideal_predictions(scenario)
    assert [len(p) for p in predictions] == [len(v) for v in scenario.values]
    errors = relative_errors(scenario, predictions)
    for family in FAMILY_NAMES:
        pooled = np.concatenate([e for e, f in zip(errors, scenario.families) if f == family])
        finite = pooled[np.isfinite(pooled)]
        assert len(finite) > 1000, family
        median = float(np.median(finite))
        if family == "regime":  # sigma is the noisiest regime's, the others are quieter
            assert 0.2 < median < GAUSSIAN_MEDIAN_ABS, median
        else:
            assert abs(median - GAUSSIAN_MEDIAN_ABS) < 0.05, (family, median)


def test_a_spike_misses_the_oracle_by_its_labelled_size():
    scenario = generate_scenario(200, 3 * 3600, seed=9, period=5.0, anomaly_rate=1.0, kinds=("spike",))
    predictions = ideal_predictions(scenario)
    index = {sensor: i for i, sensor in enumerate(scenario.sensor_ids)}
    signed = []
    for label in scenario.labels:
        i = index[label.sensor]
        k = int(np.searchsorted(scenario.ts[i], label.start_ts))
        miss = (scenario.values[i][k] - predictions[i][k]) / scenario.local_sigma[i]
        if np.isfinite(miss):
            signed.append(miss / np.sign(label.magnitude))
    assert len(signed) > 30
    assert abs(float(np.median(signed)) - 6.0) < 0.6  # 6 sigma plus one reading's noise


def test_stateful_sensors_get_no_prediction_after_a_lost_reading():
    scenario = generate_scenario(60, 1800, seed=3, period=5.0, anomaly_rate=0.0)
    lossy = generate_scenario(60, 1800, seed=3, period=5.0, anomaly_rate=0.0, missing=0.2)
    predictions = ideal_predictions(lossy)
    for i, family in enumerate(lossy.families):
        after_gap = np.r_[True, np.diff(lossy.ts[i]) > 1.5 * 5.0]
        if family in ("random_walk", "counter"):
            assert np.isnan(predictions[i][after_gap]).all() and np.isfinite(predictions[i][~after_gap]).all()
        else:
            assert np.isfinite(predictions[i]).all()
    assert sum(len(t) for t in lossy.ts) < 0.9 * sum(len(t) for t in scenario.ts)


def test_a_scenario_without_its_configuration_is_refused():
    scenario = dataclasses.replace(generate_scenario(3, 60, seed=1), config=None)
    with pytest.raises(ValueError, match="configuration"):
        ideal_predictions(scenario)


def test_first_visits_are_where_a_regime_sensor_first_shows_a_level():
    scenario = generate_scenario(120, 6 * 3600, seed=4, period=5.0, anomaly_rate=0.0)
    visits = first_visits(scenario)
    regime = [i for i, family in enumerate(scenario.families) if family == "regime"]
    assert set(visits) == {scenario.sensor_ids[i] for i in regime} and len(regime) > 10
    # Cross-checked against the oracle's levels: a reading whose ideal level none before it had.
    predictions = ideal_predictions(scenario)
    for i in regime:
        seen, new = {predictions[i][0]}, []
        for k, level in enumerate(predictions[i]):
            if level not in seen:
                seen.add(level)
                new.append(k)
        assert np.array_equal(visits[scenario.sensor_ids[i]], scenario.ts[i][new])
    assert sum(len(v) for v in visits.values()) > len(regime) / 2  # most switch to a new level


def test_the_oracle_knows_the_regime_of_a_reading_just_after_a_switch():
    # Readings are published rounded to the millisecond; on this scenario one of s00014's
    # falls within that of a regime switch (reading 8868: level 0.444, noise 0.002), and the
    # oracle used to place it in the regime before.
    scenario = generate_scenario(15, 9000, seed=206, period=1.0, anomaly_rate=0.0)
    predictions = ideal_predictions(scenario)
    regime = [i for i, family in enumerate(scenario.families) if family == "regime"]
    assert "s00014" in [scenario.sensor_ids[i] for i in regime]
    for i in regime:
        worst = np.max(np.abs(scenario.values[i] - predictions[i])) / scenario.local_sigma[i]
        assert worst < 6.0, (scenario.sensor_ids[i], worst)
    visits = first_visits(scenario)["s00014"]
    assert scenario.ts[scenario.sensor_ids.index("s00014")][8868] in visits
