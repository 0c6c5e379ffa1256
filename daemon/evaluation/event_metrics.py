"""Event-level detection metrics for simulator scenarios with labelled anomalies.

Point-wise precision/recall over readings rewards long anomalies and punishes a detector
that fires once per event; operators care about events: was each incident noticed, how
late, and how many alarms were noise. Definitions used here (all per sensor):

* **Span of an event**: readings with ``start_ts <= ts <= span_end``, where ``span_end`` is
  the later of ``end_ts + tolerance_s`` and the timestamp ``tolerance_readings`` readings after
  the last reading at or before ``end_ts`` (tolerance lets a detector that reacts just after a
  short event, e.g. a spike or a dropout, still count).
* **Flag**: a reading with ``anomaly`` true and ``warmup`` false (warm-up readings are never
  scored, even if a stream marks them anomalous).
* **Scorable event**: its span holds at least one post-warm-up reading. Other events (the
  sensor was still warming up, had no readings, or has no stream) are *excluded* from recall
  and counted separately, so a blind detector is visible rather than silently penalised.
* **Detected**: some flag lies in the span. **Delay**: from ``start_ts`` to the first such
  flag, in seconds and in readings (0 = flagged on the first reading at/after ``start_ts``).
* **False alarm**: flags outside every span of the sensor's events, grouped: a flag starts a
  new false alarm unless it is within ``merge_gap_readings`` readings or ``merge_gap_s``
  seconds of the previous outside flag (one noisy burst is one false alarm).
* **Precision** = detected / (detected + false alarms); **recall** = detected / scorable;
  F1 their harmonic mean. Per kind, recall and delays use that kind's events and precision
  uses that kind's detections against *all* false alarms (false alarms have no kind), while
  flags on other kinds' events count for neither side.
* **First-visit false alarm**: with ``first_visits`` (per sensor, the timestamps at which it
  enters a regime it has never been in), a false alarm whose first flag lies in the span of
  such a moment (as if it were an event that ends where it starts). Normal behaviour that no
  causal detector can tell from a level shift; counted among the false alarms, and apart in
  ``first_visit_false_alarms`` and ``precision_without_first_visits`` (None where not given).
  ``first_visits`` counts those that could have become one: their span holds a judged reading
  (not in warm-up) that is in no event's span.
* **Sensor-days** = sum over sensors of (last - first post-warm-up timestamp) / 86400.

Undefined ratios (no events, no alarms, no detections) are ``None`` so the report stays
JSON-serialisable and nobody mistakes "not measured" for 0.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np

SECONDS_PER_DAY = 86400.0
_REQUIRED_LABEL_KEYS = ("sensor", "kind", "start_ts", "end_ts")


@dataclass(frozen=True)
class MatchConfig:
    """How flags are matched to events and grouped into false alarms."""

    tolerance_s: float = 0.0
    tolerance_readings: int = 0
    merge_gap_readings: int = 5
    merge_gap_s: float = 0.0


def load_labels_jsonl(path: str | os.PathLike[str]) -> list[dict]:
    """Read a labels file: one JSON object per line, blank lines ignored."""
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _stream_arrays(stream: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ts, anomaly, warmup) from a mapping or an object with those fields; warmup optional."""
    get = stream.get if isinstance(stream, Mapping) else lambda k, d=None: getattr(stream, k, d)
    ts = np.asarray(get("ts"), dtype=np.float64)
    anomaly = np.asarray(get("anomaly"), dtype=bool)
    warm = get("warmup", None)
    warmup = np.zeros(len(ts), bool) if warm is None else np.asarray(warm, dtype=bool)
    if not (len(ts) == len(anomaly) == len(warmup)):
        raise ValueError("ts, anomaly and warmup differ in length")
    if len(ts) > 1 and np.any(np.diff(ts) < 0):
        raise ValueError("stream timestamps must be non-decreasing")
    return ts, anomaly, warmup


def _validate_label(label: Mapping) -> None:
    missing = [k for k in _REQUIRED_LABEL_KEYS if k not in label]
    if missing:
        raise ValueError(f"label {dict(label)} lacks {missing}")
    if float(label["end_ts"]) < float(label["start_ts"]):
        raise ValueError(f"label {dict(label)} ends before it starts")


def _span_indices(ts: np.ndarray, start: float, end: float, cfg: MatchConfig) -> tuple[int, int]:
    """Inclusive reading indices [i0, i1] of an event's span (i1 < i0 when empty)."""
    i0 = int(np.searchsorted(ts, start, side="left"))
    i1 = int(np.searchsorted(ts, end + cfg.tolerance_s, side="right")) - 1
    if cfg.tolerance_readings > 0:
        last_in_event = int(np.searchsorted(ts, end, side="right")) - 1
        i1 = max(i1, min(last_in_event + cfg.tolerance_readings, len(ts) - 1))
    return i0, i1


