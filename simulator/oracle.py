"""The ideal one-step predictor of a scenario: what each reading should be, from the simulator's
own knowledge of the signal (pure, no I/O).

Replayed through the detector in place of the model's predictions (``anomalyd evaluate
--scenario --predictor oracle``), it separates what limits detection: whatever the oracle's
run misses or falsely flags is the scorer's doing, since no predictor can do better.

Per family, the prediction of reading k is
- seasonal, cycle: the noise-free signal at the reading's own time (jitter included);
- regime: the level of the regime the sensor is in at that time (it knows every switch);
- random walk: the mean-reverting step from the previous reading's process value, that reading
  with its measurement noise taken out;
- counter: the previous reading plus the mean increment.
Anomalies are not in the oracle: a spike or shift shows as its full size, a sped-up or frozen
signal as its departure from the normal one. Its errors are the unpredictable part only, so
they are about ``local_sigma`` (the unit of anomaly magnitudes) per reading; for a random walk
and a counter also after a reset or an earlier anomaly, since the step starts from the reading
actually seen. NaN where it has nothing to go on: a stateful sensor's first reading, or one
whose previous sample was not read (a dropout).
"""

from __future__ import annotations

import numpy as np

from .fleet import Fleet
from .hashrng import Stream, normal
from .scenario import Scenario
from .signals import (Family, counter_mean_increment, cycle, ou_coefficients, regime_index, regime_level,
                      seasonal)


def ideal_predictions(scenario: Scenario) -> list[np.ndarray]:
    """One array per sensor of ``scenario``, aligned with its readings."""
    fleet = _fleet(scenario)
    return [_sensor_predictions(fleet, i, ts - scenario.start_ts, values)
            for i, (ts, values) in enumerate(zip(scenario.ts, scenario.values))]


def first_visits(scenario: Scenario) -> dict[str, np.ndarray]:
    """The timestamps at which each regime sensor enters a regime it has not been in since its
    first reading, by sensor (regime sensors only; an empty array if it never does).

    Normal behaviour, so unlabelled; but a level the sensor has never shown, which no causal
    detector can tell from a level shift when it happens. The evaluation counts flags there
    apart (``first_visit_false_alarms``). Regimes follow the normal schedule: during a
    frequency anomaly, which is labelled, the sensor flaps between them."""
    fleet = _fleet(scenario)
    p, seed = fleet.params, fleet.config.seed
    visits = {}
    for i, (sensor, ts) in enumerate(zip(scenario.sensor_ids, scenario.ts)):
        if Family(int(p.family[i])) != Family.REGIME:
            continue
        s, _, t_rel = _sample_times(fleet, i, ts - scenario.start_ts)
        _, first = np.unique(regime_index(p, s, t_rel, np.ones(len(ts)), seed), return_index=True)
        visits[sensor] = ts[np.sort(first[first > 0])]
    return visits


def _fleet(scenario: Scenario) -> Fleet:
    if scenario.config is None:
        raise ValueError("the scenario does not record the fleet configuration that made it")
    return Fleet(scenario.config)


def _sensor_predictions(fleet: Fleet, i: int, t_rel: np.ndarray, values: np.ndarray) -> np.ndarray:
    p, seed = fleet.params, fleet.config.seed
    s, k, t_rel = _sample_times(fleet, i, t_rel)
    family = Family(int(p.family[i]))
    if family == Family.SEASONAL:
        return seasonal(p, s, t_rel)
    if family == Family.CYCLE:
        return cycle(p, s, t_rel)
    normal_speed = np.ones(len(k))
    if family == Family.REGIME:
        return regime_level(p, s, regime_index(p, s, t_rel, normal_speed, seed))
    # Stateful families step on from the previous reading, if that was sample k - 1.
    previous = np.r_[np.nan, values[:-1]]
    previous[np.r_[True, np.diff(k) != 1]] = np.nan
    if family == Family.COUNTER:
        return previous + counter_mean_increment(p, s)
    noise = p.noise[i] * normal(seed, Stream.SAMPLE_NOISE, s, k - 1)
    reversion, _ = ou_coefficients(p, s, normal_speed, np.zeros(len(k)))
    return p.offset[i] + reversion * (previous - noise - p.offset[i])


def _sample_times(fleet: Fleet, i: int, t_rel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sensor ``i``'s rows, sample indices and exact times (unrounded, as the simulator computed
    the signal from them) of readings at ``t_rel``: a reading rounded to the millisecond can
    fall on the other side of a regime switch or a cycle's edge."""
    k = _sample_index(fleet, i, t_rel)
    s = np.full(len(k), i)
    return s, k, fleet.ts_rel(s, k)


def _sample_index(fleet: Fleet, i: int, t_rel: np.ndarray) -> np.ndarray:
    """Sample index of each reading: the slot its time falls in or, where the rounding to the
    millisecond moved an undelayed reading back across its slot's start, the next one; the
    one whose own time matches."""
    p = fleet.params
    s = np.full(len(t_rel), i)
    k = np.floor((t_rel - p.phase[i]) / p.period[i] + 1e-9).astype(np.int64)
    k = np.where(_matches(fleet, s, k, t_rel), k, k + 1)
    if not _matches(fleet, s, k, t_rel).all():
        raise ValueError(f"sensor {fleet.sensor_ids[i]}: readings do not come from this fleet configuration")
    return k


def _matches(fleet: Fleet, s: np.ndarray, k: np.ndarray, t_rel: np.ndarray) -> np.ndarray:
    return np.abs(fleet.ts_rel(s, k) - t_rel) <= 1e-3


__all__ = ["first_visits", "ideal_predictions"]
