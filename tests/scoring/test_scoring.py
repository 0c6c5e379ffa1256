"""The scorer's pieces, each on its own, through ``score`` on hand-made predictions."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from anomalyd.daemon.scoring import NEUTRAL_SCORE, ScoringSettings, log_tail_score, squash
from scorer_driver import new_state, run_scorer
from anomalyd.daemon import scoring

SETTINGS = ScoringSettings()
# The other rules on their own: where the calibrated miss rule judges, the spike and step rules
# stand aside, and it also scores spike_score.
WITHOUT_CALIBRATED = ScoringSettings(miss_min=0.0)


def noisy(n: int, steps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Readings = 0 + unit noise, predicted perfectly up to the noise (prediction 0)."""
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 1.0, (n, steps)), np.zeros((n, steps))


def test_squash_sends_typical_errors_to_zero_and_large_ones_to_one():
    relative = np.array([0.0, 1.0, SETTINGS.squash_low, 4.0, SETTINGS.squash_high, 50.0])
    assert squash(SETTINGS, relative).tolist() == [0.0, 0.0, 0.0, 0.5, 1.0, 1.0]


def test_log_tail_score_is_calibrated_on_the_tail_probability():
    mean, var = np.zeros(3), np.ones(3)
    # z = 0: tail 0.5; z = 4.26: tail 1e-5 (score 0.5); z = 8: tail 6e-16 (score 1).
    result = log_tail_score(np.array([0.0, 4.2649, 8.0]), mean, var)
    assert result[0] == pytest.approx(-np.log(0.5) / -np.log(1e-10), abs=1e-4)
    assert result[1] == pytest.approx(0.5, abs=2e-3) and result[2] == pytest.approx(1.0, abs=2e-3)


def test_warm_up_scores_are_neutral_and_never_flagged():
    values, predictions = noisy(2, SETTINGS.warmup + 50, 0)
    values[:, 50] = 1e6  # a huge outlier inside the warm-up
    score, anomaly, warmup = run_scorer(SETTINGS, values, predictions)
    assert warmup[:, :SETTINGS.warmup].all() and not warmup[:, SETTINGS.warmup:].any()
    assert (score[:, :SETTINGS.warmup] == NEUTRAL_SCORE).all() and not anomaly[:, :SETTINGS.warmup].any()
    assert SETTINGS.warmup <= 500


def test_ordinary_noise_is_not_flagged():
    values, predictions = noisy(8, 5000, 1)
    _, anomaly, warmup = run_scorer(SETTINGS, values, predictions)
    assert anomaly[~warmup].mean() < 0.001


def test_a_lasting_change_raises_one_flag_not_a_run():
    values, predictions = noisy(4, 3000, 2)
    values[:, 2000:2100] += 5.0  # predictions stay at 0: errors stay large for 100 readings
    score, anomaly, _ = run_scorer(SETTINGS, values, predictions)
    assert anomaly[:, 2000:2012].any(axis=1).all()  # caught within the short window ...
    assert anomaly[:, 2000:2100].sum(axis=1).max() <= 2  # ... by one flag (two at most)


def test_repeat_filter_keeps_the_first_red_reading_only():
    state = {"lik_last": np.zeros(3, np.float32)}
    first = scoring._repeat_filter(SETTINGS, state, np.array([0.9, 0.4, 0.6]))
    second = scoring._repeat_filter(SETTINGS, state, np.array([0.9, 0.9, 0.4]))
    assert first.tolist() == [0.9, 0.4, 0.6]
    assert second.tolist() == [SETTINGS.repeat_score, 0.9, 0.4]


NOT_FLAT = np.zeros(2, bool)  # the sensors' ranges are not their noise bands


def test_spatial_rule_fires_beyond_the_margin_and_its_range_decays_toward_the_mean():
    settings = ScoringSettings(spatial_decay=0.01)
    state = new_state(settings, 2)
    mean, missed = np.zeros(2), np.full(2, 10.0)  # readings far from their predictions
    for value in (-1.0, 1.0):
        scoring._spatial(settings, state, np.full(2, value), mean, missed, NOT_FLAT)
    inside, beyond = 1.0 + 0.04 * 2, 1.0 + 0.06 * 2  # margin: 5% of the range of 2
    assert scoring._spatial(settings, state, np.array([inside, beyond]), mean, missed,
                            NOT_FLAT).tolist() == [0.0, 1.0]
    high = state["value_max"].copy()
    for _ in range(200):
        scoring._spatial(settings, state, np.zeros(2), mean, missed, NOT_FLAT)
    assert (state["value_max"] < 0.2 * high).all()  # an old excursion stops blinding the rule


def test_a_new_extreme_the_predictor_expected_is_not_spatial():
    settings = ScoringSettings()
    state = new_state(settings, 2)
    for value in (-1.0, 1.0):
        scoring._spatial(settings, state, np.full(2, value), np.zeros(2), np.zeros(2), NOT_FLAT)
    relative = np.array([settings.spatial_min_error - 0.1, settings.spatial_min_error])
    assert scoring._spatial(settings, state, np.full(2, 2.0), np.zeros(2), relative,
                            NOT_FLAT).tolist() == [0.0, 1.0]
    # The extreme is learnt either way: the next, smaller step beyond the old max is inside.
    assert state["value_max"].tolist() == [2.0, 2.0]


def test_a_new_extreme_of_a_flat_sensor_must_miss_by_more():
    # A range of 2 that spans 4 typical errors is the noise band: a new extreme there is a
    # record of the noise unless it misses by spatial_noise_error.
    settings = ScoringSettings()
    state = new_state(settings, 2)
    for value in (-1.0, 1.0):
        scoring._spatial(settings, state, np.full(2, value), np.zeros(2), np.zeros(2), NOT_FLAT)
    assert not scoring._flat(settings, state, np.full(2, 0.01)).any()  # a range of 200 typical errors
    flat = scoring._flat(settings, state, np.full(2, 0.5))  # a range of 4
    assert flat.all()
    relative = np.array([settings.spatial_noise_error - 0.1, settings.spatial_noise_error])
    assert settings.spatial_noise_error - 0.1 > settings.spatial_min_error
    assert scoring._spatial(settings, state, np.full(2, 2.0), np.zeros(2), relative, flat).tolist() == [0.0, 1.0]


def test_local_maximum_filter_halves_scores_that_are_not_new_maxima():
    state = new_state(SETTINGS, 1)
    kept = []
    for count, raw in enumerate([0.9, 0.7, 0.95, 0.95], start=1):
        state["count"] = np.array([float(count)])
        kept.append(float(scoring._local_maximum(SETTINGS, state, np.array([raw]))[0]))
    assert kept == pytest.approx([0.9, 0.35, 0.95, 0.475])


def test_an_isolated_spike_on_a_quiet_sensor_is_flagged_within_three_readings():
    values, predictions = noisy(16, 3000, 3)
    positions = np.arange(16) * 100 + 800
    rows = np.arange(16)
    values[rows, positions] += np.where(rows % 2, 7.0, -7.0)
    # A predictor that follows the readings a little: the spike leaks into the next prediction.
    predictions[rows, positions + 1] = 0.3 * values[rows, positions]
    _, anomaly, _ = run_scorer(SETTINGS, values, predictions)
    caught = [anomaly[row, p:p + 3].any() for row, p in zip(rows, positions)]
    assert np.mean(caught) >= 0.9


