"""The daemon end to end through a real broker: every reading scored once, in order, spikes flagged."""
from __future__ import annotations

import json
import math
import time

import numpy as np

from support.daemon import publish_all
from support.wait import wait_until

from .conftest import score_messages

WARMUP = 40


def sensor_value(sensor: int, i: int) -> float:
    return 100.0 * sensor + 10.0 * math.sin(i / 7.0 + sensor) + 0.3 * math.sin(i * 1.7)


def test_fifty_sensors_every_reading_scored_once_in_order(mosquitto, make_daemon, scores):
    daemon = make_daemon({"scoring": {"warmup": WARMUP}})
    n_sensors, n_readings, spike_at = 50, 120, 100
    start = time.time() - n_readings
    messages = []
    for i in range(n_readings):
        for sensor in range(n_sensors):
            value = sensor_value(sensor, i) + (500.0 if (sensor == 7 and i == spike_at) else 0.0)
            messages.append((f"sensors/s{sensor:02d}", json.dumps({"value": value, "ts": start + i})))
    publish_all(mosquitto, messages)
    total = n_sensors * n_readings
    wait_until(lambda: len(score_messages(scores)) >= total, 60,
               message=lambda: f"{total} scores, got {len(score_messages(scores))}")
    received = score_messages(scores)
    assert len(received) == total  # exactly one score per reading
    by_sensor: dict[str, list[dict]] = {}
    for message in received:
        by_sensor.setdefault(message["sensor"], []).append(message)
    assert len(by_sensor) == n_sensors
    for sensor, items in by_sensor.items():
        ts = [m["ts"] for m in items]
        assert ts == sorted(ts) and len(set(ts)) == n_readings, f"{sensor} out of order or duplicated"
        assert all(m["warmup"] for m in items[:WARMUP]) and not any(m["warmup"] for m in items[WARMUP:])
        assert not any(m["anomaly"] for m in items[:WARMUP]), "a warm-up reading was flagged"
        assert all(0.0 <= m["score"] <= 1.0 for m in items)
    spike = by_sensor["s07"][spike_at]
    assert spike["anomaly"] and spike["value"] > 1000
    assert spike["prediction"] < 1000  # predicted from the history, not from the spike
    assert daemon.metric("anomalyd_readings_scored_total") == total
    assert daemon.metric("anomalyd_active_sensors") == n_sensors or wait_until(
        lambda: daemon.metric("anomalyd_active_sensors") == n_sensors, 15, message="active sensor gauge")


def test_status_is_retained_online_with_fingerprint(mosquitto, make_daemon, scores):
    from anomalyd.models.artifact import load

    make_daemon()
    wait_until(lambda: scores.messages_on("anomalyd/status"), 10, message="status message")
    status = json.loads(scores.messages_on("anomalyd/status")[-1].payload)
    assert status["status"] == "online" and status["fingerprint"] == load().fingerprint
    late = type(scores).for_broker(mosquitto)
    late.subscribe("anomalyd/status")
    retained = late.wait_for(1)[0]
    assert retained.retain and json.loads(retained.payload)["status"] == "online"
    late.disconnect()


def test_payload_formats_including_senml_with_several_sensors(mosquitto, make_daemon, scores):
    make_daemon()
    now = time.time()
    publish_all(mosquitto, [
        ("sensors/bare", "21.5"),
        ("sensors/jsonts", json.dumps({"value": 3.25, "ts": now - 10})),
        ("sensors/jsonnots", json.dumps({"value": -7})),
        ("sensors/senml", json.dumps([
            {"bn": "press.", "bt": now - 5, "n": "p1", "v": 1.5},
            {"n": "p1", "t": 1, "v": 1.75},
            {"n": "p2", "v": 2.5},
            {"bn": "temp.", "n": "t1", "t": -2, "v": 30},
        ])),
    ])
    wait_until(lambda: len(score_messages(scores)) >= 6, 15, message="six scores")
    got = {(m["sensor"], m["ts"]): m["value"] for m in score_messages(scores)}
    assert got[("jsonts", now - 10)] == 3.25
    assert got[("press.p1", now - 5)] == 1.5 and got[("press.p1", now - 4)] == 1.75
    assert got[("press.p2", now - 5)] == 2.5 and got[("temp.t1", now - 7)] == 30
    bare = [m for m in score_messages(scores) if m["sensor"] == "bare"][0]
    assert bare["value"] == 21.5 and abs(bare["ts"] - now) < 30  # arrival time
    assert [m for m in score_messages(scores) if m["sensor"] == "jsonnots"][0]["value"] == -7
    required = {"sensor", "ts", "value", "prediction", "score", "anomaly", "warmup"}
    assert all(required <= m.keys() for m in score_messages(scores))


def test_batched_output_carries_every_score(mosquitto, make_daemon, scores):
    make_daemon({"mqtt": {"batch_scores": True, "batch_topic": "anomalyd/batch"}})
    start = time.time() - 100
    publish_all(mosquitto, [(f"sensors/b{s}", json.dumps({"value": float(i), "ts": start + i}))
                            for i in range(40) for s in range(5)])
    def batched():
        return [item for m in scores.messages if m.topic == "anomalyd/batch" for item in json.loads(m.payload)]
    wait_until(lambda: len(batched()) >= 200, 15, message="200 batched scores")
    assert len(batched()) == 200 and not score_messages(scores)
    assert np.all(np.diff([m["ts"] for m in batched() if m["sensor"] == "b3"]) > 0)
