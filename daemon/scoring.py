"""Anomaly scoring: prediction errors -> scores in [0, 1] and flags, vectorised over a batch.

Per reading, for every sensor row in the batch at once (all state lives in the rows):
1. error: the reading against the prediction made at the sensor's previous reading, in units
   of the sensor's standard deviation, then relative to the sensor's typical error;
2. squash: typical errors map to 0 and only errors beyond ``squash_low`` typical errors rise
   linearly to 1 at ``squash_high``; a squash that lets ordinary errors through dilutes single
   spikes in the averaging below (measured on NAB: worth as much as the predictor);
3. likelihood, after Numenta's HTM post-processing: the mean of the last ``short_window``
   squashed errors against a long-run Gaussian of that mean; the score is the log-scaled tail
   probability, so 0.5 means about 1e-5 and 1.0 means 1e-10;
4. spatial rule, after HTM's NAB detector: a value beyond the sensor's running min/max by more
   than ``spatial_margin`` of that range scores 1.0 outright; min and max decay slowly toward
   the running mean so one old excursion does not blind the rule forever;
5. local-maximum filter: a score is kept only when it exceeds every score of the previous
   ``suppress_window`` readings (else scaled by ``suppress_factor``), so one event does not raise a run of flags;
6. warm-up: the first ``warmup`` readings after a reset score a neutral 0.5 and are never
   flagged; every statistic still learns from them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from anomalyd.models.slots import Field

NEUTRAL_SCORE = 0.5
_LOG_SCALE = -math.log(1e-10)  # tail probability 1e-10 -> score 1.0


@dataclass(frozen=True)
class ScoringSettings:
    threshold: float = 0.5
    warmup: int = 300
    error_window: int = 300  # readings over which the typical error is averaged
    error_floor: float = 0.02  # typical error floor, in standard deviations of the signal
    squash_low: float = 2.0  # typical errors at which the squashed error starts to rise
    squash_high: float = 6.0  # ... and reaches 1
    short_window: int = 10
    likelihood_window: int = 1000  # horizon of the long-run Gaussian of the short mean
    likelihood_mean_floor: float = 0.03
    likelihood_var_floor: float = 3e-4
    spatial_margin: float = 0.05
    spatial_decay: float = 1e-3  # per reading, fraction of the way back to the running mean
    suppress_window: int = 20
    suppress_factor: float = 0.5  # what is left of a score that is not a new local maximum


def scorer_fields(settings: ScoringSettings) -> dict[str, Field]:
    """Per-row state the scorer keeps in the slot table."""
    return {
        "count": Field((), np.float64, 0.0),
        "prediction": Field((), np.float64, np.nan),
        "error_typ": Field((), np.float64, 0.0),
        "short_ring": Field((settings.short_window,), np.float32, 0.0),
        "lik_mean": Field((), np.float64, 0.0),
        "lik_var": Field((), np.float64, 0.0),
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
          std_before: np.ndarray, mean_before: np.ndarray, threshold: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Score one reading per row and update the scorer state in place.

    ``std_before`` and ``mean_before`` are the sensor's running statistics before this reading
    was folded in, so a spike does not widen the yardstick it is measured with. Returns (score, anomaly, warmup).
    """
    count = state["count"] + 1.0
    state["count"] = count
    has_prediction = np.isfinite(state["prediction"])
    error = np.where(has_prediction, np.abs(values - state["prediction"]) / std_before, 0.0)
    typical = np.maximum(state["error_typ"], settings.error_floor)
    squashed = np.where(has_prediction, squash(settings, error / typical), 0.0)
    # Typical error learns after scoring, with outliers capped so a spike cannot hide the next.
    capped = np.minimum(error, settings.squash_high * typical)
    seen = np.maximum(count - 1.0, 1.0)
    state["error_typ"] = np.where(has_prediction, state["error_typ"]
                                  + _ewma_rate(seen, settings.error_window) * (capped - state["error_typ"]),
                                  state["error_typ"])

    likelihood = _likelihood(settings, state, squashed, count)
    spatial = _spatial(settings, state, values, mean_before)
    raw = np.maximum(likelihood, spatial)
    kept = _local_maximum(settings, state, raw)

    warmup = count <= settings.warmup
    final = np.where(warmup, NEUTRAL_SCORE, kept)
    limit = settings.threshold if threshold is None else threshold
    return final, (~warmup) & (final >= limit), warmup


def _likelihood(settings: ScoringSettings, state: dict[str, np.ndarray], squashed: np.ndarray,
                count: np.ndarray) -> np.ndarray:
    ring = state["short_ring"]
    slot = ((count - 1.0) % settings.short_window).astype(np.int64)
    ring[np.arange(len(ring)), slot] = squashed
    short_mean = ring.sum(axis=1) / np.minimum(count, settings.short_window)
    mean = np.maximum(state["lik_mean"], settings.likelihood_mean_floor)
    var = np.maximum(state["lik_var"], settings.likelihood_var_floor)
    result = log_tail_score(short_mean, mean, var)
    rate = _ewma_rate(count, settings.likelihood_window)
    delta = short_mean - state["lik_mean"]
    state["lik_mean"] = state["lik_mean"] + rate * delta
    state["lik_var"] = (1.0 - rate) * (state["lik_var"] + rate * delta * delta)
    return result


def _spatial(settings: ScoringSettings, state: dict[str, np.ndarray], values: np.ndarray,
             mean: np.ndarray) -> np.ndarray:
    known = np.isfinite(state["value_min"])  # False until the first reading
    low = np.where(known, state["value_min"], values)
    high = np.where(known, state["value_max"], values)
    margin = settings.spatial_margin * (high - low)
    outside = known & ((values > high + margin) | (values < low - margin))
    decay = settings.spatial_decay
    state["value_min"] = np.minimum(low + decay * (mean - low), values)
    state["value_max"] = np.maximum(high + decay * (mean - high), values)
    return outside.astype(np.float64)


def _local_maximum(settings: ScoringSettings, state: dict[str, np.ndarray], raw: np.ndarray) -> np.ndarray:
    ring = state["score_ring"]
    previous_max = ring.max(axis=1)
    kept = np.where(raw > previous_max, raw, settings.suppress_factor * raw)
    slot = ((state["count"] - 1.0) % ring.shape[1]).astype(np.int64)
    ring[np.arange(len(ring)), slot] = raw
    return kept