def test_spikes_of_ordinary_size_for_a_spiky_sensor_stay_quiet():
    values, predictions = noisy(4, 6000, 4)
    values[:, 300::40] += 7.0  # a 7-sigma spike every 40 readings is this sensor's normal
    _, anomaly, warmup = run_scorer(SETTINGS, values, predictions)
    assert anomaly[:, 3000:].sum() <= 4


def test_a_step_is_not_a_spike():
    settings = ScoringSettings(step_rate_max=0.0)  # the step rule, which also scores 0.8, off
    values, predictions = noisy(4, 2000, 5)
    values[:, 1500:] += 7.0
    predictions[:, 1501:] = values[:, 1500:-1]  # the predictor catches up after one reading
    state_before = new_state(settings, 4)
    assert state_before["spike_events"].sum() == 0
    score, _, _ = run_scorer(settings, values, predictions)
    # Whatever else fires, the spike rule's own score (0.8, exempt from the filters) does not.
    assert not np.isclose(score[:, 1500:1504], settings.spike_score).any()


def shifted(n: int, steps: int, seed: int, positions: np.ndarray, size: float):
    """Noisy readings with a level shift of +-``size`` per row at ``positions``, and a predictor
    that follows the new level one reading later (as the per-sensor head does)."""
    values, predictions = noisy(n, steps, seed)
    rows = np.arange(n)
    for row, position in zip(rows, positions):
        values[row, position:] += size if row % 2 else -size
        predictions[row, position + 1:] = values[row, position:-1]
    return values, predictions


def test_a_level_shift_on_a_quiet_sensor_is_flagged_within_three_readings():
    positions = np.arange(16) * 100 + 800
    values, predictions = shifted(16, 3000, 7, positions, 8.0)
    _, anomaly, _ = run_scorer(SETTINGS, values, predictions)
    # The step rule on its own (where the calibrated miss rule judges, the step rule stands aside).
    score, _, _ = run_scorer(WITHOUT_CALIBRATED, values, predictions)
    by_step = [np.isclose(score[row, p + SETTINGS.step_readings], SETTINGS.step_score)
               for row, p in enumerate(positions)]
    assert np.mean(by_step) >= 0.9
    assert np.mean([anomaly[row, p:p + 3].any() for row, p in enumerate(positions)]) >= 0.9


def test_a_spike_is_not_a_step():
    values, predictions = noisy(16, 2000, 8)
    rows, positions = np.arange(16), np.arange(16) * 50 + 1000
    values[rows, positions] += np.where(rows % 2, 9.0, -9.0)
    predictions[rows, positions + 1] = 0.3 * values[rows, positions]  # the spike leaks a little
    clean_values, clean_predictions = noisy(16, 2000, 8)
    with_spikes, without = new_state(SETTINGS, 16), new_state(SETTINGS, 16)
    run_scorer(SETTINGS, values, predictions, with_spikes)
    run_scorer(SETTINGS, clean_values, clean_predictions, without)
    assert np.allclose(with_spikes["step_events"], without["step_events"])


