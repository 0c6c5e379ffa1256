"""Event-level metrics on a hand-built two-sensor scenario with hand-computed expectations."""

from __future__ import annotations

import json

import numpy as np
import pytest

from anomalyd.daemon.evaluation.event_metrics import (
    MatchConfig,
    evaluate_events,
    load_labels_jsonl,
    render_table,
)


def stream(n: int, flags: list[int], warmup: int = 0, step: float = 60.0) -> dict:
    """n readings `step` s apart from t=0, flagged at the given indices, first `warmup` in warm-up."""
    anomaly = np.zeros(n, bool)
    anomaly[flags] = True
    return {"ts": np.arange(n) * step, "anomaly": anomaly, "warmup": np.arange(n) < warmup}


def scenario() -> tuple[list[dict], dict]:
    labels = [
        # Sensor a: readings every 60 s at t = 0..5940 (indices 0..99), first 10 in warm-up.
        {"sensor": "a", "kind": "spike", "start_ts": 1200, "end_ts": 1200, "magnitude": 5},  # idx 20
        {"sensor": "a", "kind": "level_shift", "start_ts": 3000, "end_ts": 3600, "magnitude": 2},  # 50..60
        {"sensor": "a", "kind": "drift", "start_ts": 4800, "end_ts": 5400, "magnitude": 1},  # 80..90
        {"sensor": "a", "kind": "stuck", "start_ts": 300, "end_ts": 400, "magnitude": 0},  # in warm-up
        # Sensor b: readings every 60 s at t = 0..2940 (indices 0..49), no warm-up.
        {"sensor": "b", "kind": "spike", "start_ts": 600, "end_ts": 600, "magnitude": 4},  # idx 10
        # Sensor c never reported.
        {"sensor": "c", "kind": "dropout", "start_ts": 100, "end_ts": 900, "magnitude": 0},
    ]
    streams = {
        # 3: anomalous but in warm-up (ignored); 21: spike +1 reading; 53: shift +3 readings;
        # 30, 31, 33: one burst of false alarms; 70: another false alarm.
        "a": stream(100, [3, 21, 30, 31, 33, 53, 70], warmup=10),
        # 10: spike on its first reading; 40: false alarm.
        "b": stream(50, [10, 40]),
    }
    return labels, streams


CFG = MatchConfig(tolerance_readings=2, merge_gap_readings=5)


def test_overall_counts_rates_and_delays():
    labels, streams = scenario()
    overall = evaluate_events(labels, streams, CFG)["overall"]
    assert (overall["events"], overall["detected"], overall["missed"], overall["excluded"]) == (4, 3, 1, 2)
    assert overall["false_alarms"] == 3  # {30,31,33}, {70} on a; {40} on b
    assert overall["precision"] == pytest.approx(3 / 6)
    assert overall["recall"] == pytest.approx(3 / 4)
    assert overall["f1"] == pytest.approx(2 * 0.5 * 0.75 / 1.25)
    # Delays: spike a = 1 reading / 60 s, shift = 3 / 180 s, spike b = 0 / 0 s.
    assert overall["delay_readings_median"] == 1.0
    assert overall["delay_readings_p90"] == pytest.approx(1 + 0.8 * 2)  # linear between 1 and 3
    assert overall["delay_seconds_median"] == 60.0
    assert overall["delay_seconds_p90"] == pytest.approx(60 + 0.8 * 120)
    # Post-warm-up spans: a 600..5940 s, b 0..2940 s.
    assert overall["sensor_days"] == pytest.approx((5340 + 2940) / 86400)
    assert overall["false_alarms_per_sensor_day"] == pytest.approx(3 / ((5340 + 2940) / 86400))


def test_breakdown_by_kind():
    labels, streams = scenario()
    by_kind = evaluate_events(labels, streams, CFG)["by_kind"]
    assert sorted(by_kind) == ["drift", "dropout", "level_shift", "spike", "stuck"]
    spike = by_kind["spike"]
    assert (spike["events"], spike["detected"], spike["recall"]) == (2, 2, 1.0)
    assert spike["precision"] == pytest.approx(2 / 5)  # against all 3 false alarms
    assert spike["f1"] == pytest.approx(2 * 0.4 / 1.4)
    assert spike["delay_readings_median"] == 0.5 and spike["delay_seconds_median"] == 30.0
    assert by_kind["level_shift"]["precision"] == pytest.approx(1 / 4)
    assert by_kind["drift"]["recall"] == 0.0 and by_kind["drift"]["f1"] == 0.0
    assert by_kind["drift"]["delay_readings_median"] is None
    for kind in ("stuck", "dropout"):
        assert by_kind[kind]["events"] == 0 and by_kind[kind]["excluded"] == 1
        assert by_kind[kind]["recall"] is None and by_kind[kind]["f1"] is None


