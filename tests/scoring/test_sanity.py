"""The daemon's sanity bars with default settings, through ``Detector`` for the last-value
baseline and for the shipped LSTM:

* on ordinary signals (seasonal, random walk, sawtooth, square wave, with noise, at any scale
  and offset) at most 0.5% of post-warm-up readings are flagged;
* at least 80% of isolated spikes of 6-10 sigma (sigma: the unpredictable part of a reading)
  are flagged within 3 readings;
* the warm-up is at most 500 readings and nothing in it is flagged.
"""
from __future__ import annotations

import numpy as np
import pytest

from anomalyd.daemon.detector import Detector, DetectorSettings
from anomalyd.daemon.evaluation.replay import replay
from anomalyd.daemon.scoring import ScoringSettings
from scoring_signals import FAMILIES, ordinary_signals, with_one_spike

PER_FAMILY, LENGTH = 20, 2500
SETTINGS = ScoringSettings()


@pytest.fixture(scope="module", params=["last_value", "litert"])
def outcome(request, artifact):
    clean, families, sigmas = ordinary_signals(PER_FAMILY, LENGTH, seed=11)
    spiked, positions = with_one_spike(clean, sigmas, (6.0, 10.0), SETTINGS.warmup + 100, seed=12)
    series = clean + spiked
    detector = Detector(artifact, DetectorSettings(capacity=len(series), batch_size=len(series),
                                                   backend=request.param), SETTINGS)
    outputs = replay(detector, [f"s{i}" for i in range(len(series))], series)
    return {"clean": outputs[:len(clean)], "spiked": outputs[len(clean):], "families": np.array(families),
            "positions": positions, "backend": request.param}


def test_ordinary_signals_are_rarely_flagged(outcome):
    for family in FAMILIES:
        rows = [out for out, f in zip(outcome["clean"], outcome["families"]) if f == family]
        flagged = np.concatenate([out.anomaly[~out.warmup] for out in rows])
        assert flagged.mean() <= 0.005, f"{outcome['backend']}: {family} flags {flagged.mean():.2%}"


def test_isolated_spikes_are_caught_within_three_readings(outcome):
    caught = np.array([out.anomaly[p:p + 3].any() for out, p in zip(outcome["spiked"], outcome["positions"])])
    assert caught.mean() >= 0.8, f"{outcome['backend']}: caught {caught.mean():.0%}"


def test_warm_up_is_short_and_silent(outcome):
    assert SETTINGS.warmup <= 500
    for out in outcome["clean"] + outcome["spiked"]:
        assert out.warmup[:SETTINGS.warmup].all() and not out.warmup[SETTINGS.warmup:].any()
        assert not out.anomaly[out.warmup].any()