def test_steps_that_are_a_sensors_normal_stay_quiet():
    # A duty cycle: the level toggles by 8 sigma every 150 readings, and the predictor follows.
    values, predictions = noisy(4, 6000, 9)
    level = 8.0 * ((np.arange(6000) // 150) % 2)
    values += level
    predictions[:, 1:] = np.where(np.diff(level) != 0, level[:-1], values[:, :-1])
    state = new_state(SETTINGS, 4)
    score, _, _ = run_scorer(SETTINGS, values, predictions, state)
    without, _, _ = run_scorer(ScoringSettings(step_rate_max=0.0), values, predictions)
    assert (state["step_events"] > 10).all()  # every toggle is seen as a step ...
    assert np.array_equal(score[:, 2000:], without[:, 2000:])  # ... and none flagged once usual


def test_rows_are_scored_independently():
    values, predictions = noisy(5, 1200, 6)
    values[2, 700] += 9.0
    together = run_scorer(SETTINGS, values, predictions)
    for row in range(5):
        alone = run_scorer(SETTINGS, values[row:row + 1], predictions[row:row + 1])
        for a, b in zip(together, alone):
            assert np.array_equal(a[row], b[0])


def ramp(n: int, steps: int, seed: int) -> np.ndarray:
    """Counters: increments of mean 1 and standard deviation 0.3 (the local sigma)."""
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.normal(1.0, 0.3, (n, steps)), axis=1)


def test_the_trend_fallback_judges_a_ramp_the_model_lags_on():
    values = ramp(32, 2000, 11)
    rows, positions = np.arange(32), np.arange(32) * 15 + 1400
    values[rows, positions] += np.where(rows % 2, 7 * 0.3, -7 * 0.3)  # 7-sigma spikes
    lagging = np.full_like(values, np.nan)
    lagging[:, 1:] = values[:, :-1]  # a model that misses every increment (by 1, i.e. 3.3 sigma)
    state = new_state(SETTINGS, 32)
    _, anomaly, _ = run_scorer(SETTINGS, values, lagging, state)
    # Without the fallbacks and the spread's cap and floor (the scorer before them).
    before = ScoringSettings(trend_margin=0.0, typical_spread_cap=1e9, floor_spread=1e9, smooth_level_gain=0.0)
    _, anomaly_without, _ = run_scorer(before, values, lagging)
    caught = [anomaly[row, p:p + 3].any() for row, p in zip(rows, positions)]
    # Not all: a counter's spike must also "return", and the reading after it carries two
    # increments' noise (the spike rule's return test misses about one in eight).
    assert np.mean(caught) >= 0.75
    assert np.mean([anomaly_without[row, p:p + 3].any() for row, p in zip(rows, positions)]) <= 0.25
    # The scorer judged against the fallback (previous reading + mean increment).
    assert np.allclose(state["prediction"], values[:, -2] + 1.0, atol=0.1)
    assert (state["trend_miss"] < 0.5 * state["model_miss"]).all()
    # Judged by the fallback, the typical error follows the fallback's misses, not the model's.
    assert (state["error_typ"] <= 1.05 * SETTINGS.trend_typical * state["trend_miss"]).all()


def test_the_fallback_is_not_used_where_the_model_predicts_better():
    values, predictions = noisy(4, 1500, 12)
    state = new_state(SETTINGS, 4)
    run_scorer(SETTINGS, values, predictions, state)
    assert np.array_equal(state["prediction"], predictions[:, -1])


def test_typical_error_is_capped_and_floored_by_the_spread_of_first_differences():
    state = {"error_typ": np.array([5.0, 1e-4, 0.3]), "diff_var": np.array([1e-4, 1e-6, 0.09]),
             "diff_count": np.full(3, 1000.0)}
    spread = np.sqrt(state["diff_var"])  # scale 1: 0.01, 0.001, 0.3 standard deviations
    typical = scoring._typical_error(SETTINGS, state, spread, np.full(3, np.inf))
    cap = SETTINGS.typical_spread_cap * spread[0]
    assert typical[0] == pytest.approx(cap) and state["error_typ"][0] == pytest.approx(cap)
    assert typical[1] == pytest.approx(SETTINGS.floor_spread * spread[1])  # below error_floor (0.02)
    assert typical[2] == pytest.approx(0.3)  # neither binds
    settling = scoring._typical_error(SETTINGS, {"error_typ": np.array([5.0]), "diff_var": np.array([1e-4]),
                                                 "diff_count": np.array([10.0])}, np.array([0.01]),
                                      np.array([np.inf]))
    assert settling[0] == 5.0  # the first readings after a reset are not capped


def test_state_from_before_the_spread_fields_does_not_flood_with_flags():
    # A checkpoint written before the trend fallback and the spread existed restores those
    # fields fresh (daemon.detector.load_state) while the sensor's count is already high.
    values, predictions = noisy(8, 4000, 13)
    state = new_state(SETTINGS, 8)
    run_scorer(SETTINGS, values[:, :3000], predictions[:, :3000], state)
    typical_before = state["error_typ"].copy()
    fresh = new_state(SETTINGS, 8)
    for name in ("trend_prediction", "model_miss", "trend_miss", "miss_count", "diff_mean", "diff_var",
                 "diff_count"):
        state[name] = fresh[name]
    _, anomaly, _ = run_scorer(SETTINGS, values[:, 3000:], predictions[:, 3000:], state)
    assert anomaly.mean() < 0.001  # as for ordinary noise (test_ordinary_noise_is_not_flagged)
    assert (state["error_typ"] > 0.5 * typical_before).all()  # not collapsed onto an unlearnt spread


def regimes(n: int, steps: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sensors moving between two levels 40 sigma apart (dwelling 150-400 readings), judged by
    a model that takes a few readings to follow a move (exponential smoothing, as the network
    does after a regime switch). Returns values, predictions and the level index."""
    rng = np.random.default_rng(seed)
    dwell = rng.integers(150, 400, (n, steps // 150 + 1))
    level = np.zeros((n, steps), np.int64)
    for row in range(n):
        edges = np.cumsum(dwell[row])
        level[row] = np.searchsorted(edges, np.arange(steps), side="right") % 2
    values = 40.0 * level + rng.normal(0.0, 1.0, (n, steps))
    predictions = np.full((n, steps), np.nan)
    smooth = values[:, 0].copy()
    for t in range(1, steps):
        predictions[:, t] = smooth
        smooth += 0.5 * (values[:, t] - smooth)
    return values, predictions, level


def test_returns_to_known_levels_are_not_anomalies():
    values, predictions, level = regimes(16, 6000, 14)
    without = ScoringSettings(jump_tolerance=0.0)
    _, anomaly, warmup = run_scorer(SETTINGS, values, predictions)
    _, anomaly_without, _ = run_scorer(without, values, predictions)
    moves = np.diff(level, axis=1) != 0
    late = np.zeros_like(moves)
    late[:, 3000:] = moves[:, 3000:]  # both levels are known by then
    after_move = np.zeros_like(anomaly)
    for row, t in zip(*np.nonzero(late)):
        after_move[row, t + 1:t + 12] = True
    # Each move is a 40-sigma miss, followed by a few large ones while the model catches up.
    assert anomaly_without[after_move].sum() >= 8
    assert anomaly[after_move].sum() <= 2


def test_anomalies_on_a_sensor_with_known_levels_are_still_seen():
    values, predictions, level = regimes(16, 6000, 15)
    rows = np.arange(16)
    # Well inside a dwell, away from any move: a 7-sigma spike and, 60 readings later, a lasting
    # 7-sigma shift (the model follows one reading late, as in ``shifted``).
    positions = np.array([next(t for t in range(3500 + 40 * row, 6000, 7)
                               if (level[row, t - 80:t + 120] == level[row, t]).all()) for row in rows])
    values[rows, positions] += np.where(rows % 2, 7.0, -7.0)
    predictions[rows, positions + 1] = values[rows, positions - 1]
    for row, p in zip(rows, positions + 60):
        values[row, p:p + 50] += 7.0
        predictions[row, p + 1:p + 51] = values[row, p:p + 50]
        predictions[row, p + 51] = values[row, p + 49]  # it ends; the model lags one reading
    state = new_state(SETTINGS, 16)
    _, anomaly, _ = run_scorer(SETTINGS, values, predictions, state)
    _, anomaly_without, _ = run_scorer(ScoringSettings(jump_tolerance=0.0), values, predictions)
    assert np.isfinite(state["jump_level"]).sum(axis=1).min() >= 2  # both levels are known
    spikes = [anomaly[row, p:p + 3].any() for row, p in zip(rows, positions)]
    shifts = [anomaly[row, p:p + 4].any() for row, p in zip(rows, positions + 60)]
    shifts_without = [anomaly_without[row, p:p + 4].any() for row, p in zip(rows, positions + 60)]
    assert np.mean(spikes) >= 0.9
    # Without known jumps, shifts this small are often below the step record the first
    # 40-sigma moves left (3 of 16 are caught); with them none is explained away.
    assert sum(shifts) >= max(sum(shifts_without), 12)


def test_a_known_jump_is_judged_against_the_nearest_level_away_from_the_prediction():
    state = new_state(SETTINGS, 4)
    state["jump_level"][:, :2] = [0.0, 50.0]
    state["prediction"] = np.array([0.0, 0.0, 0.0, 45.0])
    values = np.array([51.0, 52.5, 30.0, 51.0])  # near 50; near 50 but not close; far; near 50
    unit, count = np.ones(4), np.full(4, 1000.0)
    relative = np.abs(values - state["prediction"])
    judged, explained = scoring._known_jump(SETTINGS, state, values, unit, relative, count)
    # The last one missed by 6 typical errors: too little to be a jump (jump_min 10), and the
    # level 50 is within jump_min of its prediction.
    assert explained.tolist() == [True, True, False, False]
    assert judged.tolist() == [1.0, 2.5, 30.0, 6.0]
    assert state["jump_level"][0, 1] == pytest.approx(50.0 + SETTINGS.jump_refine * 1.0)
    assert state["jump_hold"].tolist() == [SETTINGS.jump_hold, SETTINGS.jump_hold, 0, 0]


def test_a_steady_ramp_lands_anywhere_within_one_reading_of_its_known_foot():
    # A sawtooth rising 12 per reading (its smoothed level's sigma estimate 1) whose foot, 0, is
    # known: the reading after a drop lands 0-12 above the foot, by the phase of the sampling,
    # which is beyond the tolerance (4) of the foot itself. Rows 2 and 3 rise too slowly to be
    # a steady ramp (sigma estimate 10), row 4 lands below the foot by more than the tolerance.
    state = new_state(SETTINGS, 4)
    state["jump_level"][:, 0] = 0.0
    state["prediction"] = np.full(4, 400.0)
    state["smooth_slope"] = np.array([12.0, 12.0, 12.0, 12.0])
    state["smooth_miss"] = np.array([1.0, 10.0, 10.0, 1.0]) * scoring._MEAN_ABS_PER_SIGMA
    values = np.array([11.0, 11.0, 3.0, -6.0])
    unit, count = np.ones(4), np.full(4, 1000.0)
    _, explained = scoring._known_jump(SETTINGS, state, values, unit, np.abs(values - 400.0), count)
    assert explained.tolist() == [True, False, True, False]
    # A landing within the rise leaves the foot where it is; one below it pulls it down.
    assert state["jump_level"][0, 0] == 0.0
    _, explained = scoring._known_jump(SETTINGS, state, np.array([-2.0, 0.0, 0.0, 0.0]), unit,
                                       np.full(4, 400.0), count)
    assert explained[0] and state["jump_level"][0, 0] == pytest.approx(-2.0 * SETTINGS.jump_refine)


def test_a_level_near_a_known_one_refines_it_instead_of_taking_a_slot():
    state = new_state(SETTINGS, 1)
    state["jump_level"][0, :2] = [0.0, 50.0]
    state["jump_next"][0] = 2
    unit, where = np.ones(1), np.ones(1, bool)
    near = 0.5 * SETTINGS.jump_tolerance - 0.5  # within half the jump tolerance
    scoring._remember_levels(SETTINGS, state, np.array([50.0 + near]), where, unit)
    assert state["jump_level"][0, 1] == pytest.approx(50.0 + SETTINGS.jump_refine * near)
    assert state["jump_next"][0] == 2 and np.isnan(state["jump_level"][0, 2:]).all()
    scoring._remember_levels(SETTINGS, state, np.array([50.0 + near + 2.0]), where, unit)
    assert state["jump_level"][0, 2] == pytest.approx(50.0 + near + 2.0)  # beyond: a new level


def anticipated_regimes(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``regimes``, with a model that twice per upper dwell dips 7 sigma toward the lower level
    for one reading while the sensor stays put: a hedge on a move that has not come (the
    network does this before a sawtooth's drop). Each dip is confirmed as a step whose both
    ends are the upper level."""
    values, predictions, level = regimes(16, 6000, seed)
    for row, start in zip(*np.nonzero(np.diff(level, axis=1) == 1)):
        for t in (start + 41, start + 91):
            if t < 6000 and level[row, t]:
                predictions[row, t] = 33.0
    return values, predictions, level


def flags_after_late_drops(values, predictions, level, state) -> tuple[int, int]:
    """Flags in the 5 readings after each move to the lower level in the second half, and the
    number of such moves."""
    _, anomaly, _ = run_scorer(SETTINGS, values, predictions, state)
    after_drop = np.zeros_like(anomaly)
    for row, t in zip(*np.nonzero(np.diff(level, axis=1) == -1)):
        if t > 3000:
            after_drop[row, t + 1:t + 6] = True
    return int(anomaly[after_drop].sum()), int((np.diff(level[:, 3000:], axis=1) == -1).sum())


def test_steps_between_copies_of_one_level_do_not_evict_the_other(monkeypatch):
    values, predictions, level = anticipated_regimes(31)
    state = new_state(SETTINGS, 16)
    flagged, drops = flags_after_late_drops(values, predictions, level, state)
    assert (np.abs(state["jump_level"]) < 3.0).any(axis=1).all()  # the lower level is still known
    assert flagged <= 3
    # The same scene with every step's ends kept as new levels: the copies of the upper level
    # evict the lower one, and most drops to it are flagged as level shifts.
    monkeypatch.setattr(scoring, "_MERGE_FRACTION", 0.0)
    flagged_unmerged, _ = flags_after_late_drops(values, predictions, level, new_state(SETTINGS, 16))
    assert flagged_unmerged >= drops // 2


def test_small_steps_a_sensor_makes_do_not_hide_a_bigger_level_shift():
    # A sensor whose normal includes a 5-sigma step every 600 readings (a random walk's big
    # innovations, say), then a 12-sigma level shift; the predictor follows one reading late.
    positions = np.arange(16) * 7 + 4000
    values, predictions = shifted(16, 4500, 16, positions, 12.0)
    for t in range(400, 3900, 600):
        values[:, t:] += 5.0
        predictions[:, t + 1:] += 5.0
    state = new_state(SETTINGS, 16)
    _, anomaly, _ = run_scorer(SETTINGS, values, predictions, state)
    assert (state["step_events"] >= 3).all()  # the small steps were seen as steps (decayed count)
    assert np.mean([anomaly[row, p:p + 4].any() for row, p in enumerate(positions)]) >= 0.9


def intervals(n: int, steps: int, seed: int) -> np.ndarray:
    """Seconds between readings: every 5 s with up to 0.5 s of jitter (NaN before the first)."""
    rng = np.random.default_rng(seed)
    elapsed = 5.0 + rng.uniform(-0.5, 0.5, (n, steps))
    elapsed[:, 0] = np.nan
    return elapsed


def test_a_reading_after_a_silence_is_flagged():
    values, predictions = noisy(16, 3000, 17)
    elapsed = intervals(16, 3000, 17)
    rows, positions = np.arange(16), np.arange(16) * 50 + 1500
    elapsed[rows, positions] = 5.0 * (5 + rows)  # silent for 4 to 19 readings
    _, anomaly, _ = run_scorer(SETTINGS, values, predictions, elapsed=elapsed)
    _, blind, _ = run_scorer(SETTINGS, values, predictions)  # no timestamps: no silence rule
    assert anomaly[rows, positions].all() and not blind[rows, positions].any()
    added = anomaly & ~blind
    assert added.sum() == 16  # the silences, and nothing else


def test_silences_that_are_a_sensors_normal_stay_quiet():
    values, predictions = noisy(4, 6000, 18)
    elapsed = intervals(4, 6000, 18)
    elapsed[:, 200::100] = 30.0  # a sensor that skips five readings every hundred
    _, anomaly, _ = run_scorer(SETTINGS, values, predictions, elapsed=elapsed)
    assert anomaly[:, 3000:].sum() <= 2


def test_a_flatline_is_flagged():
    values, predictions = noisy(16, 3000, 19)
    rows, positions = np.arange(16), np.arange(16) * 50 + 1500
    for row, p in zip(rows, positions):
        values[row, p:p + 30] = values[row, p - 1] + 0.3  # frozen for 30 readings
        predictions[row, p + 1:p + 31] = values[row, p:p + 30]  # the predictor follows
    _, anomaly, _ = run_scorer(SETTINGS, values, predictions)
    flagged = [np.flatnonzero(anomaly[row, p:p + 30]) for row, p in zip(rows, positions)]
    assert all(len(f) and f[0] <= SETTINGS.stuck_readings for f in flagged)
    _, blind, _ = run_scorer(ScoringSettings(stuck_readings=0), values, predictions)
    assert sum(blind[row, p:p + 30].any() for row, p in zip(rows, positions)) <= 2


def test_a_sensor_whose_readings_often_repeat_is_not_called_stuck():
    values, predictions = noisy(4, 6000, 20)
    values = np.round(values)  # quantised: about a third of readings equal the previous one
    values[:, 4000:4030] = 0.0  # and a 30-reading flat run at the usual level
    score, _, _ = run_scorer(SETTINGS, values, predictions)
    without, _, _ = run_scorer(ScoringSettings(stuck_readings=0), values, predictions)
    assert np.array_equal(score, without)  # the flatline rule never fired


def test_a_spike_where_the_first_level_is_remembered_does_not_explain_itself():
    # The reading at which the spike statistics start becomes the sensor's first known level;
    # a spike there must not become that level (and then match it).
    values, predictions = noisy(4, 400, 21)
    at = scoring._SPIKE_SKIP  # 0-based: the reading counted _SPIKE_SKIP + 1
    values[:, at] = 50.0
    state = new_state(SETTINGS, 4)
    _, anomaly, _ = run_scorer(ScoringSettings(warmup=20), values, predictions, state)
    assert anomaly[:, at:at + 3].any(axis=1).all()
    assert not (np.abs(state["jump_level"] - 50.0) < 1.0).any()


def test_the_level_a_sensor_opened_on_is_known_when_it_comes_back():
    # Each sensor opens at 0, moves 40 sigma up before its known levels start (_SPIKE_SKIP),
    # and comes back at reading 600: a return, not a level shift. Half the sensors open on a
    # ramp instead, whose start is no level to remember.
    values, predictions = noisy(16, 900, 23)
    rows = np.arange(16)
    ramp = rows % 2 == 1
    values[ramp, :20] += 3.0 * np.arange(20)
    moves = 30 + 4 * rows
    for row, move in zip(rows, moves):
        values[row, move:600] += 40.0
        predictions[row, move + 1:] = values[row, move:-1]  # the model follows a reading late
    state = new_state(SETTINGS, 16)
    _, anomaly, _ = run_scorer(ScoringSettings(warmup=20), values, predictions, state)
    back = anomaly[:, 600:603].any(axis=1)
    assert not back[~ramp].any()
    assert (np.abs(state["jump_level"][~ramp]) < 2.0).any(axis=1).all()
    # The ramp's start is not remembered: its return is a 40-sigma miss to an unknown level.
    assert back[ramp].all()
    # Nor are readings repeated at boot (no noise to judge a level by).
    values, predictions = noisy(2, 200, 26)
    values[:, :10] = 0.0
    values[:, 10:] += 50.0
    predictions[:, 11:] = 50.0
    state = new_state(SETTINGS, 2)
    run_scorer(ScoringSettings(warmup=20), values, predictions, state)
    assert not (np.abs(state["jump_level"]) < 2.0).any()


def test_a_counter_that_resets_to_zero_is_not_flagged_but_other_falls_are():
    # Counters rising by 10 +- 3 per reading that reset to 0 at reading 1500; the model follows
    # one reading late. Rows 4-7 fall to half instead, rows 8-11 are flat at 3,000 (noise 3)
    # and fall to 0: none of those is a counter's reset. Rows 12-15 are counters with a
    # downward spike at 1200 before their reset (an anomaly of the counter, not the end of
    # it), and rows 16-19 reset after a silence that left no prediction.
    rng = np.random.default_rng(25)
    increments = np.maximum(rng.normal(10.0, 3.0, (20, 2000)), 0.0)
    values = np.cumsum(increments, axis=1)
    resets = np.r_[0:4, 12:20]
    values[resets, 1500:] = np.cumsum(increments[resets, 1500:], axis=1)
    values[4:8, 1500:] -= 0.5 * values[4:8, 1499:1500]
    values[8:12] = 3000.0 + rng.normal(0.0, 3.0, (4, 2000))
    values[8:12, 1500:] -= 3000.0
    values[12:16, 1200] -= 40.0
    predictions = np.full(values.shape, np.nan)
    predictions[:, 1:] = values[:, :-1] + np.where(np.arange(20) < 8, 10.0, 0.0)[:, None]
    predictions[12:20, 1:] += 10.0
    predictions[16:20, 1500] = np.nan
    state = new_state(SETTINGS, 20)
    _, anomaly, _ = run_scorer(SETTINGS, values, predictions, state)
    flagged = anomaly[:, 1500:1503].any(axis=1)
    assert flagged.tolist() == [False] * 4 + [True] * 8 + [False] * 8
    assert anomaly[12:16, 1200:1203].any(axis=1).all()  # the spike is still seen
    # Only noise's small falls end a sensor's life as a counter.
    assert state["never_fell"].tolist() == [1.0] * 8 + [0.0] * 4 + [1.0] * 8


def test_a_second_big_spike_is_flagged_though_the_first_was_bigger():
    # Bounded noise, so that only the two spikes count in the sensor's spike rate.
    rng = np.random.default_rng(22)
    values, predictions = rng.uniform(-1.7, 1.7, (16, 3000)), np.zeros((16, 3000))
    rows = np.arange(16)
    first, second = 1000 + 10 * rows, 2000 + 10 * rows
    sign = np.where(rows % 2, 1.0, -1.0)
    values[rows, first] += 12.0 * sign  # an earlier, bigger event sets the sensor's record
    values[rows, second] += 8.0 * sign
    for p in (first, second):
        predictions[rows, p + 1] = 0.3 * values[rows, p]  # the spike leaks a little
    # The calibrated miss rule would catch the second spike on its own: off, to see the bypass.
    _, anomaly, _ = run_scorer(WITHOUT_CALIBRATED, values, predictions)
    _, without, _ = run_scorer(replace(WITHOUT_CALIBRATED, spike_record_bypass=0.0), values, predictions)
    assert np.mean([anomaly[row, p:p + 3].any() for row, p in zip(rows, second)]) >= 0.9
    assert np.mean([without[row, p:p + 3].any() for row, p in zip(rows, second)]) <= 0.3


def test_a_flat_sensor_needs_a_bigger_spike():
    # Bounded noise: the sensor's whole range is its noise band (about 4 typical errors wide).
    rng = np.random.default_rng(23)
    values, predictions = rng.uniform(-1.7, 1.7, (16, 3000)), np.zeros((16, 3000))
    rows = np.arange(16)
    small, big = 1500 + 10 * rows, 2500 + 10 * rows
    state = new_state(SETTINGS, 16)
    run_scorer(SETTINGS, values[:, :1000], predictions[:, :1000], state)
    typical = state["error_typ"].mean()  # about 0.85
    sign = np.where(rows % 2, 1.0, -1.0)
    values[rows, small] = 4.6 * typical * sign  # a noise record's size: between 4 and 5
    values[rows, big] = 7.0 * typical * sign
    # The spike rule on its own: on this light-tailed sensor the calibrated miss rule would judge.
    _, anomaly, _ = run_scorer(WITHOUT_CALIBRATED, values, predictions)
    _, as_before, _ = run_scorer(replace(WITHOUT_CALIBRATED, spike_flat_min=SETTINGS.spike_min), values,
                                 predictions)
    assert not any(anomaly[row, p:p + 3].any() for row, p in zip(rows, small))
    assert np.mean([as_before[row, p:p + 3].any() for row, p in zip(rows, small)]) >= 0.9
    assert np.mean([anomaly[row, p:p + 3].any() for row, p in zip(rows, big)]) >= 0.9


def test_restored_state_without_repeat_statistics_does_not_call_a_quantised_sensor_stuck():
    # A checkpoint from before the flatline rule restores its fields fresh while the sensor's
    # count is already high (as in test_state_from_before_the_spread_fields...).
    rng = np.random.default_rng(24)
    values = np.round(rng.normal(0.0, 1.0, (16, 3200)))  # about a third of readings repeat
    values[:, 3000:3006] = 0.0  # and one of its usual flat runs comes right after the restore
    predictions = np.zeros_like(values)
    state = new_state(SETTINGS, 16)
    run_scorer(SETTINGS, values[:, :3000], predictions[:, :3000], state)
    fresh = new_state(SETTINGS, 16)
    for name in ("repeat_run", "repeat_events", "repeat_seen"):
        state[name] = fresh[name]
    # The flatline rule on its own (the calibrated miss rule also scores spike_score).
    score, _, _ = run_scorer(WITHOUT_CALIBRATED, values[:, 3000:], predictions[:, 3000:], state)
    assert not np.isclose(score, SETTINGS.spike_score).any()


def seasonal_with_spikes(n: int, steps: int, seed: int, positions: np.ndarray, size: float):
    """A wide slow wave (range +-10) plus bounded noise (sigma 0.98, never beyond 1.7), predicted
    perfectly up to the noise, with a spike of ``size`` at ``positions`` (one per row) toward
    the middle: inside the sensor's range, so not a new extreme for the spatial rule."""
    rng = np.random.default_rng(seed)
    wave = 10.0 * np.sin(np.arange(steps) / 150.0)
    values = wave + rng.uniform(-1.7, 1.7, (n, steps))
    values[np.arange(n), positions] += np.where(wave[positions] > 0, -size, size)
    return values, np.broadcast_to(wave, (n, steps)).copy()


def test_a_big_miss_on_a_light_tailed_sensor_is_flagged_on_the_reading_itself():
    positions = 1200 + 40 * np.arange(16)
    values, predictions = seasonal_with_spikes(16, 2000, 31, positions, 7.0)  # 5-8.6 sigma
    _, anomaly, _ = run_scorer(SETTINGS, values, predictions)
    _, without, _ = run_scorer(WITHOUT_CALIBRATED, values, predictions)
    rows = np.arange(16)
    assert anomaly[rows, positions].all()
    assert not without[rows, positions].any()  # the spike rule judges a spike on the next reading


def test_on_a_light_tailed_sensor_misses_below_the_calibrated_minimum_are_not_flagged():
    positions = 1200 + 40 * np.arange(16)
    values, predictions = seasonal_with_spikes(16, 2000, 32, positions, 2.0)  # at most 3.5 sigma
    _, anomaly, _ = run_scorer(SETTINGS, values, predictions)
    _, spike_rule, _ = run_scorer(WITHOUT_CALIBRATED, values, predictions)
    assert not anomaly[:, 1000:].any()
    assert spike_rule[:, 1000:].any()  # the spike rule's 4 typical errors are less than 4 sigma


def test_a_change_the_predictor_does_not_follow_raises_one_calibrated_flag():
    values, predictions = seasonal_with_spikes(8, 2000, 35, np.full(8, 10), 0.0)
    values[:, 1500:1600] += np.where(predictions[:, 1500:1600] > 0, -7.0, 7.0)  # 5-8.2 sigma
    _, anomaly, _ = run_scorer(SETTINGS, values, predictions)
    _, without, _ = run_scorer(WITHOUT_CALIBRATED, values, predictions)
    assert anomaly[:, 1500].all()
    assert not (anomaly & ~without)[:, 1501:1600].any()


def test_the_calibrated_rule_learns_nothing_from_the_settling_readings():
    # For its first 100 readings the predictor misses by 5 sigma (a network while the
    # normaliser settles), then by its noise only. The fallback is off: these predictions judge.
    settings = replace(SETTINGS, trend_margin=0.0)
    values, predictions = noisy(16, 400, 36)
    predictions[:, :100] = values[:, :100] + np.random.default_rng(37).normal(0.0, 5.0, (16, 100))
    values[:, 300] += np.where(values[:, 300] > 0, 5.5, -5.5)  # at least 5.5 sigma
    state = new_state(settings, 16)
    run_scorer(settings, values[:, :300], predictions[:, :300], state)
    np.testing.assert_allclose(state["miss_typ"] / 0.8, 1.0, rtol=0.2)
    _, anomaly, _ = run_scorer(settings, values[:, 300:], predictions[:, 300:], state)
    assert anomaly[:, 0].all()


def test_with_a_short_warm_up_the_calibrated_rule_judges_soon_after_it_ends():
    # It learns nothing from the first 50 readings (half the warm-up) and judges after 50 more
    # misses, once its tail rate's prior has faded (about 50 readings): from reading ~150, not
    # ~250 as with the default warm-up's schedule.
    settings = replace(SETTINGS, warmup=100)
    values, predictions = seasonal_with_spikes(16, 180, 38, np.full(16, 160), 7.0)  # 5-8.6 sigma
    _, anomaly, _ = run_scorer(settings, values, predictions)
    assert anomaly[:, 160].all()  # on the reading itself: the calibrated rule's flag


def test_a_sensor_whose_misses_are_often_big_is_left_to_the_rarity_rules():
    values, predictions = noisy(8, 4000, 33)
    values[:, 300::150] += 6.0  # a 6-sigma miss every 150 readings: this sensor's normal
    state = new_state(SETTINGS, 8)
    _, anomaly, _ = run_scorer(SETTINGS, values, predictions, state)
    _, without, _ = run_scorer(WITHOUT_CALIBRATED, values, predictions)
    rate = (state["tail_events"] + 0.2) / (state["tail_seen"] + 20)
    assert (rate > SETTINGS.miss_tail_rate_max).all()
    np.testing.assert_array_equal(anomaly[:, 2000:], without[:, 2000:])


def test_the_calibrated_yardstick_is_the_noise_in_raw_units_whatever_the_standard_deviation_does():
    rng = np.random.default_rng(34)
    n, steps = 8, 3000
    state = new_state(SETTINGS, n)
    # The sensor's standard deviation swings between 0.5 and 2 (a slow wave seen through a
    # short window, say) while its noise stays at 1.
    stds = np.where((np.arange(steps) // 50) % 2, 2.0, 0.5)
    for t in range(steps):
        state["prediction"] = np.zeros(n)
        scoring.score(SETTINGS, state, rng.normal(0.0, 1.0, n), np.full(n, stds[t]), np.zeros(n))
    sigma_estimate = state["miss_typ"] / 0.8
    np.testing.assert_allclose(sigma_estimate, 1.0, rtol=0.15)
    typical_in_raw_units = state["error_typ"] * stds[-1]
    assert (np.abs(typical_in_raw_units - 0.8) > 0.2).all()  # the typical error of 1 does not hold


def test_one_burst_of_big_misses_does_not_make_a_sensor_heavy_tailed():
    # A variance anomaly: 100 readings of noise six times louder are one excursion, not a
    # hundred big misses; the sensor's next spike is still judged by the calibrated rule.
    positions = 1800 + 10 * np.arange(16)
    values, predictions = seasonal_with_spikes(16, 2000, 36, positions, 7.0)
    values[:, 1000:1100] += np.random.default_rng(37).normal(0.0, 6.0, (16, 100))
    _, anomaly, _ = run_scorer(SETTINGS, values, predictions)
    assert anomaly[np.arange(16), positions].all()


def test_after_a_jump_to_a_noisier_level_the_yardstick_is_learnt_afresh():
    # A regime switch: level 0 with noise 1, then level 60 with noise 3, which the predictor
    # knows from the reading after the switch on.
    rng = np.random.default_rng(38)
    n, steps, switch = 8, 3000, 1500
    level = np.where(np.arange(steps) >= switch, 60.0, 0.0)
    noise = np.where(np.arange(steps) >= switch, 3.0, 1.0)
    values = level + noise * rng.normal(0.0, 1.0, (n, steps))
    predictions = np.broadcast_to(np.r_[0.0, level[:-1]], (n, steps)).copy()
    state = new_state(SETTINGS, n)
    _, anomaly, _ = run_scorer(SETTINGS, values, predictions, state)
    _, without, _ = run_scorer(WITHOUT_CALIBRATED, values, predictions)
    assert anomaly[:, switch:switch + 5].any(axis=1).all()  # the jump itself: a first visit
    # The louder noise there adds no calibrated flag (the other rules see the change itself).
    assert not (anomaly & ~without)[:, switch + 5:].any()
    np.testing.assert_allclose(state["miss_typ"] / 0.8, 3.0, rtol=0.15)


def two_regimes(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Level 0 with noise 1 and level 60 with noise 3, 500 readings at each in turn (ending at
    the quiet one), judged by a predictor that knows each switch from the reading after it.
    Returns values, predictions and where the sensor is at the loud level."""
    rng = np.random.default_rng(seed)
    loud = (np.arange(5500) // 500) % 2 == 1
    values = np.where(loud, 60.0, 0.0) + np.where(loud, 3.0, 1.0) * rng.normal(0.0, 1.0, (16, 5500))
    predictions = np.broadcast_to(np.r_[0.0, np.where(loud, 60.0, 0.0)[:-1]], (16, 5500)).copy()
    return values, predictions, loud


def test_a_return_to_a_louder_level_is_judged_by_that_levels_own_yardsticks(monkeypatch):
    values, predictions, loud = two_regimes(41)
    after_return = np.zeros(values.shape, bool)
    for t in np.flatnonzero(np.diff(loud.astype(int)) == 1) + 1:
        if t > 2000:  # both levels known and each visited for 500 readings
            after_return[:, t + 5:t + 100] = True
    returns = 16 * int((np.diff(loud[2000:].astype(int)) == 1).sum())
    state = new_state(SETTINGS, 16)
    _, anomaly, _ = run_scorer(SETTINGS, values, predictions, state)
    assert anomaly[after_return].sum() <= returns // 3
    # The loud level kept its sigma estimate (3) while the sensor is at the quiet one.
    kept = state["jump_yardsticks"][..., scoring._LEVEL_YARDSTICKS.index("miss_typ")] / 0.8
    at_loud = (np.abs(state["jump_level"] - 60.0) < 10.0) & np.isfinite(kept)
    assert at_loud.any(axis=1).all()
    np.testing.assert_allclose(kept[at_loud], 3.0, rtol=0.2)
    # With one set of yardsticks for both levels, the loud noise raises flags on every return.
    monkeypatch.setattr(scoring, "_move_to_level", lambda *args: None)
    _, shared, _ = run_scorer(SETTINGS, values, predictions)
    assert shared[after_return].sum() >= returns


def test_a_level_keeps_each_yardstick_only_from_a_stay_long_enough_to_learn_it():
    index = scoring._LEVEL_YARDSTICKS.index
    state = new_state(SETTINGS, 3)
    state["jump_at"][:] = 0
    state["jump_since"][:] = [scoring._MISSES_LEARNT - 1, scoring._MISSES_LEARNT, SETTINGS.error_window]
    state["error_typ"][:], state["miss_typ"][:] = 0.5, 2.0
    scoring._move_to_level(SETTINGS, state, np.arange(3), np.array([1, 1, 1]))
    kept = state["jump_yardsticks"][:, 0]
    # A stay too short to learn a yardstick leaves it unknown, not as it was before.
    assert np.isnan(kept[:2, index("error_typ")]).all() and kept[2, index("error_typ")] == 0.5
    assert np.isnan(kept[0, index("miss_typ")]) and kept[1:, index("miss_typ")].tolist() == [2.0, 2.0]
    assert state["jump_at"].tolist() == [1, 1, 1] and (state["jump_since"] == 0).all()
    # Back to level 0: what it kept comes back, and where it kept nothing the yardstick stays.
    state["miss_typ"][:], state["error_typ"][:] = 3.0, 0.7
    scoring._move_to_level(SETTINGS, state, np.arange(3), np.array([0, 0, 0]))
    assert state["miss_typ"].tolist() == [3.0, 2.0, 2.0]
    assert state["error_typ"].tolist() == [0.7, 0.7, 0.5]


def test_the_calibrated_minimum_may_be_set_below_the_tail_level():
    positions = 1200 + 40 * np.arange(16)
    values, predictions = seasonal_with_spikes(16, 2000, 39, positions, 5.0)  # 3.1-6.3 sigma
    _, anomaly, _ = run_scorer(ScoringSettings(miss_min=3.0), values, predictions)
    assert anomaly[np.arange(16), positions].all()


def louder_from(values: np.ndarray, predictions: np.ndarray, start: int, factor: float) -> np.ndarray:
    """The same readings with the noise around the prediction ``factor`` times louder from ``start`` on."""
    louder = values.copy()
    louder[:, start:] = predictions[:, start:] + factor * (values[:, start:] - predictions[:, start:])
    return louder


def test_louder_noise_at_the_same_level_soon_stops_raising_calibrated_flags():
    # Gaussian noise three times louder from the switch on, around the same level: the slow
    # yardstick takes hundreds of readings to learn it, the fast one tens.
    values, predictions = noisy(8, 2600, 40)
    switch = 1500
    values = louder_from(values, predictions, switch, 3.0)
    _, anomaly, _ = run_scorer(SETTINGS, values, predictions)
    _, slow_only, _ = run_scorer(replace(SETTINGS, miss_fast_window=0), values, predictions)
    _, without, _ = run_scorer(WITHOUT_CALIBRATED, values, predictions)
    settled = slice(switch + 40, None)
    calibrated_flags = (anomaly & ~without)[:, settled].sum()
    slow_only_flags = (slow_only & ~without)[:, settled].sum()
    assert slow_only_flags >= 8
    assert 4 * calibrated_flags <= slow_only_flags, (calibrated_flags, slow_only_flags)


def test_a_drift_is_flagged_as_soon_as_without_the_fast_yardstick():
    # A drift's misses ramp up; the local mean miss follows the ramp closely enough that the
    # fast yardstick does not take it for louder noise.
    values, predictions = noisy(8, 2600, 41)
    start = 1500
    values[:, start:] += 0.05 * np.arange(1100)
    _, anomaly, _ = run_scorer(SETTINGS, values, predictions)
    _, slow_only, _ = run_scorer(replace(SETTINGS, miss_fast_window=0), values, predictions)
    assert anomaly[:, start:start + 150].any(axis=1).all()
    first = anomaly[:, start:].argmax(axis=1)
    first_slow_only = slow_only[:, start:].argmax(axis=1)
    assert (first <= first_slow_only + 5).all(), (first, first_slow_only)


def test_the_fast_yardstick_learns_only_when_switched_on():
    values, predictions = seasonal_with_spikes(4, 400, 42, np.full(4, 10), 0.0)
    state = new_state(SETTINGS, 4)
    run_scorer(SETTINGS, values, predictions, state)
    assert (state["miss_fast"] > 0).all()
    quiet = replace(SETTINGS, miss_fast_window=0)
    state_off = new_state(quiet, 4)
    run_scorer(quiet, values, predictions, state_off)
    assert (state_off["miss_fast"] == 0).all()


# Only the likelihood raises flags: every other rule is switched off or out of reach.
ONLY_LIKELIHOOD = dict(miss_min=0.0, spatial_margin=1e9, spike_min=1e9, step_min=1e9, gap_factor=0.0,
                       stuck_readings=0, jump_tolerance=0.0)
SHORT_WINDOW = 1000  # likelihood_window for the tests below, so the window fills quickly


def settling_then_bursts(seed: int, steps: int = 4 * SHORT_WINDOW) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit noise predicted perfectly, after 60 readings of settling misses (as after a reset),
    with a burst of three misses of 4 sigma (5 typical errors) every 500 readings: for this
    sensor an ordinary sight. Returns (values, predictions, burst starts)."""
    rng = np.random.default_rng(seed)
    values = rng.normal(0.0, 1.0, (16, steps))
    predictions = np.zeros_like(values)
    predictions[:, :60] = rng.normal(0.0, 8.0, (16, 60))
    starts = np.arange(300, steps, 500)
    for start in starts:
        values[:, start:start + 3] = [4.0, -4.0, 4.0]
    return values, predictions, starts


def burst_flag_rates(settings: ScoringSettings) -> tuple[float, float]:
    """Share of bursts flagged while the likelihood's window fills, and after it has filled twice."""
    values, predictions, starts = settling_then_bursts(3)
    _, anomaly, _ = run_scorer(settings, values, predictions)
    flagged = np.array([anomaly[:, start:start + settings.short_window + 2].any(axis=1).mean() for start in starts])
    return flagged[starts < SHORT_WINDOW].mean(), flagged[starts > 2 * SHORT_WINDOW].mean()


def test_the_likelihood_does_not_grow_more_alarmed_once_settling_errors_age_out():
    settings = ScoringSettings(likelihood_window=SHORT_WINDOW, **ONLY_LIKELIHOOD)
    while_filling, settled = burst_flag_rates(settings)
    assert settled <= while_filling / 2
    # Without the settled floor the Gaussian narrows as the settling misses age out, and the
    # same bursts are flagged more often than at the start (measured 0.50 -> 0.66).
    old_while_filling, old_settled = burst_flag_rates(
        replace(settings, likelihood_settled_var_floor=settings.likelihood_var_floor))
    assert old_settled > old_while_filling


def test_the_settled_floor_takes_over_on_the_first_reading_after_the_window_has_filled():
    settings = ScoringSettings(likelihood_window=SHORT_WINDOW, **ONLY_LIKELIHOOD)
    values, predictions = noisy(8, SHORT_WINDOW + 200, 5)  # no settling misses: narrower than either floor
    scores, _, _ = run_scorer(settings, values, predictions)
    base, _, _ = run_scorer(replace(settings, likelihood_settled_var_floor=settings.likelihood_var_floor),
                            values, predictions)
    assert np.array_equal(scores[:, :SHORT_WINDOW], base[:, :SHORT_WINDOW])
    assert (scores[:, SHORT_WINDOW] != base[:, SHORT_WINDOW]).all()


def test_a_lasting_change_is_still_flagged_after_the_likelihoods_window_has_filled():
    # With the likelihood alone, a change big enough to saturate the squash every reading.
    alone = ScoringSettings(likelihood_window=SHORT_WINDOW, **ONLY_LIKELIHOOD)
    values, predictions = noisy(8, 4 * SHORT_WINDOW, 4)
    values[:, 3500:3600] += 8.0  # predictions stay at 0: errors stay large for 100 readings
    _, anomaly, _ = run_scorer(alone, values, predictions)
    assert anomaly[:, 3500:3512].any(axis=1).all()
    assert not anomaly[:, 2 * SHORT_WINDOW:3500].any()
    assert anomaly[:, 3500:3600].sum(axis=1).max() <= 2


def wandering(n: int, steps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A flat sensor (unit noise) and a predictor that wanders by 0.9 sigma around its level."""
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 1.0, (n, steps)), rng.normal(0.0, 0.9, (n, steps))


def test_where_the_predictor_wanders_the_calibrated_rule_judges_against_the_smoothed_level():
    # A flat sensor whose predictor wanders by 0.9 sigma around the level: it misses by about
    # 1.35 sigma, against which a 5.5-sigma spike is about 4 of its misses. The smoothed level
    # misses by about 1.07 sigma, so the spike stands out by 5.
    values, predictions = wandering(16, 1500, 40)
    values[:, 1200] += np.where(values[:, 1200] > 0, 5.5, -5.5)  # at least 5.5 sigma
    _, anomaly, warmup = run_scorer(SETTINGS, values, predictions)
    assert anomaly[:, 1200].all()
    assert anomaly[~warmup].sum() - 16 <= 1
    _, without, _ = run_scorer(replace(SETTINGS, smooth_level_gain=0.0), values, predictions)
    assert without[:, 1200].sum() <= 10  # judged against the predictor, about half are missed


def test_a_change_the_predictor_saw_coming_is_no_miss_against_the_smoothed_level():
    # A square wave between 0 and 8 sigma (edges every 300 readings) whose predictor knows
    # each edge but wanders by 0.9 sigma: the smoothed level judges for the calibrated rule (it
    # misses less), yet misses every edge by 8 sigma. Those edges are the predictor's to judge:
    # it misses them by more than half the rule's minimum only as often as any reading (about
    # 1 in 20; before, 44 of the 80 edges were flagged). A 5.5-sigma spike is still flagged.
    values, wander = wandering(16, 1500, 42)
    level = np.where(((np.arange(1500) - 50) // 300) % 2 == 1, 8.0, 0.0)
    values, predictions = values + level, wander + level
    values[:, 1100] += np.where(values[:, 1100] > level[1100], 5.5, -5.5)
    edges = np.flatnonzero(np.diff(level)) + 1
    _, anomaly, _ = run_scorer(SETTINGS, values, predictions)
    assert len(edges) == 5 and anomaly[:, edges].sum() <= 8
    assert anomaly[:, 1100].all()


def two_levels(n: int, steps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Readings at 0 or 40 (switching every 100 readings, from reading 50) plus unit noise,
    predicted by the previous reading (a predictor that only catches up after a switch)."""
    level = np.where(((np.arange(steps) + 50) // 100) % 2, 40.0, 0.0)
    values = level + np.random.default_rng(seed).normal(0.0, 1.0, (n, steps))
    return values, np.concatenate([np.full((n, 1), np.nan), values[:, :-1]], axis=1)


def test_a_spike_just_after_a_known_jump_is_flagged():
    # From the second switch on, each one lands on a known level: no excursion starts there,
    # and the smoothed level starts afresh at it, so the readings right after are judged.
    values, predictions = two_levels(16, 2000, 41)
    values[:, 1454] += np.where(values[:, 1454] > 40.0, 6.0, -6.0)  # four readings after a switch
    _, anomaly, warmup = run_scorer(SETTINGS, values, predictions)
    assert anomaly[:, 1454].all()
    assert anomaly[~warmup].sum() - 16 <= 4


def test_after_a_long_gap_the_smoothed_level_starts_afresh():
    # The sensor is 8 sigma higher after a gap that reset its context (no prediction for the
    # first reading after it); the predictor knows the new level at once.
    values, predictions = wandering(16, 1500, 43)
    values[:, 1200:] += 8.0
    predictions[:, 1200:] += 8.0
    predictions[:, 1200] = np.nan
    _, anomaly, _ = run_scorer(SETTINGS, values, predictions)
    assert not anomaly[:, 1200:1210].any()


def test_switched_off_on_learnt_state_the_smoothed_level_judges_nothing():
    # State learnt with the smoothed level on (a checkpoint, say), then run with it off: the
    # level learnt before must have no effect, as if it had never been learnt.
    values, predictions = wandering(16, 2500, 44)
    values[:, 2000:] += 1.5  # a move the predictor follows, and a frozen level would not
    predictions[:, 2000:] += 1.5
    learnt = new_state(SETTINGS, 16)
    run_scorer(SETTINGS, values[:, :1500], predictions[:, :1500], learnt)
    assert np.isfinite(learnt["smooth_prediction"]).all()
    never = {name: array.copy() for name, array in learnt.items()}
    never["smooth_prediction"][:], never["smooth_count"][:] = np.nan, 0.0
    off = replace(SETTINGS, smooth_level_gain=0.0)
    with_learnt = run_scorer(off, values[:, 1500:], predictions[:, 1500:], learnt)
    without = run_scorer(off, values[:, 1500:], predictions[:, 1500:], never)
    for a, b in zip(with_learnt, without):
        np.testing.assert_array_equal(a, b)
