"""Anomaly scoring: prediction errors -> scores in [0, 1] and flags, vectorised over a batch.

Per reading, for every sensor row in the batch at once (all state lives in the rows):
0. prediction: the model's, or a trend fallback's (the previous reading plus the sensor's mean
   first difference) when that has missed by less than ``trend_margin`` of the model's typical
   miss over ``trend_window`` readings. Counters and other steady ramps are where it wins: the
   network sees them in units of a standard deviation that grows with the ramp, in which their
   increments all but vanish. On NAB it is chosen for a few stretches and scores about one point
   more; on the default simulator scenario it is what lets counter anomalies be seen at all;
1. error: the reading against that prediction, in units of the sensor's standard deviation,
   then relative to the sensor's typical error. The typical error is a running mean of misses,
   floored (``error_floor``, or ``floor_spread`` spreads of the first differences when that is
   smaller) and capped at ``typical_spread_cap`` spreads, and while the fallback judges, at
   ``trend_typical`` of the fallback's own running mean miss. The spread of first differences (their
   running standard deviation) is a yardstick that does not grow with a ramp or a slow cycle:
   about one local sigma on a counter, 1.4 on white noise; the standard deviation of a counter
   reaches thousands of them, so a floor in standard deviations alone hid every counter anomaly,
   and a running mean of misses measured in a growing unit lags far behind;
   Known jumps: a sensor that moves between a few levels (regimes it returns to, the two levels
   of a duty cycle, the foot of a sawtooth) misses its prediction by a lot at every such move.
   The levels at both ends of each big confirmed step (see 7), the reading at which the
   spike statistics start, and the level the sensor opened on if it was flat and has been
   left by then (``_remember_opening``: seeds 7, 11, 3, false alarms 443 -> 434, 464 -> 446,
   472 -> 460, recall unchanged; NAB 67.41 -> 67.32) are remembered (four per sensor); a
   level within half of ``jump_tolerance`` of a known one refines that one instead of taking
   a slot, so a predictor that keeps missing near one level (the network anticipating a
   sawtooth's drop) does not fill every slot with copies of it and evict the others (default
   scenario, seeds 7, 11, 3: false alarms 526 -> 513, 543 -> 539, 586 -> 574, cycle sensors'
   161 -> 145 on seed 7; NAB 68.36 -> 68.61; merging within the whole tolerance fused
   distinct levels: NAB 66.37).
   Each known level keeps the noise yardsticks learnt there (the typical error and the
   calibrated rule's, see 9, each once the sensor stayed long enough to learn them) and a move
   to it brings them back: regimes differ in their noise, and a return to a louder one used to
   be judged by the last one's until the yardsticks caught up (seeds 7, 11, 3: false alarms
   513 -> 480, 539 -> 539, 574 -> 552, spikes 0, -0.012, +0.007, level shifts 0, -0.007,
   -0.005; after 8 hours of history 673 -> 653; NAB 68.61 -> 68.12; keeping the typical error
   at every move cost 1.6 NAB points).
   A sensor that has only ever risen (noise aside) and drops from its previous reading by a
   jump to within a few increments of 0 is a counter that reset (``_counter_reset``, as
   Prometheus' ``rate()`` reads a counter), and 0 becomes one of its levels (seeds 7, 11, 3: false alarms 426 -> 418, 441 -> 434, 452 -> 450,
   counters' 38 -> 30 on seed 7; after 24 hours spikes 0.933 / 0.921 / 0.895 -> 0.944 / 0.924
   / 0.909: a reset counted as an excursion kept the calibrated rule off the counter; NAB
   67.32 -> 67.89).
   A miss of at least ``jump_min`` typical errors that lands within ``jump_tolerance`` of a
   remembered level away from the prediction (on a steady ramp, of the stretch from the level
   to one reading's rise above it: a sawtooth's drop lands anywhere there by the phase of the
   sampling; seeds 7, 11, 3: false alarms 434 -> 426, 446 -> 441, 460 -> 452, cycle sensors'
   86 -> 78 on seed 7; NAB unchanged) is judged against that level, is not learnt as
   a miss by any statistic, and hands the next ``jump_hold`` readings to the trend fallback
   while the model catches up with the new level. ``jump_min`` is above what a labelled
   anomaly of the simulator's default 6 sigma misses by (7-8 typical errors), so such
   anomalies are never explained away. Measured on the default scenario, seeds 7 and 11:
   false alarms 766 -> 705 and 786 -> 687, level shifts +0.004 / +0.014; NAB 67.18 -> 68.74
   (66.63 -> 68.65 at 0.54);
2. squash: typical errors map to 0 and only errors beyond ``squash_low`` typical errors rise
   linearly to 1 at ``squash_high``; a squash that lets ordinary errors through dilutes single
   spikes in the averaging below (measured on NAB: worth as much as the predictor);
3. likelihood, after Numenta's HTM post-processing: the mean of the last ``short_window``
   squashed errors against a long-run Gaussian of that mean (``likelihood_window`` readings,
   HTM's 8640); the score is the log-scaled tail probability, so 0.5 means about 1e-5 and 1.0
   means 1e-10. The Gaussian's variance is floored at ``likelihood_var_floor`` (HTM's) while
   its window fills, and at ``likelihood_settled_var_floor`` once it has filled (see below);
4. repeat filter, also HTM's: a likelihood at or above ``repeat_level`` right after another one
   at or above it is cut to ``repeat_score``, so a lasting change raises one flag, on its first
   reading, instead of a run of them (without it the likelihood scores about 15 NAB points
   instead of about 40: every long excursion would be a burst of false positives);
5. spatial rule, after HTM's NAB detector: a value beyond the sensor's running min/max by more
   than ``spatial_margin`` of that range, which also missed its prediction by at least
   ``spatial_min_error`` typical errors, scores 1.0 outright; min and max decay slowly toward
   the running mean so one old excursion does not blind the rule forever. The prediction test
   is ours: a trend or a slow cycle that the predictor follows reaches new extremes all the
   time (on simulator scenarios HTM's plain rule made 80% of all false alarms, on seasonal and
   random-walk sensors); with it NAB scores 65.65 instead of 65.50 and scenario precision
   rises from 0.23 to 0.36. On a sensor whose whole range spans fewer than
   ``spatial_noise_range`` typical errors (a flat sensor: its range is its noise band), a new
   extreme must miss by ``spatial_noise_error``: records of Gaussian noise made about 100 false
   alarms per default scenario (precision 0.65 -> 0.68, spikes -0.01, NAB +0.05). At 4.5
   typical errors instead of 4, the noise that reaches a new extreme of a seasonal or
   random-walk sensor while it climbs rarely passes (seeds 7, 11, 3: false alarms 418 -> 402,
   434 -> 418, 450 -> 433, spikes -0.003 / 0 / 0, level shifts 0 / -0.007 / 0; NAB
   unchanged; at 5, NAB -0.8);
6. spike rule: a reading that missed its prediction by at least ``spike_min`` typical errors
   and was followed by a return to where the signal should have gone (its prediction moved on
   by the predicted change, within ``spike_return`` typical errors) is an isolated spike. It
   scores ``spike_score`` on the reading after it when it beats every earlier spike of the
   sensor by ``spike_record_margin`` (a slowly decaying record) and such spikes are rare for
   the sensor (below ``spike_rate_max`` per reading over ``spike_rate_window``). The likelihood
   is built not to flag one surprise on its own (one squashed error of 1 scores 0.455); this
   rule catches the clean outlier on a quiet sensor, while on spiky sensors spikes of ordinary
   size stay quiet. It costs about 0.5 NAB points (NAB labels few isolated spikes). A spike of
   ``spike_record_bypass`` typical errors or more need not beat the record, only be rare:
   noise on a Gaussian sensor reaches that about once in a million readings, and a record
   left by an earlier event (or a bigger spike) hid the sensor's next ones (default scenario:
   spikes 0.68 -> 0.70 and 0.71 -> 0.73 on seeds 7 and 11, 7 and 2 more false alarms; NAB
   69.17 -> 68.84). On a flat sensor (see 5) a spike must miss by ``spike_flat_min``: its noise
   reaches 4-5 typical errors a few times a day and each new record was flagged (default
   scenario: 60 and 54 fewer false alarms, spikes -0.004 and -0.015, NAB +0.2);
7. step rule: a level shift is one big miss after which the predictor follows the new level,
   so the likelihood barely moves and the miss alone looks like a spike. A miss of at least
   ``step_min`` typical errors starts a test: if each of the next ``step_readings`` readings
   stays off the path the signal was on (the prediction made before the miss, moved on by the
   change predicted then) on the miss's side, by at least ``step_min`` typical errors on
   average, it is a step and scores ``step_score`` when steps at least 0.8 of its size are
   rare for the sensor (below ``step_rate_max`` per reading, the spike rule's horizon and
   prior) and it beats its decaying record. Regime switches and cycle edges are steps too,
   frequent ones, which the rate keeps quiet. Measured on 300 sensors of the default scenario
   (seeds 7, 11, 3), the rule raised level-shift recall from 0.30-0.39 to 0.45-0.48 (and
   drift's), with 6-7% more false alarms, mostly on random walks, whose big innovations are
   steps too. Counting only steps about as big (instead of all) in the rate: level shifts
   0.55 -> 0.60 (seed 7) and 0.60 -> 0.65 (seed 11) at the same precision, NAB 68.74 -> 68.16;
8. silence and flatline rules, for what a prediction error cannot show: a reading that comes
   ``gap_factor`` or more typical intervals after the previous one (a dropout, a link down;
   the typical interval is a running mean of capped intervals), and the ``stuck_readings``-th
   exactly equal reading in a row (a frozen sensor). Each scores ``spike_score`` on a sensor
   where it is rare: silences by the spike rule's rarity, flat runs on sensors that repeat
   their previous reading less than once in 100 (quantised or slow sensors repeat often).
   Measured on the default scenario (seed 7): dropouts detected 0.25 -> 1.00 (on the reading
   after the gap), flatlines 0.27 -> 0.92 (median delay 3 readings), no new false alarm,
   precision 0.58 -> 0.65; NAB 68.16 -> 68.58 (the flatline rule +0.8, the silence rule -0.4);
9. calibrated miss rule: a miss of at least ``miss_min`` sigma estimates scores ``spike_score``
   on the reading itself, on a sensor whose misses are light-tailed (excursions of
   ``miss_tail`` sigma estimates or more start less than ``miss_tail_rate_max`` times per
   reading), if it starts an excursion (none of the 10 readings before missed by
   ``miss_tail``; with the smoothed level off, a known jump starts one too). The sigma
   estimate is the running mean miss in raw units over 0.8 (a Gaussian's mean absolute
   deviation), not the typical error of 1: that one averages misses each measured in the
   standard deviation of its own time and overstates the miss where the standard deviation
   moves, and the rarity and record tests of 6 and 7 kept quiet the second and third anomaly
   of a sensor. On light-tailed sensors a fixed threshold in sigmas is what a demanding user expects. Where this rule judges, the
   spike and step rules stand aside (they keep learning): on such sensors their rarity tests
   only added noise records as false alarms. After a confirmed step of ``jump_min`` to a new
   level the rule learns its yardstick afresh, since the noise there may differ (regime
   sensors). Measured on the default scenario (seeds 7 and 11): spikes 0.69 -> 0.86 and
   0.71 -> 0.83, level shifts 0.60 -> 0.84 and 0.64 -> 0.84, precision 0.70 -> 0.74 and
   0.70 -> 0.73, median delays 1 and 2 -> 0 readings; with the simulator's ideal predictions
   spikes 0.96, level shifts 0.96, precision 0.83; NAB 69.12 -> 68.21 (low-FP 57.30 ->
   53.76, low-FN 75.10 -> 75.07). Beside that slow yardstick (300 misses) a fast one: the
   mean deviation of the last ``miss_fast_window`` misses from their local mean (20 misses,
   so a drift's ramp does not pass for noise); the rule judges against the larger of the
   two, so noise that grows louder, a frequency or variance change that lasts, stops raising
   flags within tens of readings. Measured in the same runs (seeds 7, 11, 3): false alarms
   566 -> 527, 568 -> 542, 623 -> 587, precision +0.008 to +0.012, spike and level-shift recall
   within -0.007 and +0.007, frequency changes -0.02 to -0.04; with ideal predictions 344 ->
   258 false alarms, precision 0.83 -> 0.87; NAB 68.21 -> 68.36. The rule learns nothing
   from the first ``_SPIKE_SKIP`` readings after a reset (at most half the warm-up, so that a
   shorter warm-up does not leave it blind after it ends), like the spike statistics: a
   counter's network misses by several sigma there until the trend fallback takes over, and
   the exact mean of the first misses remembered them for hundreds of readings (default
   scenario, seeds 7, 11, 3: level shifts +0.026, +0.004, +0.038, spikes +0.011, -0.004,
   -0.003, false alarms 426 -> 416, 474 -> 465, 457 -> 470; NAB 68.13 -> 67.74).
   The rule judges against a smoothed level (Holt's linear method, see ``_learn_smooth``)
   instead of the judged prediction where that level has missed less (``smooth_margin``) and
   the rule's recent misses do not lean one way: on the flats of cycle and regime sensors the
   network misses by 1.2-1.3 sigma, the smoothed level by about 1.1, and the yardstick is the
   miss. A known jump restarts the level and, unlike other big misses, starts no excursion,
   so the readings right after an edge are judged (widened while the level is the mean of a
   few readings). Only this rule uses it: the likelihood needs a predictor that stays
   surprised by a change, and judging every rule against it cost NAB 1.5-6 points (default
   scenario, seeds 7, 11, 3: spikes +0.022, +0.043, +0.032, level shifts +0.007, +0.017,
   +0.009, false alarms +26, -3, +2; after 24 hours of history spikes 0.933, 0.921, 0.895;
   NAB 67.74 -> 67.41);
10. local-maximum filter: a likelihood or spatial score is kept only when it exceeds every such
   score of the previous ``suppress_window`` readings (else scaled by ``suppress_factor``), so
   one event does not raise a run of flags (the spike, step, silence, flatline and calibrated
   miss rules, rare by construction, are exempt);
11. warm-up: the first ``warmup`` readings after a reset score a neutral 0.5 and are never
   flagged; every statistic still learns from them.

The likelihood's long-run statistics deliberately include the first readings after a reset,
whose errors are large while the normaliser and the typical error settle: that widens the
Gaussian early on and makes the likelihood conservative for the first few thousand readings,
as HTM's is. Measured on NAB, excluding them costs 3-5 points (a fixed variance floor does not
recover it). Once they start to age out (after ``likelihood_window`` readings) the squashed errors,
mostly zeros, leave a Gaussian so narrow that two moderate misses within the short window pass
for an anomaly, and the likelihood became the main source of false alarms: on the default
scenario judged after 24 hours of history, 855 false alarms against 396 without it. So once the
window has filled the variance floor is ``likelihood_settled_var_floor`` instead (seeds 7, 11,
3 after 24 hours: false alarms 855 -> 436, 898 -> 439, 872 -> 433, precision 0.68 -> 0.80,
spikes -0.02 to -0.03, level shifts -0.01 to -0.02, frequency changes -0.10 to -0.13, about
what they are after a cold start; the first 12 hours at 5 s unchanged; NAB 68.12 -> 67.16, only
its 12 files longer than the window can change; docs/evaluation.md, "A settled floor under the
likelihood").

The defaults are the ones evaluated on NAB (replayed causally through ``Detector``, NAB's own
scoring): ``threshold`` is NAB's corpus-wide optimum for the standard profile with the shipped
model and this chain, 0.544 to 0.554 over the last changes, kept at 0.55 (NAB 68.13 at 0.554,
67.87 at 0.55 with the model trained for the median, see docs/model.md; 67.16 at 0.544 with the
model before; 68.36 at the 0.54 it had before the known jumps, the step size classes, the
silence and flatline rules, the flat-sensor rules and the calibrated miss rule). On the default
scenario 0.55 and 0.54 differ by a dozen false alarms. The threshold belongs to the model and
the chain: a retrained model moves the optimum (0.52-0.58 seen across training seeds and
losses), so re-run the NAB evaluation when either changes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from anomalyd.models.features import running_mean_var
from anomalyd.models.slots import Field

NEUTRAL_SCORE = 0.5
_LOG_SCALE = -math.log(1e-10)  # tail probability 1e-10 -> score 1.0


@dataclass(frozen=True)
class ScoringSettings:
    threshold: float = 0.55
    warmup: int = 200
    error_window: int = 300  # readings over which the typical error is averaged
    error_floor: float = 0.02  # typical error floor, in standard deviations of the signal ...
    floor_spread: float = 0.5  # ... or in spreads of the first differences, if that is lower
    typical_spread_cap: float = 1.5  # typical error ceiling, in spreads of the first differences
    # Trend fallback: the previous reading plus the mean first difference predicts a sensor
    # whose model misses by more than this fraction of the fallback's (running mean of misses).
    trend_margin: float = 0.8  # 0 turns the fallback off
    trend_window: int = 300  # readings: horizon of both running misses and of the spread
    # While the fallback judges, the typical error is at most this many of its running mean
    # misses (the running mean of judged misses still remembers the model's, from before).
    trend_typical: float = 1.3
    # Smoothed fallback for the calibrated miss rule: a level and a slope that follow the
    # readings by exponential smoothing (Holt's linear method), restarted at a known jump. The
    # rule judges against it where its running miss is below ``smooth_margin`` (at most 1) of
    # the judged prediction's (the model's or the trend fallback's). A gain or a margin of 0
    # turns it off.
    smooth_level_gain: float = 0.2
    smooth_slope_gain: float = 0.05  # of the level's gain, for the slope
    smooth_margin: float = 0.95
    squash_low: float = 2.0  # typical errors at which the squashed error starts to rise
    squash_high: float = 6.0  # ... and reaches 1
    short_window: int = 10
    likelihood_window: int = 8640  # horizon of the long-run Gaussian of the short mean
    likelihood_mean_floor: float = 0.03  # floor of the Gaussian's mean (HTM's)
    likelihood_var_floor: float = 3e-4  # floor of its variance while its window fills (HTM's) ...
    # ... and once the window has filled (``likelihood_window`` readings), when the settling
    # errors that widened it early start to age out, this one (at least the one before). Above
    # about 0.045 the likelihood can no longer reach the threshold once the window has filled.
    likelihood_settled_var_floor: float = 5e-3
    repeat_level: float = 0.5  # a likelihood this high right after another one this high ...
    repeat_score: float = 0.3  # ... is cut to this (HTM's red/yellow filter)
    spatial_margin: float = 0.05
    spatial_min_error: float = 4.5  # typical errors a new extreme must also miss its prediction by
    # ... or this many, on a sensor whose whole running range spans fewer than
    # ``spatial_noise_range`` typical errors: there the range is the noise band, and a new
    # extreme only a record of the noise.
    spatial_noise_error: float = 6.0
    spatial_noise_range: float = 12.0  # 0 turns the distinction off
    spatial_decay: float = 3e-5  # per reading, fraction of the way back to the running mean
    spike_min: float = 4.0  # typical errors: a smaller miss is never a spike ...
    spike_flat_min: float = 5.0  # ... nor, on a flat sensor (see spatial_noise_range), this
    spike_return: float = 2.5  # typical errors: how close the next reading must come back
    spike_record_margin: float = 0.2  # a spike must beat the sensor's record by this fraction ...
    spike_record_decay: float = 1e-4  # ... a record that decays by this fraction per reading
    # A spike of at least this many typical errors need not beat the record (it must still be
    # rare): beyond what noise reaches, an earlier event's size is no reason to stay quiet.
    spike_record_bypass: float = 6.0  # 0 turns it off
    spike_rate_max: float = 0.002  # spikes per reading above which a sensor's spikes are ordinary
    spike_rate_window: int = 5000  # readings: horizon of that rate
    spike_score: float = 0.8
    # Silence: a reading that comes at least ``gap_factor`` typical intervals after the previous
    # one, on a sensor whose silences are rare (the spike rule's rarity), scores ``spike_score``.
    gap_factor: float = 4.0  # 0 turns it off
    # Flatline: the ``stuck_readings``-th equal reading in a row, on a sensor that repeats its
    # previous reading exactly less than once in 100 readings, scores ``spike_score``.
    stuck_readings: int = 5  # 0 turns it off
    # Step rule: a level shift is one big miss after which the predictor follows the new level,
    # so the miss alone looks like a spike; the readings after it tell them apart.
    step_min: float = 4.0  # typical errors: the miss, and the mean of the readings after it
    step_readings: int = 2  # readings after the miss that must stay off the old path
    step_rate_max: float = 0.001  # steps per reading above which a sensor's steps are ordinary
    step_score: float = 0.8
    # Known jumps: a miss of at least ``jump_min`` typical errors that lands within
    # ``jump_tolerance`` typical errors of a level the sensor has stepped to or from before (a
    # regime it returns to, the other level of a duty cycle, the foot of a sawtooth) is judged
    # against that level, and the trend fallback judges the next ``jump_hold`` readings while the
    # model catches up. Each such landing moves the level ``jump_refine`` of the way to it.
    jump_min: float = 10.0
    jump_tolerance: float = 4.0  # 0 turns known jumps off
    jump_hold: int = 10
    jump_refine: float = 0.25
    # Calibrated miss rule: a miss of at least ``miss_min`` sigma estimates (the running mean
    # miss in raw units over 0.8, a Gaussian's mean absolute deviation in sigmas) scores
    # ``spike_score`` at once, on a sensor where excursions of ``miss_tail`` sigma estimates or
    # more start less often than ``miss_tail_rate_max`` per reading (its misses are
    # light-tailed); there the spike and step rules stand aside.
    miss_min: float = 4.0  # 0 turns it off
    miss_tail: float = 4.0
    miss_tail_rate_max: float = 0.003
    # A fast yardstick beside it: the running mean deviation of the last ``miss_fast_window``
    # misses from the local mean miss (so a drift's slow bias does not raise it). The rule
    # judges against the larger of the two, so a switch to louder noise raises the yardstick
    # within tens of readings instead of hundreds. 0 turns it off.
    miss_fast_window: int = 60
    suppress_window: int = 40
    suppress_factor: float = 0.5  # what is left of a score that is not a new local maximum
    # Per-sensor output layer (daemon.head), used with a network engine only.
    head: bool = True
    head_window: int = 3000  # readings: horizon of the head's exponentially weighted statistics
    # Shrinkage toward the shared layer, in readings' worth of evidence; relaxed for sensors
    # predicted to within 0.02 standard deviations (head.SensorHead._ridge).
    head_ridge: float = 3.0
    # Readings between two solves of a sensor's head. 40 instead of 20 halves the solves (6-8%
    # of the daemon's time under SenML load) and scored 66.92 on NAB instead of 65.65.
    head_refit_every: int = 40
    head_clip: float = 3.0  # targets beyond this many typical residuals from the fit are clipped
    head_skip: int = 50  # readings after a reset before the head learns (normaliser settling)


def scorer_fields(settings: ScoringSettings) -> dict[str, Field]:
    """Per-row state the scorer keeps in the slot table."""
    return {
        "count": Field((), np.float64, 0.0),
        "prediction": Field((), np.float64, np.nan),
        "trend_prediction": Field((), np.float64, np.nan),  # previous reading + mean difference
        "model_miss": Field((), np.float64, 0.0),  # running mean |miss| of the model, raw units
        "trend_miss": Field((), np.float64, 0.0),  # ... and of the trend fallback
        "smooth_level": Field((), np.float64, np.nan),  # the smoothed fallback's level ...
        "smooth_slope": Field((), np.float64, 0.0),  # ... and slope per reading, raw units
        "smooth_prediction": Field((), np.float64, np.nan),
        "smooth_miss": Field((), np.float64, 0.0),  # its running mean |miss|, raw units ...
        "smooth_count": Field((), np.float64, 0.0),  # ... over this many misses
        "smooth_since": Field((), np.float32, 0.0),  # readings since its level restarted
        "smooth_out": Field((), np.float32, 0.0),  # sign of its previous miss if clipped, else 0
        "miss_count": Field((), np.float64, 0.0),  # readings both were judged on (see diff_count)
        "diff_mean": Field((), np.float64, 0.0),  # running mean of first differences, raw units
        "diff_var": Field((), np.float64, 0.0),  # ... and their variance
        "diff_count": Field((), np.float64, 0.0),  # first differences learnt (not the row's count:
        # state restored from before these fields existed has a high count and no spread yet)
        "error_typ": Field((), np.float64, 0.0),
        "short_ring": Field((settings.short_window,), np.float32, 0.0),
        "lik_mean": Field((), np.float64, 0.0),
        "lik_var": Field((), np.float64, 0.0),
        "lik_last": Field((), np.float32, 0.0),
        "spike_rel": Field((), np.float32, 0.0),  # the previous reading's miss, in typical errors
        "spike_ref": Field((), np.float64, np.nan),  # where this reading should be without a spike
        "spike_last": Field((), np.float64, np.nan),  # the previous reading
        "spike_flat": Field((), np.float32, 0.0),  # 1: the sensor was flat at the previous reading
        "spike_events": Field((), np.float32, 0.0),  # decayed count of spikes seen
        "spike_seen": Field((), np.float32, 0.0),  # decayed count of readings seen
        "spike_record": Field((), np.float32, 0.0),  # decaying maximum spike size
        "step_age": Field((), np.float32, 0.0),  # readings since a big miss (0: none pending)
        "step_path": Field((), np.float64, 0.0),  # where the signal would be without a step ...
        "step_slope": Field((), np.float64, 0.0),  # ... moving on by the change predicted then
        "step_record": Field((), np.float32, 0.0),  # decaying maximum step size
        "step_unit": Field((), np.float64, 0.0),  # one typical error, signed like the miss
        "step_from": Field((), np.float64, np.nan),  # the reading before the miss
        "step_sum": Field((), np.float64, 0.0),  # deviations from the path since, in step_unit
        "step_events": Field((), np.float32, 0.0),  # decayed count of steps seen
        "step_seen": Field((), np.float32, 0.0),  # decayed count of readings seen
        "jump_level": Field((_JUMP_LEVELS,), np.float64, np.nan),  # levels stepped to or from
        "jump_next": Field((), np.float32, 0.0),  # slot the next level overwrites
        "jump_hold": Field((), np.float32, 0.0),  # readings still judged by the trend after one
        # The yardsticks each known level had when the sensor last left it (NaN: not known),
        # and the slot of the level the sensor is at (-1: none known).
        "jump_yardsticks": Field((_JUMP_LEVELS, len(_LEVEL_YARDSTICKS)), np.float64, np.nan),
        "jump_at": Field((), np.float32, -1.0),
        "jump_since": Field((), np.float32, 0.0),  # readings since the sensor moved to that level
        "opening": Field((_OPENING,), np.float64, np.nan),  # the sensor's first readings
        "never_fell": Field((), np.float32, 1.0),  # 1 while no reading was below the one before (resets aside)
        "step_sizes": Field((len(_STEP_SIZE_EDGES),), np.float32, 0.0),  # step counts by size, decayed ...
        "step_sizes_at": Field((), np.float64, 0.0),  # ... up to this many live readings
        "step_live": Field((), np.float64, 0.0),  # readings the step statistics have counted
        "interval_typ": Field((), np.float64, 0.0),  # running mean interval between readings, s
        "interval_count": Field((), np.float64, 0.0),  # intervals learnt
        "gap_events": Field((), np.float32, 0.0),  # decayed count of silences seen
        "gap_seen": Field((), np.float32, 0.0),  # decayed count of intervals seen
        "repeat_run": Field((), np.float32, 0.0),  # equal readings in a row, after the first
        "repeat_events": Field((), np.float32, 0.0),  # decayed count of readings equal to the previous
        "repeat_seen": Field((), np.float32, 0.0),  # decayed count of readings seen
        "miss_typ": Field((), np.float64, 0.0),  # running mean |miss| of the judged prediction, raw units
        "miss_learnt": Field((), np.float64, 0.0),  # misses it has learnt
        "miss_fast": Field((), np.float64, 0.0),  # ... the fast yardstick: recent |miss - miss_bias|
        "miss_bias": Field((), np.float64, 0.0),  # running mean of recent signed misses, raw units
        "tail_events": Field((), np.float32, 0.0),  # decayed count of excursions of miss_tail sigmas or more
        "tail_seen": Field((), np.float32, 0.0),  # decayed count of misses judged
        "miss_quiet": Field((), np.float32, 0.0),  # readings since a miss of miss_tail sigmas or more
        "value_min": Field((), np.float64, np.inf),
        "value_max": Field((), np.float64, -np.inf),
        "score_ring": Field((max(settings.suppress_window, 1),), np.float32, 0.0),
    }


def erfc(x: np.ndarray) -> np.ndarray:
    """Complementary error function, relative error < 1.2e-7 (Numerical Recipes' erfcc)."""
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277))))))))
    result = t * np.exp(poly)
    return np.where(x >= 0, result, 2.0 - result)


