"""Online features: exact statistics, scale invariance, interval feature."""
from __future__ import annotations

import numpy as np

from anomalyd.models.features import FeatureSpec, from_standard, new_norm_state, observe, to_standard


def feed(spec, ts, values):
    state = new_norm_state(1)
    xs = [observe(spec, state, ts[i:i + 1], values[i:i + 1])[0] for i in range(len(values))]
    return np.array(xs), state


def test_mean_and_variance_are_exact_within_the_window():
    rng = np.random.default_rng(0)
    values = rng.normal(40.0, 3.0, 300)
    _, state = feed(FeatureSpec(norm_window=1000), np.arange(300.0), values)
    assert np.isclose(state["norm_mean"][0], values.mean()) and np.isclose(state["norm_var"][0], values.var())


def test_features_do_not_depend_on_scale_or_offset():
    rng = np.random.default_rng(1)
    ts = np.cumsum(rng.uniform(5, 15, 400))
    values = np.sin(ts / 300) + rng.normal(0, 0.1, 400)
    spec = FeatureSpec()
    base, _ = feed(spec, ts, values)
    scaled, state = feed(spec, ts, values * 1e5 - 3e6)
    assert np.abs(base - scaled).max() < 1e-3
    z = to_standard(spec, state, np.array([values[-1] * 1e5 - 3e6]))
    assert np.isclose(from_standard(spec, state, z)[0], values[-1] * 1e5 - 3e6)


def test_constant_signal_stays_finite():
    x, _ = feed(FeatureSpec(), np.arange(50.0), np.full(50, 7.0))
    assert np.isfinite(x).all() and np.abs(x[:, 0]).max() == 0.0


def test_interval_feature_marks_a_gap_relative_to_the_typical_interval():
    ts = np.r_[np.arange(0.0, 600.0, 10.0), 590.0 + 300.0]  # every 10 s, then a 300 s gap
    x, _ = feed(FeatureSpec(), ts, np.ones(len(ts)))
    assert np.abs(x[2:-1, 1]).max() < 1e-9
    assert np.isclose(x[-1, 1], np.log(30.0), atol=1e-3)
    slow, _ = feed(FeatureSpec(), ts * 3600, np.ones(len(ts)))  # hourly sensor: same features
    assert np.abs(slow - x).max() < 1e-6