def test_tolerance_in_seconds_decides_between_late_detection_and_false_alarm():
    labels = [{"sensor": "s", "kind": "spike", "start_ts": 1200, "end_ts": 1200, "magnitude": 1}]
    streams = {"s": stream(50, [22])}  # two readings (120 s) after the spike
    late = evaluate_events(labels, streams, MatchConfig(tolerance_s=120))["overall"]
    assert (late["detected"], late["false_alarms"], late["delay_seconds_median"]) == (1, 0, 120.0)
    assert late["delay_readings_median"] == 2.0
    strict = evaluate_events(labels, streams, MatchConfig(tolerance_s=60))["overall"]
    assert (strict["detected"], strict["false_alarms"], strict["precision"]) == (0, 1, 0.0)


def test_false_alarm_merge_gap_in_readings_and_seconds():
    streams = {"s": stream(50, [30, 31, 33])}
    count = lambda cfg: evaluate_events([], streams, cfg)["overall"]["false_alarms"]
    assert count(MatchConfig(merge_gap_readings=0)) == 3
    assert count(MatchConfig(merge_gap_readings=1)) == 2
    assert count(MatchConfig(merge_gap_readings=2)) == 1
    assert count(MatchConfig(merge_gap_readings=0, merge_gap_s=120)) == 1
    report = evaluate_events([], streams, MatchConfig())
    assert report["overall"]["precision"] == 0.0 and report["overall"]["recall"] is None


def test_false_alarms_at_first_visits_are_counted_apart():
    labels, streams = scenario()
    plain = evaluate_events(labels, streams, CFG)["overall"]
    assert plain["first_visit_false_alarms"] is None and plain["precision_without_first_visits"] is None
    # a's burst {30, 31, 33} starts 1 reading after a first visit at index 29 (within the 2
    # readings' tolerance) and at another at 30 (still one false alarm); its false alarm at 70
    # is 4 readings after one at 66 (outside), and b's at 40 is at one; a first visit at 20
    # falls in the spike's span (a detection, not a false alarm), one at 5 in warm-up with its
    # whole span (5-7); c has no stream. So 5 first visits could have become false alarms: a's
    # at 9 (its span reaches the judged readings 10-11), 29, 30 and 66, b's at 40.
    visits = {"a": np.array([5 * 60.0, 9 * 60.0, 20 * 60.0, 29 * 60.0, 30 * 60.0, 66 * 60.0]),
              "b": np.array([40 * 60.0]), "c": np.array([0.0])}
    report = evaluate_events(labels, streams, CFG, first_visits=visits)
    overall = report["overall"]
    assert (overall["false_alarms"], overall["first_visit_false_alarms"], overall["first_visits"]) == (3, 2, 5)
    assert plain["first_visits"] is None
    assert overall["precision"] == plain["precision"] == 3 / 6
    assert overall["precision_without_first_visits"] == 3 / 4
    assert ("of which at a regime's first visit: 2 (first visits judged: 5; precision without them: 0.750)"
            in render_table(report))
    assert "first visit" not in render_table(evaluate_events(labels, streams, CFG))


def test_report_is_json_and_table_is_fixed_width(tmp_path):
    labels, streams = scenario()
    path = tmp_path / "labels.jsonl"
    path.write_text("\n".join(json.dumps(l) for l in labels) + "\n\n")
    assert load_labels_jsonl(path) == labels
    report = evaluate_events(load_labels_jsonl(path), streams, CFG, include_events=True)
    assert json.loads(json.dumps(report)) == report
    assert len(report["events"]) == 6
    spike_a = report["events"][0]
    assert (spike_a["sensor"], spike_a["detected"], spike_a["delay_readings"]) == ("a", True, 1)

    table = render_table(report)
    lines = table.splitlines()
    assert lines[0].startswith("kind") and "recall" in lines[0]
    rows = [l for l in lines if l.split()[0] in {"spike", "drift", "ALL"}]
    assert len(rows) == 3 and len({len(l) for l in lines[:-1]}) == 1  # all rows equally wide
    assert "0.750" in next(l for l in lines if l.startswith("ALL"))
    assert "false alarms: 3" in lines[-1]


def test_invalid_inputs_are_rejected():
    with pytest.raises(ValueError, match="lacks"):
        evaluate_events([{"sensor": "a", "kind": "spike", "start_ts": 1}], {})
    with pytest.raises(ValueError, match="ends before"):
        evaluate_events([{"sensor": "a", "kind": "spike", "start_ts": 2, "end_ts": 1}], {})
    bad = {"ts": np.array([0.0, 60.0, 30.0]), "anomaly": np.zeros(3, bool)}
    with pytest.raises(ValueError, match="non-decreasing"):
        evaluate_events([], {"a": bad})