def log_tail_score(mean_score: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """Numenta's log-likelihood: how improbable a short-window mean is under the long-run Gaussian."""
    z = (mean_score - mean) / np.sqrt(var)
    tail = 0.5 * erfc(z / math.sqrt(2.0))
    return np.clip(-np.log(tail + 1e-10) / _LOG_SCALE, 0.0, 1.0)


def squash(settings: ScoringSettings, relative_error: np.ndarray) -> np.ndarray:
    span = settings.squash_high - settings.squash_low
    return np.clip((relative_error - settings.squash_low) / span, 0.0, 1.0)


def _ewma_rate(count: np.ndarray, window: int) -> np.ndarray:
    """Exact mean for the first ``window`` samples, then exponential forgetting."""
    return 1.0 / np.minimum(np.maximum(count, 1.0), window)


def score(settings: ScoringSettings, state: dict[str, np.ndarray], values: np.ndarray,
          std_before: np.ndarray, mean_before: np.ndarray, threshold: float | None = None,
          elapsed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Score one reading per row and update the scorer state in place.

    ``std_before`` and ``mean_before`` are the sensor's running statistics before this reading
    was folded in, so a spike does not widen the yardstick it is measured with. ``elapsed`` is
    the time since each sensor's previous reading (NaN for its first; None: not known, no
    silence rule). Returns (score, anomaly, warmup).
    """
    count = state["count"] + 1.0
    state["count"] = count
    # Both yardsticks as they were before this reading, like std_before.
    spread = np.sqrt(state["diff_var"]) / std_before
    trend_typical = settings.trend_typical * state["trend_miss"] / std_before
    model = state["prediction"]
    state["prediction"], by_trend, trend_better = _judged_prediction(settings, state)
    calibrated_prediction, widening = _calibrated_prediction(settings, state, state["prediction"], trend_better)
    has_prediction = np.isfinite(state["prediction"])
    error = np.where(has_prediction, np.abs(values - state["prediction"]) / std_before, 0.0)
    typical = _typical_error(settings, state, spread, np.where(by_trend, trend_typical, np.inf))
    unit = std_before * typical  # one typical error in raw units
    relative, explained = _known_jump(settings, state, values, unit, error / typical, count)
    # An explained jump is no miss: no statistic below learns it as one.
    error = relative * typical
    _learn_misses(settings, state, values, model, ~explained)
    _learn_differences(settings, state, values, ~explained)
    # A reset of the context (a long gap) leaves no prediction: the level starts afresh too.
    _learn_smooth(settings, state, values, explained | ~has_prediction)
    squashed = np.where(has_prediction, squash(settings, relative), 0.0)
    # Typical error learns after scoring, with outliers capped so a spike cannot hide the next.
    capped = np.minimum(error, settings.squash_high * typical)
    seen = np.maximum(count - 1.0, 1.0)
    state["error_typ"] = np.where(has_prediction, state["error_typ"]
                                  + _ewma_rate(seen, settings.error_window) * (capped - state["error_typ"]),
                                  state["error_typ"])

    likelihood = _repeat_filter(settings, state, _likelihood(settings, state, squashed, count))
    flat = _flat(settings, state, unit)
    spatial = _spatial(settings, state, values, mean_before, relative, flat)
    live = has_prediction & (count > _SPIKE_SKIP)
    silence = _silence(settings, state, elapsed, live)
    # The flatline and step rules read the previous reading's spike fields, which the spike
    # rule then moves on.
    stuck = _stuck(settings, state, values, live)
    step, stepped = _step(settings, state, values, unit, relative, has_prediction, live)
    spike = _spike(settings, state, values, unit, relative, has_prediction, live, flat)
    calibrated, calibrated_judges = _calibrated_miss(settings, state, values, calibrated_prediction, widening,
                                                     std_before, has_prediction, explained, stepped,
                                                     state["prediction"])
    # Where the calibrated rule judges single misses, the spike and step rules (which learn
    # on) stand aside: their rarity and record tests are for sensors with heavy-tailed misses.
    spike, step = (np.where(calibrated_judges, 0.0, rule) for rule in (spike, step))
    # The spike, step, silence, flatline and calibrated miss rules have their own rarity tests,
    # so a recent excursion does not suppress them.
    kept = np.maximum(_local_maximum(settings, state, np.maximum(likelihood, spatial)),
                      np.maximum(np.maximum(np.maximum(spike, step), np.maximum(silence, stuck)), calibrated))

    warmup = count <= settings.warmup
    final = np.where(warmup, NEUTRAL_SCORE, kept)
    limit = settings.threshold if threshold is None else threshold
    return final, (~warmup) & (final >= limit), warmup


_JUMP_LEVELS = 4  # levels a sensor remembers stepping to or from
_MERGE_FRACTION = 0.5  # of jump_tolerance: a level this close to a known one is that one
# What a sensor's noise sets, kept per known level: each regime a sensor returns to has its own
# noise. Each is kept only from a stay long enough to learn it, and a shorter stay leaves it
# unknown (what the level kept from an earlier stay may no longer hold; keeping that instead
# cost 0.25 NAB points): the typical error after ``error_window`` readings (keeping it after
# any stay cost 1.6 NAB points: it still held the level before, or a reset's settling
# readings), the calibrated rule's after ``_MISSES_LEARNT``.
_LEVEL_YARDSTICKS = ("error_typ", "miss_typ", "miss_fast")
# First differences learnt before their spread is trusted as a yardstick.
_SPREAD_SKIP = 50
# Lowest typical error, in standard deviations: keeps a perfectly constant signal finite.
_TYPICAL_MIN = 1e-6


def _judged_prediction(settings: ScoringSettings,
                       state: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The prediction this reading is judged against, where it is the trend fallback's, and
    where that is on merit: the fallback judges when it has missed less than the model (with
    ``trend_margin`` in the model's favour), and for ``jump_hold`` readings after a known
    jump."""
    model, trend = state["prediction"], state["trend_prediction"]
    held = state["jump_hold"] > 0
    state["jump_hold"] = np.where(held, state["jump_hold"] - 1.0, 0.0)
    better = np.isfinite(model) & (state["miss_count"] > _SPIKE_SKIP) \
        & (state["trend_miss"] < settings.trend_margin * state["model_miss"])
    use_trend = np.isfinite(trend) & (better | held)
    return np.where(use_trend, trend, model), use_trend, better


def _calibrated_prediction(settings: ScoringSettings, state: dict[str, np.ndarray], judged: np.ndarray,
                           trend_better: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the calibrated miss rule judges a reading against, and how much more uncertain that
    is than usual: the smoothed fallback's prediction where it has missed less than
    ``smooth_margin`` of the ``judged`` prediction (the trend fallback's where it is
    ``trend_better`` than the model, else the model's), the judged prediction elsewhere.
    Right after the smoothed level restarts it is the mean of the few readings since, whose
    own noise widens the miss."""
    if not _smoothed(settings):
        return judged, np.ones(len(judged))
    smooth = state["smooth_prediction"]
    judged_miss = np.where(trend_better, state["trend_miss"], state["model_miss"])
    # A prediction that keeps missing one way is seeing a change (a drift), not noise: no
    # switch while the rule's recent misses lean one way by a sigma estimate or more (of the
    # fast yardstick, which measures the misses around their local mean: the slow one would
    # include the lean itself).
    noise = state["miss_fast"] if settings.miss_fast_window > 0 else state["miss_typ"]
    unbiased = np.abs(state["miss_bias"]) * _MEAN_ABS_PER_SIGMA < noise
    use = np.isfinite(smooth) & (state["smooth_count"] > _MISSES_UNCAPPED) & unbiased \
        & (state["smooth_miss"] < settings.smooth_margin * judged_miss)
    gain = settings.smooth_level_gain
    averaged = state["smooth_since"] + 1.0
    widening = np.sqrt(np.maximum((1.0 + 1.0 / averaged) / (1.0 + gain / (2.0 - gain)), 1.0))
    return np.where(use, smooth, judged), np.where(use, widening, 1.0)


def _learn_misses(settings: ScoringSettings, state: dict[str, np.ndarray], values: np.ndarray,
                  model: np.ndarray, learn: np.ndarray) -> None:
    """Both running misses (the ``model``'s and the trend fallback's) learn this reading where
    ``learn``."""
    trend = state["trend_prediction"]
    both = learn & np.isfinite(model) & np.isfinite(trend)
    state["miss_count"] = state["miss_count"] + both
    rate = _ewma_rate(state["miss_count"], settings.trend_window)
    for name, prediction in (("model_miss", model), ("trend_miss", trend)):
        state[name] = np.where(both, state[name] + rate * (np.abs(values - prediction) - state[name]), state[name])


def _smoothed(settings: ScoringSettings) -> bool:
    """Whether the calibrated rule may judge against the smoothed level (and so it is learnt)."""
    return settings.smooth_level_gain > 0 and settings.smooth_margin > 0 and settings.miss_min > 0


def _learn_smooth(settings: ScoringSettings, state: dict[str, np.ndarray], values: np.ndarray,
                  restart: np.ndarray) -> None:
    """Move the smoothed fallback on by this reading and make its prediction for the next.

    Holt's linear method: the level moves ``smooth_level_gain`` of the way to the reading (the
    mean of the readings since a restart, while that gain is smaller), the slope by
    ``smooth_slope_gain`` of that. Misses are clipped at ``_miss_bound`` sigma estimates, so a
    spike barely moves it; two clipped misses of one sign in a row (a new level) or a known
    jump (``restart``) start the level afresh at the reading, keeping the slope (a sawtooth's
    ramp after its drop). Its running miss learns after the settling readings."""
    if not _smoothed(settings):
        return
    level, slope = state["smooth_level"], state["smooth_slope"]
    prediction = level + slope
    miss = values - np.where(np.isfinite(prediction), prediction, values)
    typical = state["smooth_miss"]
    bound = _miss_bound(state["smooth_count"], typical / _MEAN_ABS_PER_SIGMA)
    learnt = np.isfinite(prediction) & ~restart & (state["count"] > _SPIKE_SKIP)
    state["smooth_count"] = state["smooth_count"] + learnt
    rate = _ewma_rate(state["smooth_count"], settings.trend_window)
    state["smooth_miss"] = np.where(learnt, typical + rate * (np.minimum(np.abs(miss), bound) - typical), typical)
    out = np.where(miss > bound, 1.0, np.where(miss < -bound, -1.0, 0.0))
    fresh = restart | ~np.isfinite(level) | ((out != 0) & (out == state["smooth_out"]))
    state["smooth_out"] = np.where(fresh, 0.0, out)
    since = np.where(fresh, 0.0, state["smooth_since"] + 1.0)
    state["smooth_since"] = since
    gain = np.maximum(settings.smooth_level_gain, 1.0 / (since + 1.0))
    miss = np.clip(miss, -bound, bound)
    state["smooth_level"] = np.where(fresh, values, prediction + gain * miss)
    # A clipped miss may be the first reading of a new level: it does not bend the slope.
    slope_miss = np.where(out == 0, miss, 0.0)
    state["smooth_slope"] = np.where(fresh, slope, slope + settings.smooth_level_gain * settings.smooth_slope_gain
                                     * slope_miss)
    state["smooth_prediction"] = state["smooth_level"] + state["smooth_slope"]


def _learn_differences(settings: ScoringSettings, state: dict[str, np.ndarray], values: np.ndarray,
                       learn: np.ndarray) -> None:
    """Fold this reading's first difference into their running mean and variance where
    ``learn``, and make the trend fallback's prediction for the next reading."""
    previous = state["spike_last"]  # the previous reading (NaN after a reset)
    has_previous = learn & np.isfinite(previous)
    state["diff_count"] = state["diff_count"] + has_previous
    rate = _ewma_rate(state["diff_count"], settings.trend_window)
    mean, var = running_mean_var(state["diff_mean"], state["diff_var"], np.where(has_previous, values - previous, 0.0),
                                 rate)
    state["diff_mean"] = np.where(has_previous, mean, state["diff_mean"])
    state["diff_var"] = np.where(has_previous, var, state["diff_var"])
    state["trend_prediction"] = values + state["diff_mean"]


def _known_jump(settings: ScoringSettings, state: dict[str, np.ndarray], values: np.ndarray,
                unit: np.ndarray, relative: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Judge a big miss against a level the sensor knows, if it landed near one away from the
    prediction (see ``jump_min``): returns the miss in typical errors and where it was so
    explained. ``unit`` is one typical error in raw units.

    The reading the sensor sits at when its spike statistics start (``_SPIKE_SKIP``), if
    ordinary, is its first known level: the level it left in its first jump is often the one it
    returns to."""
    if settings.jump_tolerance <= 0:
        return relative, np.zeros(len(relative), bool)
    state["jump_since"] = state["jump_since"] + 1.0
    _keep_opening(state, values, count)
    # An ordinary reading only: a spike there must not become a level that explains itself.
    first = (count == _SPIKE_SKIP + 1) & (relative < settings.jump_min)
    _remember_opening(settings, state, values, first, unit)
    _move_to_level(settings, state, *_remember_levels(settings, state, values, first, unit))
    judged, explained = relative.copy(), np.zeros(len(values), bool)
    rows = np.flatnonzero(relative >= settings.jump_min)  # few: only these can be jumps
    if len(rows):
        _land_on_known_levels(settings, state, values, unit, rows, judged, explained)
    # A counter's reset is a jump to 0, which is no known level until it has happened; then it
    # is one (and a sensor that keeps landing there, a sawtooth, is no counter).
    reset = _counter_reset(settings, state, values, unit, explained)
    _move_to_level(settings, state, *_remember_levels(settings, state, values, reset, unit))
    state["jump_hold"][reset] = float(settings.jump_hold)
    judged[reset] = 0.0
    return judged, explained | reset


def _land_on_known_levels(settings: ScoringSettings, state: dict[str, np.ndarray], values: np.ndarray,
                          unit: np.ndarray, rows: np.ndarray, judged: np.ndarray, explained: np.ndarray) -> None:
    """For the big misses ``rows``: mark in ``explained`` those that landed near a known level
    away from the prediction, and put their distance to it (typical errors) in ``judged``."""
    away = np.abs(state["prediction"][rows, None] - state["jump_level"][rows]) >= settings.jump_min * unit[rows, None]
    # A ramp lands anywhere within one reading's rise of the level it restarts from (a
    # sawtooth's foot, by the phase of the sampling): the smoothed slope says how far, where
    # it is steady (twice the smoothed level's sigma estimate or more per reading).
    slope = state["smooth_slope"][rows] if _smoothed(settings) else np.zeros(len(rows))
    steady = np.abs(slope) >= _STEADY_SLOPE * state["smooth_miss"][rows] / _MEAN_ABS_PER_SIGMA
    slope = np.where(steady & np.isfinite(slope), slope, 0.0)
    rise = np.stack([np.minimum(slope, 0.0), np.maximum(slope, 0.0)], axis=1)
    nearest, miss = _nearest_level(state, rows, values, unit, away, rise)
    near = miss <= settings.jump_tolerance
    hit, slot = rows[near], nearest[near]
    level = state["jump_level"][hit, slot]
    landing = values.copy()
    landing[hit] = values[hit] - np.clip(values[hit] - level, rise[near, 0], rise[near, 1])
    _refine_levels(settings, state, hit, slot, landing)
    state["jump_hold"][hit] = float(settings.jump_hold)
    _move_to_level(settings, state, hit, slot)
    explained[hit] = True
    judged[hit] = np.minimum(miss[near], judged[hit])


def _counter_reset(settings: ScoringSettings, state: dict[str, np.ndarray], values: np.ndarray, unit: np.ndarray,
                   known: np.ndarray) -> np.ndarray:
    """Where a counter reset: a sensor that has only ever risen (``never_fell``) drops from its
    previous reading by a jump (``jump_min`` typical errors or more; after a long silence there
    is no prediction to miss) to within a few increments of 0, as a packet or energy counter
    does when its device restarts. Like Prometheus' ``rate()``, the scorer takes that for a
    reset, not a change of what is counted. A small fall (under ``spike_min`` typical errors:
    noise) ends ``never_fell``, and so does a landing on a ``known`` level (a sawtooth's drop);
    a big one (a spike, a level shift) is an anomaly of the counter, not the end of it."""
    previous = state["spike_last"]  # NaN after a reset of the context
    drop = np.where(np.isfinite(previous), previous - values, 0.0)
    fell = drop > 0.0
    increment = np.maximum(state["diff_mean"], 0.0)
    near_zero = (values >= 0.0) & (values <= 2.0 * increment + settings.jump_tolerance * unit)
    reset = fell & ~known & (state["never_fell"] > 0) & (state["diff_mean"] > 0) & near_zero \
        & (drop >= settings.jump_min * unit)
    ends = fell & ((drop < settings.spike_min * unit) | known)
    state["never_fell"] = np.where(ends & ~reset, 0.0, state["never_fell"]).astype(np.float32)
    return reset


# Smoothed slope, in the smoothed level's sigma estimates per reading, that counts as a ramp.
_STEADY_SLOPE = 2.0
# The sensor's first readings, kept until the known levels start (see ``_remember_opening``).
_OPENING = 10
# Median absolute deviation per sigma, of a Gaussian and of the difference of two of them.
_MAD_PER_SIGMA, _MAD_DIFF_PER_SIGMA = 0.6745, 0.9539


def _keep_opening(state: dict[str, np.ndarray], values: np.ndarray, count: np.ndarray) -> None:
    """Keep this reading if it is one of the sensor's first ``_OPENING`` (``count`` counts it)."""
    early = np.flatnonzero(count <= _OPENING)
    state["opening"][early, count[early].astype(np.int64) - 1] = values[early]


def _remember_opening(settings: ScoringSettings, state: dict[str, np.ndarray], values: np.ndarray,
                      first: np.ndarray, unit: np.ndarray) -> None:
    """Where the known levels start (``first``), also remember the level the sensor opened on,
    if its first ``_OPENING`` readings were flat (their spread no wider than twice their noise,
    both by medians, so one odd reading does not count) and the sensor has left it by
    more than ``jump_min`` noise sigmas. Without it, a sensor that switched regimes before then
    took its first return to where it started for a level shift: 13-23 false alarms per seed
    of the default scenario came from such returns, and duty cycles that opened on a flat
    raised a few more at their first edges back to it."""
    rows = np.flatnonzero(first & np.isfinite(state["opening"]).all(axis=1))
    if not len(rows):
        return
    opening = state["opening"][rows]
    level = np.median(opening, axis=1)
    spread = np.median(np.abs(opening - level[:, None]), axis=1) / _MAD_PER_SIGMA
    noise = np.median(np.abs(np.diff(opening, axis=1)), axis=1) / _MAD_DIFF_PER_SIGMA
    # Noise 0 (readings repeated, a placeholder at boot) gives no scale to judge a level by.
    left = (noise > 0) & (spread <= 2.0 * noise) & (np.abs(values[rows] - level) > settings.jump_min * noise)
    where = np.zeros(len(values), bool)
    where[rows[left]] = True
    levels = np.full(len(values), np.nan)
    levels[rows] = level
    _remember_levels(settings, state, levels, where, unit)


def _remember_levels(settings: ScoringSettings, state: dict[str, np.ndarray], levels: np.ndarray,
                     where: np.ndarray, unit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remember ``levels`` for the rows ``where``. A level within ``_MERGE_FRACTION`` of
    ``jump_tolerance`` typical errors (``unit``, raw units) of a known one refines that one, as
    a landing on it does; any other takes the next slot, the oldest level going first.

    Without the merge, a sensor whose predictor keeps missing near one level filled every slot
    with copies of it and forgot its other levels: the model anticipates a sawtooth's drop a
    few readings early, each such miss near the top became a step, and the foot, evicted,
    made the next drop look like a level shift. Merging within the full tolerance cost 2 NAB
    points (distinct levels a few typical errors apart were fused)."""
    if not where.any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    rows = np.flatnonzero(where & np.isfinite(levels))
    nearest, distance = _nearest_level(state, rows, levels, unit)
    near = distance <= _MERGE_FRACTION * settings.jump_tolerance
    merged, slot = rows[near], nearest[near]
    _refine_levels(settings, state, merged, slot, levels)
    fresh = rows[~near]
    fresh_slot = state["jump_next"][fresh].astype(np.int64) % _JUMP_LEVELS
    state["jump_level"][fresh, fresh_slot] = levels[fresh]
    state["jump_yardsticks"][fresh, fresh_slot] = np.nan
    state["jump_at"][fresh] = np.where(state["jump_at"][fresh] == fresh_slot, -1.0, state["jump_at"][fresh])
    state["jump_next"][fresh] = fresh_slot + 1
    return np.concatenate([merged, fresh]), np.concatenate([slot, fresh_slot])


def _nearest_level(state: dict[str, np.ndarray], rows: np.ndarray, values: np.ndarray, unit: np.ndarray,
                   usable: np.ndarray | None = None, rise: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``rows``, the slot of the known level nearest to its value among the
    ``usable`` slots (all by default), and that distance in typical errors (``unit``, raw
    units); inf where no usable slot holds a level. With ``rise`` ([rows, 2], raw units, low
    <= 0 <= high), each level reaches from level + low to level + high."""
    offset = values[rows, None] - state["jump_level"][rows]
    if rise is not None:
        offset = offset - np.clip(offset, rise[:, :1], rise[:, 1:])
    distance = np.abs(offset) / unit[rows, None]
    usable = ~np.isnan(distance) if usable is None else usable & ~np.isnan(distance)
    distance = np.where(usable, distance, np.inf)
    nearest = np.argmin(distance, axis=1)
    return nearest, distance[np.arange(len(rows)), nearest]


def _refine_levels(settings: ScoringSettings, state: dict[str, np.ndarray], rows: np.ndarray, slots: np.ndarray,
                   values: np.ndarray) -> None:
    """Move the known levels ``slots`` of ``rows`` ``jump_refine`` of the way to their values."""
    state["jump_level"][rows, slots] += settings.jump_refine * (values[rows] - state["jump_level"][rows, slots])


def _move_to_level(settings: ScoringSettings, state: dict[str, np.ndarray], rows: np.ndarray,
                   slots: np.ndarray) -> None:
    """The sensors ``rows`` are now at their known levels ``slots``. Where that is another level
    than before, the level left keeps the noise yardsticks (``_LEVEL_YARDSTICKS``) learnt there,
    and those the new level kept when the sensor last left it come back: a regime whose noise
    is twice the last one's is judged by its own, not by the last one's until the yardsticks
    catch up (hundreds of readings for the typical error). Two limits: while the trend
    fallback judges after a jump (``jump_hold``), the typical error stays capped at
    ``trend_typical`` of the fallback's running miss, which still remembers the level left;
    after a confirmed step the calibrated rule learns afresh (its ``restart``), so there only
    the typical error comes back."""
    if not len(rows) or settings.jump_tolerance <= 0:
        return
    at = state["jump_at"][rows].astype(np.int64)
    moved = slots != at
    rows, slots, at = rows[moved], slots[moved], at[moved]
    current = np.stack([state[name][rows] for name in _LEVEL_YARDSTICKS], axis=1)
    # Only what the sensor stayed long enough to learn: a frequency anomaly flaps between the
    # levels every few readings, and yardsticks kept then hid the next anomaly at that level.
    needed = np.array([settings.error_window if name == "error_typ" else _MISSES_LEARNT for name in _LEVEL_YARDSTICKS])
    learnt = state["jump_since"][rows, None] >= needed
    leaving = at >= 0
    state["jump_yardsticks"][rows[leaving], at[leaving]] = np.where(learnt, current, np.nan)[leaving]
    stored = state["jump_yardsticks"][rows, slots]
    for k, name in enumerate(_LEVEL_YARDSTICKS):
        known = np.isfinite(stored[:, k])
        state[name][rows[known]] = stored[known, k]
    state["jump_at"][rows] = slots
    state["jump_since"][rows] = 0.0


def _typical_error(settings: ScoringSettings, state: dict[str, np.ndarray], spread: np.ndarray,
                   trend_ceiling: np.ndarray) -> np.ndarray:
    """The sensor's typical error in standard deviations: its running mean miss, capped at
    ``typical_spread_cap`` spreads of the first differences and at ``trend_ceiling`` (the
    caps also hold the running mean down), and floored at ``error_floor`` or ``floor_spread``
    spreads, whichever is lower; the spread is not used until ``_SPREAD_SKIP`` differences
    have been learnt."""
    settled = state["diff_count"] >= _SPREAD_SKIP
    ceiling = np.minimum(np.where(settled, settings.typical_spread_cap * spread, np.inf), trend_ceiling)
    state["error_typ"] = np.minimum(state["error_typ"], ceiling)
    floor = np.minimum(settings.error_floor, np.maximum(settings.floor_spread * spread, _TYPICAL_MIN))
    return np.maximum(state["error_typ"], np.where(settled, floor, settings.error_floor))


def _likelihood(settings: ScoringSettings, state: dict[str, np.ndarray], squashed: np.ndarray,
                count: np.ndarray) -> np.ndarray:
    ring = state["short_ring"]
    slot = ((count - 1.0) % settings.short_window).astype(np.int64)
    ring[np.arange(len(ring)), slot] = squashed
    short_mean = ring.sum(axis=1) / np.minimum(count, settings.short_window)
    mean = np.maximum(state["lik_mean"], settings.likelihood_mean_floor)
    var = np.maximum(state["lik_var"], _variance_floor(settings, count))
    result = log_tail_score(short_mean, mean, var)
    rate = _ewma_rate(count, settings.likelihood_window)
    state["lik_mean"], state["lik_var"] = running_mean_var(state["lik_mean"], state["lik_var"], short_mean, rate)
    return result


def _variance_floor(settings: ScoringSettings, count: np.ndarray) -> np.ndarray:
    """The likelihood's variance floor: ``likelihood_var_floor`` while the Gaussian's window
    fills and the settling errors after a full reset (a new sensor, the reset command, a
    non-finite reading) still widen it, ``likelihood_settled_var_floor`` once it has filled
    and they start to age out. A reset of the context only (a gap, another model) keeps the
    count, and with it the settled floor."""
    return np.where(count > settings.likelihood_window, settings.likelihood_settled_var_floor,
                    settings.likelihood_var_floor)


def _repeat_filter(settings: ScoringSettings, state: dict[str, np.ndarray], likelihood: np.ndarray) -> np.ndarray:
    """Only the first reading of a run in the red zone keeps its likelihood (HTM's filter)."""
    level = settings.repeat_level
    repeated = (likelihood >= level) & (state["lik_last"] >= level)
    state["lik_last"] = likelihood.astype(np.float32)
    return np.where(repeated, np.minimum(likelihood, settings.repeat_score), likelihood)


def _flat(settings: ScoringSettings, state: dict[str, np.ndarray], unit: np.ndarray) -> np.ndarray:
    """Sensors whose whole running range, before this reading, spans fewer than
    ``spatial_noise_range`` typical errors (``unit`` in raw units): their range is their noise
    band, and their biggest misses are records of the noise."""
    return (state["value_max"] - state["value_min"]) < settings.spatial_noise_range * unit  # inf - inf: False


def _spatial(settings: ScoringSettings, state: dict[str, np.ndarray], values: np.ndarray,
             mean: np.ndarray, relative: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """HTM's spatial rule with a prediction test (see 5 in the module doc); a ``flat`` sensor's
    new extreme must miss by ``spatial_noise_error``."""
    known = np.isfinite(state["value_min"])  # False until the first reading
    low = np.where(known, state["value_min"], values)
    high = np.where(known, state["value_max"], values)
    margin = settings.spatial_margin * (high - low)
    needed = np.where(flat, settings.spatial_noise_error, settings.spatial_min_error)
    outside = known & ((values > high + margin) | (values < low - margin)) & (relative >= needed)
    decay = settings.spatial_decay
    state["value_min"] = np.minimum(low + decay * (mean - low), values)
    state["value_max"] = np.maximum(high + decay * (mean - high), values)
    return outside.astype(np.float64)


# The spike rate starts as if 0.2 spikes had been seen in 20 readings (1%), so a sensor must show
# a few hundred quiet readings before its spikes can count as rare.
_SPIKE_PRIOR_READINGS, _SPIKE_PRIOR_RATE = 20.0, 0.01
_SPIKE_SKIP = 100  # readings after a reset whose errors the spike statistics ignore (settling)


def _rate(events: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """A decayed event rate with the spike rule's prior (1% over 20 readings)."""
    return (events + _SPIKE_PRIOR_READINGS * _SPIKE_PRIOR_RATE) / (seen + _SPIKE_PRIOR_READINGS)


def _count_events(settings: ScoringSettings, state: dict[str, np.ndarray], prefix: str, is_event: np.ndarray,
                  where: np.ndarray) -> None:
    """Fold one reading into the decayed ``<prefix>_events`` / ``_seen`` counts where ``where``."""
    forget = 1.0 - 1.0 / settings.spike_rate_window
    events, seen = state[f"{prefix}_events"], state[f"{prefix}_seen"]
    state[f"{prefix}_events"] = np.where(where, forget * events + is_event, events)
    state[f"{prefix}_seen"] = np.where(where, forget * seen + 1.0, seen)


def _rare_record(settings: ScoringSettings, state: dict[str, np.ndarray], prefix: str, size: np.ndarray,
                 is_event: np.ndarray, live: np.ndarray, rate_max: float, by_size: bool = False,
                 bypass: float = np.inf) -> np.ndarray:
    """Which events fire: rare for the sensor (decayed rate, with the prior above, below
    ``rate_max``) and beating its decaying record of event sizes by ``spike_record_margin``,
    unless at least ``bypass``. With ``by_size`` the rate counts only earlier events of at
    least about this one's size (``<prefix>_sizes``). Then counts this reading in the rates and
    ``_record`` where ``live``."""
    record = state[f"{prefix}_record"]
    forget = 1.0 - 1.0 / settings.spike_rate_window
    earlier = _events_as_big(state, prefix, size, is_event, forget, live) if by_size else state[f"{prefix}_events"]
    beats = (size > record * (1.0 + settings.spike_record_margin)) | (size >= bypass)
    fired = is_event & (_rate(earlier, state[f"{prefix}_seen"]) < rate_max) & beats
    _count_events(settings, state, prefix, is_event, live)
    state[f"{prefix}_record"] = np.where(live, np.maximum(record * (1.0 - settings.spike_record_decay), size), record)
    return fired


# Lower edges of the size classes (typical errors) of a sensor's step counts, and how big an
# earlier step must be, as a fraction of a new one, to make the new one ordinary.
_STEP_SIZE_EDGES = np.array([4.0, 5.0, 6.0, 7.0, 8.5, 10.0, 12.5, 15.0, 20.0, 30.0, 50.0])
_AS_BIG = 0.8


def _events_as_big(state: dict[str, np.ndarray], prefix: str, size: np.ndarray, is_event: np.ndarray,
                   forget: float, live: np.ndarray) -> np.ndarray:
    """Decayed count of the sensor's earlier events of at least ``_AS_BIG`` of ``size`` (by
    class), where ``is_event``; then adds those events to their class.

    A random walk's own innovations make steps of 4-5 typical errors every few thousand
    readings; counting them all made every level shift on it ordinary. The counts decay like
    the rate's (``forget`` per live reading), applied only when a row has an event: events are
    rare, and ageing every row's classes on every reading cost more than the rest of the rule."""
    live_count = state[f"{prefix}_live"] + live
    state[f"{prefix}_live"] = live_count
    earlier = np.zeros(len(size))
    if is_event.any():
        rows = np.flatnonzero(is_event)
        at = state[f"{prefix}_sizes_at"]
        counts = state[f"{prefix}_sizes"][rows] * forget ** (live_count[rows] - 1.0 - at[rows])[:, None]
        first = np.searchsorted(_STEP_SIZE_EDGES, _AS_BIG * size[rows], side="right") - 1
        earlier[rows] = np.where(np.arange(len(_STEP_SIZE_EDGES)) >= first[:, None], counts, 0.0).sum(axis=1)
        counts *= forget
        counts[np.arange(len(rows)), np.maximum(np.searchsorted(_STEP_SIZE_EDGES, size[rows], side="right") - 1, 0)] += 1.0
        state[f"{prefix}_sizes"][rows] = counts
        at[rows] = live_count[rows]
    return earlier


def _spike(settings: ScoringSettings, state: dict[str, np.ndarray], values: np.ndarray,
           unit: np.ndarray, relative: np.ndarray, has_prediction: np.ndarray,
           live: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """Judge the previous reading: was it an isolated spike, bigger and rarer than usual?

    ``unit`` is one typical error in raw units, ``relative`` this reading's miss in typical
    errors, ``flat`` where the sensor's range is its noise band (before this reading).
    """
    returned = np.abs(values - state["spike_ref"]) <= settings.spike_return * unit
    size = np.where(has_prediction & returned, state["spike_rel"], 0.0)  # NaN ref: not returned
    smallest = np.where(state["spike_flat"] > 0, settings.spike_flat_min, settings.spike_min)
    bypass = settings.spike_record_bypass if settings.spike_record_bypass > 0 else np.inf
    fired = _rare_record(settings, state, "spike", size, size >= smallest, live, settings.spike_rate_max,
                         bypass=bypass)
    state["spike_rel"] = np.where(has_prediction, relative, 0.0)
    state["spike_flat"] = flat.astype(np.float32)
    # Where the next reading should be if this one is a spike: this reading's prediction moved
    # on by the change the predictor expected (so a spike on a slope still "returns").
    expected = state["prediction"]
    step = np.where(np.isfinite(state["spike_last"]), expected - state["spike_last"], 0.0)
    state["spike_ref"] = np.where(has_prediction, expected + step, values)
    state["spike_last"] = values.astype(np.float64)
    return np.where(fired, settings.spike_score, 0.0)


def _step(settings: ScoringSettings, state: dict[str, np.ndarray], values: np.ndarray,
          unit: np.ndarray, relative: np.ndarray, has_prediction: np.ndarray,
          live: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Judge a big miss by the readings after it: a level shift stays off the path the signal
    was on (the prediction made before the miss, moved on by the change predicted then),
    a spike returns to it and noise scatters around it.

    A step is confirmed when each of the ``step_readings`` readings after the miss stays at
    least half of ``step_min`` typical errors off the path, on the miss's side, and their mean
    at least ``step_min``; it scores ``step_score`` if steps are rare for the sensor and it beats
    the sensor's decaying record (like a spike). ``unit`` is one typical error in raw units,
    ``relative`` this reading's miss in typical errors. Returns the score and where a step of
    at least ``jump_min`` was confirmed.
    """
    size, running = _step_progress(settings, state, values, has_prediction)
    # A big step teaches the sensor both ends as known levels.
    stepped = size >= max(settings.step_min, settings.jump_min)
    # The level the step left is the one the sensor was at, whichever slot it was known by.
    left, left_slot = _remember_levels(settings, state, state["step_from"], stepped, unit)
    state["jump_at"][left] = left_slot
    _move_to_level(settings, state, *_remember_levels(settings, state, values, stepped, unit))
    # The record keeps a change the predictor does not follow (it keeps missing) to one step.
    fired = _rare_record(settings, state, "step", size, size >= settings.step_min, live, settings.step_rate_max,
                         by_size=True)
    _step_start(settings, state, values, unit, relative, live & ~running)
    return np.where(fired, settings.step_score, 0.0), stepped


def _step_progress(settings: ScoringSettings, state: dict[str, np.ndarray], values: np.ndarray,
                   has_prediction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Follow the running tests one reading on: the mean deviation from the path (in typical
    errors, 0 until a test completes) and which tests go on."""
    pending = state["step_age"] > 0
    deviation = np.where(pending, (values - state["step_path"]) / np.where(pending, state["step_unit"], 1.0), 0.0)
    held = pending & has_prediction & (deviation >= 0.5 * settings.step_min)
    age = np.where(held, state["step_age"] + 1.0, 0.0)
    total = np.where(held, state["step_sum"] + deviation, 0.0)
    done = held & (age > settings.step_readings)
    running = held & ~done
    state["step_age"] = np.where(running, age, 0.0)
    state["step_sum"] = np.where(running, total, 0.0)
    state["step_path"] = state["step_path"] + state["step_slope"]
    return np.where(done, total / settings.step_readings, 0.0), running


def _step_start(settings: ScoringSettings, state: dict[str, np.ndarray], values: np.ndarray,
                unit: np.ndarray, relative: np.ndarray, free: np.ndarray) -> None:
    """Start a test on a big miss that follows a smaller one, where none is running (``free``).

    The path moves on by the change the predictor expected from the previous reading if that
    reading was ordinary (within half of ``step_min``); during an excursion that change is
    whatever return the predictor expects, so the path stays put.
    """
    start = free & (relative >= settings.step_min) & (state["spike_rel"] < settings.step_min)
    expected = state["prediction"]
    ordinary = np.isfinite(state["spike_last"]) & (state["spike_rel"] < 0.5 * settings.step_min)
    slope = np.where(ordinary, expected - state["spike_last"], 0.0)
    state["step_slope"] = np.where(start, slope, state["step_slope"])
    state["step_path"] = np.where(start, expected + slope, state["step_path"])
    state["step_unit"] = np.where(start, np.where(values >= expected, unit, -unit), state["step_unit"])
    state["step_age"] = np.where(start, 1.0, state["step_age"])
    state["step_sum"] = np.where(start, 0.0, state["step_sum"])
    state["step_from"] = np.where(start, state["spike_last"], state["step_from"])


# Intervals learnt before a silence can be judged, and the repeat rate (equal readings per
# reading) at or above which a sensor's flat runs are its normal (quantised or slow sensors).
_INTERVALS_LEARNT = 20
_REPEAT_RATE_MAX = 0.01


def _silence(settings: ScoringSettings, state: dict[str, np.ndarray], elapsed: np.ndarray | None,
             live: np.ndarray) -> np.ndarray:
    """A reading after a silence (a dropout, a link down): at least ``gap_factor`` typical
    intervals since the previous one, on a sensor whose silences are rare. The typical interval
    is a running mean of intervals, each capped at ``gap_factor`` typical ones."""
    if elapsed is None or settings.gap_factor <= 0:
        return np.zeros(len(live))
    known = np.isfinite(elapsed)
    typical = state["interval_typ"]
    settled = known & (state["interval_count"] >= _INTERVALS_LEARNT)
    silent = settled & (elapsed >= settings.gap_factor * typical)
    fired = silent & live & (_rate(state["gap_events"], state["gap_seen"]) < settings.spike_rate_max)
    _count_events(settings, state, "gap", silent, known & live)
    state["interval_count"] = state["interval_count"] + known
    learnt = np.where(settled, np.minimum(elapsed, settings.gap_factor * typical), elapsed)
    rate = _ewma_rate(state["interval_count"], settings.error_window)
    state["interval_typ"] = np.where(known, typical + rate * (np.where(known, learnt, 0.0) - typical), typical)
    return np.where(fired, settings.spike_score, 0.0)


def _stuck(settings: ScoringSettings, state: dict[str, np.ndarray], values: np.ndarray,
           live: np.ndarray) -> np.ndarray:
    """A flatline: the ``stuck_readings``-th exactly equal reading in a row, on a sensor that
    repeats its previous reading less than ``_REPEAT_RATE_MAX`` of the time. Reads the previous
    reading from the spike rule's state, so it runs before that rule moves on."""
    if settings.stuck_readings <= 0:
        return np.zeros(len(values))
    same = values == state["spike_last"]  # False after a reset (NaN)
    run = np.where(same, state["repeat_run"] + 1.0, 0.0)
    state["repeat_run"] = run
    # The repeat rate must have been learnt (not the prior alone): state restored from before
    # these fields existed has a high count and no repeat statistics yet.
    learnt = state["repeat_seen"] >= _SPIKE_SKIP
    fired = live & learnt & (run == settings.stuck_readings - 1) \
        & (_rate(state["repeat_events"] - run + 1.0, state["repeat_seen"]) < _REPEAT_RATE_MAX)
    _count_events(settings, state, "repeat", same, live)
    return np.where(fired, settings.spike_score, 0.0)


# Misses the calibrated rule learns before it judges, and a Gaussian's mean absolute deviation
# in standard deviations (sqrt(2 / pi)): the running mean miss over it estimates the sigma.
_MISSES_LEARNT = 100
_MEAN_ABS_PER_SIGMA = 0.8
# After this many misses, each is learnt capped at _MISS_CAP running means.
_MISSES_UNCAPPED, _MISS_CAP = 20, 4.0
# Judged readings without a big miss that end an excursion.
_EXCURSION_GAP = 10
# Of ``miss_min``: a reading the other rules' prediction came this close to is no miss for the
# calibrated rule, whatever the smoothed level says. At 0.5, spike and level-shift recall on the
# default scenario are as without it: a 6-sigma event misses any prediction by more.
_EXPECTED_FRACTION = 0.5
# Misses over which the fast yardstick's local mean miss is taken: short, so that a drift's ramp
# lags it by little and does not pass for louder noise (at 60 readings, with a perfect predictor,
# drift recall fell from 0.875 to 0.721; at 20 it stays at 0.875).
_BIAS_WINDOW = 20


def _calibrated_miss(settings: ScoringSettings, state: dict[str, np.ndarray], values: np.ndarray,
                     prediction: np.ndarray, widening: np.ndarray, std: np.ndarray, has_prediction: np.ndarray,
                     explained: np.ndarray, restart: np.ndarray, expected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A miss of at least ``miss_min`` sigma estimates, on a sensor whose misses are light-tailed
    (excursions of ``miss_tail`` sigma estimates or more start less than ``miss_tail_rate_max``
    times per reading): scored on the reading itself if it starts an excursion (none of the
    ``_EXCURSION_GAP`` readings before it missed by ``miss_tail``). Returns the score and
    where the rule judges (settled and light-tailed).

    ``prediction`` is what the rule judges against (``_calibrated_prediction``), ``widening`` how
    much more uncertain it is than usual, ``expected`` the prediction the other rules judge
    against: where the two differ (the smoothed level judges), a reading that ``expected`` came
    within ``_EXPECTED_FRACTION`` of ``miss_min`` of is no miss (nor an excursion, nor a tail
    event). The smoothed level cannot know a change the network saw coming (a cycle's edge, on
    time): judged against the ideal predictor without this, cycle sensors made 202 false alarms
    on the default scenario (seed 7), not 45.

    ``std`` is the sensor's standard deviation (for the yardstick's floor); ``explained`` where
    a known jump explained the miss: not judged, and, with the smoothed level on, no excursion
    starts there (the level restarts at the jump, so the readings after it are judged at once:
    blocking them hid spikes in the ten readings after every edge of a duty cycle); ``restart``
    where a step of ``jump_min`` or more was confirmed (a first regime switch, say; a known
    level is reached by a known jump instead, unless the miss was too small for one), whose
    noise may differ: the rule learns the yardstick afresh and judges again after as many misses
    as after a reset (``_calibration_schedule``). Returns to known levels do not relearn (a
    duty cycle's edges come every few dozen readings, and relearning at each kept the rule off
    its sensors): they bring back the yardsticks the level had when the sensor last left it
    (``_move_to_level``).

    The yardstick is kept in raw units: the typical error above, a mean of misses each measured
    in the standard deviation of its own time, overstates the miss on sensors whose standard
    deviation moves (by a fifth on seasonal sensors of the default scenario), which hid misses
    of 6 sigma. The tail test keeps the rule off sensors whose misses are often big (cycle
    edges, regime switches, spiky real series), where the rarity rules above decide. It
    counts excursions, not readings: one variance anomaly is one rare event, not a hundred."""
    if settings.miss_min <= 0:
        return np.zeros(len(values)), np.zeros(len(values), bool)
    state["miss_learnt"] = np.where(restart, 0.0, state["miss_learnt"])
    if not _smoothed(settings):  # else the smoothed level restarts at the jump and judges at once
        state["miss_quiet"] = np.where(explained, 0.0, state["miss_quiet"])
    typical = state["miss_typ"]
    yardstick = np.maximum(typical, state["miss_fast"]) if settings.miss_fast_window > 0 else typical
    # Like the spike statistics, the rule learns nothing from the settling readings after a
    # reset: the first misses of a counter are the network's before the trend fallback takes
    # over, and an exact mean over all misses remembered them for hundreds more.
    skipped, needed = _calibration_schedule(settings)
    judged = has_prediction & ~explained & (state["count"] > skipped)
    signed = np.where(judged, values - np.where(judged, prediction, 0.0), 0.0)
    miss = np.abs(signed)
    scale = np.maximum(widening * yardstick / _MEAN_ABS_PER_SIGMA, _TYPICAL_MIN * std)  # one sigma estimate
    sigmas = miss / scale
    settled = state["miss_learnt"] >= needed
    judges = settled & (_rate(state["tail_events"], state["tail_seen"]) < settings.miss_tail_rate_max)
    unexpected = np.abs(values - np.where(judged, expected, values)) >= _EXPECTED_FRACTION * settings.miss_min * scale
    big = judged & unexpected & (sigmas >= settings.miss_tail)
    quiet_before = state["miss_quiet"] >= _EXCURSION_GAP
    starts = big & quiet_before
    fired = judged & unexpected & quiet_before & judges & (sigmas >= settings.miss_min)
    state["miss_quiet"] = np.where(big, 0.0, np.minimum(state["miss_quiet"] + judged, _EXCURSION_GAP))
    _count_events(settings, state, "tail", starts, judged & settled)
    learnt = state["miss_learnt"] + judged
    state["miss_learnt"] = learnt
    capped = np.minimum(miss, _miss_bound(learnt, typical))
    rate = _ewma_rate(learnt, settings.error_window)
    state["miss_typ"] = np.where(judged, typical + rate * (capped - typical), typical)
    bound = _miss_bound(learnt, yardstick)
    _learn_bias(state, signed, judged, learnt, bound)
    if settings.miss_fast_window > 0:
        _learn_fast_yardstick(settings, state, signed, judged, learnt, bound)
    return np.where(fired, settings.spike_score, 0.0), judges


def _calibration_schedule(settings: ScoringSettings) -> tuple[int, int]:
    """Readings after a reset the calibrated rule learns nothing from, and misses it learns
    before it judges: ``_SPIKE_SKIP`` and ``_MISSES_LEARNT``, both halved (at most) to fit in
    a shorter warm-up, so that the rule has learnt its yardstick when the warm-up ends."""
    skipped = min(_SPIKE_SKIP, settings.warmup // 2)
    return skipped, min(_MISSES_LEARNT, max(settings.warmup - skipped, _MISSES_UNCAPPED))


def _miss_bound(learnt: np.ndarray, yardstick: np.ndarray) -> np.ndarray:
    """The most a miss may count for in a yardstick: unbounded for the first few misses, then
    ``_MISS_CAP`` yardsticks, so that an anomaly barely moves it."""
    return np.where(learnt > _MISSES_UNCAPPED, _MISS_CAP * yardstick, np.inf)


def _learn_bias(state: dict[str, np.ndarray], signed: np.ndarray, judged: np.ndarray, learnt: np.ndarray,
                bound: np.ndarray) -> None:
    """Learn each judged signed miss (within ``bound``, the yardstick's ``_miss_bound``) into the
    local mean miss, over the last ``_BIAS_WINDOW`` misses; it starts afresh with the slow
    yardstick."""
    bias = state["miss_bias"]
    state["miss_bias"] = np.where(judged, bias + _ewma_rate(learnt, _BIAS_WINDOW) * (np.clip(signed, -bound, bound)
                                                                                     - bias), bias)


def _learn_fast_yardstick(settings: ScoringSettings, state: dict[str, np.ndarray], signed: np.ndarray,
                          judged: np.ndarray, learnt: np.ndarray, bound: np.ndarray) -> None:
    """Learn each judged miss's deviation from the local mean miss into the fast yardstick,
    within ``bound``; it starts afresh with the slow yardstick (``miss_learnt`` back at 0)."""
    deviation = np.minimum(np.abs(signed - state["miss_bias"]), bound)
    fast = state["miss_fast"]
    state["miss_fast"] = np.where(judged, fast + _ewma_rate(learnt, settings.miss_fast_window) * (deviation - fast),
                                  fast)


def _local_maximum(settings: ScoringSettings, state: dict[str, np.ndarray], raw: np.ndarray) -> np.ndarray:
    ring = state["score_ring"]
    previous_max = ring.max(axis=1)
    # Compare at the ring's precision, so a repeat of the same score is not a new maximum.
    kept = np.where(raw.astype(ring.dtype) > previous_max, raw, settings.suppress_factor * raw)
    slot = ((state["count"] - 1.0) % ring.shape[1]).astype(np.int64)
    ring[np.arange(len(ring)), slot] = raw
    return kept