def _false_alarm_starts(idx: np.ndarray, ts: np.ndarray, cfg: MatchConfig) -> np.ndarray:
    """Group outside-span flag indices into false-alarm events by the merge-gap rule; returns
    the index of each one's first flag."""
    if idx.size == 0:
        return idx
    new_alarm = (np.diff(idx) > cfg.merge_gap_readings) & (np.diff(ts[idx]) > cfg.merge_gap_s)
    return idx[np.r_[True, new_alarm]]


def _covered(n: int, spans: Iterable[tuple[int, int]]) -> np.ndarray:
    """Which of ``n`` readings lie in any of the inclusive index ``spans`` (from
    ``_span_indices``; an empty one, i1 < i0, covers none)."""
    count = np.zeros(n + 1, dtype=np.int64)
    for i0, i1 in spans:
        if i1 >= i0:
            count[i0] += 1
            count[i1 + 1] -= 1
    return np.cumsum(count)[:-1] > 0


def _match_sensor(ts, anomaly, warmup, events: list[Mapping], cfg: MatchConfig, first_visits=()):
    """Per-event outcomes, the false-alarm count, how many of those start in the span of one of
    ``first_visits`` (timestamps), and how many first visits could have become one (a judged
    reading outside every event's span lies in their own span), for one sensor."""
    flags = anomaly & ~warmup
    event_spans = [_span_indices(ts, float(ev["start_ts"]), float(ev["end_ts"]), cfg) for ev in events]
    outcomes = []
    for ev, (i0, i1) in zip(events, event_spans):
        out = {"scorable": False, "detected": False, "delay_s": None, "delay_readings": None}
        if i1 >= i0:
            out["scorable"] = bool((~warmup[i0 : i1 + 1]).any())
            hits = np.flatnonzero(flags[i0 : i1 + 1])
            if hits.size:
                first = i0 + int(hits[0])
                out.update(detected=True, delay_readings=first - i0,
                           delay_s=float(ts[first] - float(ev["start_ts"])))
        outcomes.append(out)
    in_events = _covered(len(ts), event_spans)
    starts = _false_alarm_starts(np.flatnonzero(flags & ~in_events), ts, cfg)
    # A first visit is a moment: an event that ends where it starts.
    visit_spans = [_span_indices(ts, float(moment), float(moment), cfg) for moment in first_visits]
    at_visits = _covered(len(ts), visit_spans)[starts]
    judged_outside = ~warmup & ~in_events
    open_visits = sum(bool(judged_outside[i0 : i1 + 1].any()) for i0, i1 in visit_spans)
    return outcomes, len(starts), int(at_visits.sum()), open_visits


def _sensor_days(ts: np.ndarray, warmup: np.ndarray) -> float:
    live = ts[~warmup]
    return float(live[-1] - live[0]) / SECONDS_PER_DAY if live.size else 0.0


def _ratio(num: float, den: float) -> float | None:
    return float(num) / den if den else None


def _f1(precision: float | None, recall: float | None) -> float | None:
    if precision is None or recall is None:
        return None
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _quantile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _summary(outcomes: list[dict], false_alarms: int) -> dict:
    """Counts, precision/recall/F1 and delay quantiles over a set of event outcomes."""
    scorable = [o for o in outcomes if o["scorable"]]
    detected = [o for o in scorable if o["detected"]]
    precision = _ratio(len(detected), len(detected) + false_alarms)
    recall = _ratio(len(detected), len(scorable))
    d_r = [o["delay_readings"] for o in detected]
    d_s = [o["delay_s"] for o in detected]
    return {
        "events": len(scorable),
        "detected": len(detected),
        "missed": len(scorable) - len(detected),
        "excluded": len(outcomes) - len(scorable),
        "precision": precision,
        "recall": recall,
        "f1": _f1(precision, recall),
        "delay_readings_median": _quantile(d_r, 50),
        "delay_readings_p90": _quantile(d_r, 90),
        "delay_seconds_median": _quantile(d_s, 50),
        "delay_seconds_p90": _quantile(d_s, 90),
    }


def evaluate_events(
    labels: Iterable[Mapping],
    streams: Mapping[str, Any],
    config: MatchConfig = MatchConfig(),
    include_events: bool = False,
    first_visits: Mapping[str, Any] | None = None,
) -> dict:
    """Match labelled events against per-sensor detection streams; return a JSON-able report.

    ``streams[sensor]`` has ``ts`` (seconds), ``anomaly`` (bool) and optionally ``warmup``
    (bool) for every scored reading, as a mapping or as attributes. See the module docstring
    for every definition. With ``include_events`` the report lists each event's outcome; with
    ``first_visits`` (timestamps by sensor) it counts the false alarms there apart.
    """
    by_sensor: dict[str, list[dict]] = defaultdict(list)
    for label in labels:
        _validate_label(label)
        by_sensor[str(label["sensor"])].append(dict(label))

    outcomes: list[tuple[dict, dict]] = []
    false_alarms, at_first_visits, open_visits, sensor_days = 0, 0, 0, 0.0
    for sensor in sorted(set(by_sensor) | set(streams)):
        events = by_sensor.get(sensor, [])
        if sensor not in streams:  # never observed: nothing could have been detected
            blank = {"scorable": False, "detected": False, "delay_s": None, "delay_readings": None}
            outcomes += [(ev, dict(blank)) for ev in events]
            continue
        ts, anomaly, warmup = _stream_arrays(streams[sensor])
        visits = () if first_visits is None else first_visits.get(sensor, ())
        sensor_out, fa, fa_at_visits, judged_visits = _match_sensor(ts, anomaly, warmup, events, config, visits)
        outcomes += list(zip(events, sensor_out))
        false_alarms += fa
        at_first_visits += fa_at_visits
        open_visits += judged_visits
        sensor_days += _sensor_days(ts, warmup)

    overall = _summary([o for _, o in outcomes], false_alarms)
    overall.update(
        false_alarms=false_alarms,
        sensor_days=sensor_days,
        false_alarms_per_sensor_day=_ratio(false_alarms, sensor_days),
        first_visits=None if first_visits is None else open_visits,
        first_visit_false_alarms=None if first_visits is None else at_first_visits,
        precision_without_first_visits=None if first_visits is None else _ratio(
            overall["detected"], overall["detected"] + false_alarms - at_first_visits),
    )
    kinds = sorted({str(ev["kind"]) for ev, _ in outcomes})
    report = {
        "config": {
            "tolerance_s": config.tolerance_s,
            "tolerance_readings": config.tolerance_readings,
            "merge_gap_readings": config.merge_gap_readings,
            "merge_gap_s": config.merge_gap_s,
        },
        "overall": overall,
        "by_kind": {k: _summary([o for ev, o in outcomes if ev["kind"] == k], false_alarms) for k in kinds},
    }
    if include_events:
        report["events"] = [
            {"sensor": str(ev["sensor"]), "kind": str(ev["kind"]), "start_ts": float(ev["start_ts"]),
             "end_ts": float(ev["end_ts"]), **o}
            for ev, o in outcomes
        ]
    return report


def dashed(value: float | None, spec: str) -> str:
    """``value`` formatted with ``spec``, or "-" when there is none."""
    return "-" if value is None else format(value, spec)


def render_table(report: Mapping) -> str:
    """Fixed-width text table of a report from :func:`evaluate_events`, one row per kind."""
    head = (f"{'kind':<18}{'events':>7}{'det':>6}{'excl':>6}{'recall':>8}{'prec':>8}{'f1':>8}"
            f"{'delay_med':>11}{'delay_p90':>11}{'delay_med_s':>13}{'delay_p90_s':>13}")
    lines = [head, "-" * len(head)]

    def row(name: str, s: Mapping) -> str:
        return (f"{name:<18}{s['events']:>7}{s['detected']:>6}{s['excluded']:>6}"
                f"{dashed(s['recall'], '.3f'):>8}{dashed(s['precision'], '.3f'):>8}{dashed(s['f1'], '.3f'):>8}"
                f"{dashed(s['delay_readings_median'], '.1f'):>11}{dashed(s['delay_readings_p90'], '.1f'):>11}"
                f"{dashed(s['delay_seconds_median'], '.1f'):>13}{dashed(s['delay_seconds_p90'], '.1f'):>13}")

    for kind, summary in report["by_kind"].items():
        lines.append(row(kind[:17], summary))
    lines.append("-" * len(head))
    overall = report["overall"]
    lines.append(row("ALL", overall))
    lines.append(
        f"false alarms: {overall['false_alarms']} over {overall['sensor_days']:.3f} sensor-days"
        f" ({dashed(overall['false_alarms_per_sensor_day'], '.3f')} per sensor-day)"
    )
    if overall.get("first_visit_false_alarms") is not None:
        lines.append(f"of which at a regime's first visit: {overall['first_visit_false_alarms']}"
                     f" (first visits judged: {overall['first_visits']};"
                     f" precision without them: {dashed(overall['precision_without_first_visits'], '.3f')})")
    return "\n".join(lines)
