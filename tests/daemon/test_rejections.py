"""Every rejection reason, sent through the broker: counted by reason, good sensors keep scoring."""
from __future__ import annotations

import json
import time

from support.daemon import publish_all
from support.wait import wait_until

from .conftest import score_messages

CONFIG = {"input": {"max_payload_bytes": 512, "max_readings_per_message": 5, "max_value": 1e9,
                    "min_value": -1e9},
          "detector": {"max_sensors": 3}}


def test_every_rejection_reason_is_counted_and_scoring_goes_on(mosquitto, make_daemon, scores):
    daemon = make_daemon(CONFIG)
    now = time.time()
    good = [("sensors/good", json.dumps({"value": float(i), "ts": now - 100 + i})) for i in range(10)]
    publish_all(mosquitto, good[:5])
    wait_until(lambda: len(score_messages(scores)) >= 5, 15, message="first good scores")
    bad = {
        "oversized": [("sensors/big", "1" * 600)],
        "invalid_utf8": [("sensors/u", b"\xff\xfe\x00")],
        "invalid_json": [("sensors/j", '{"value": 1,')],
        "not_numeric": [("sensors/n", "twelve"), ("sensors/n", json.dumps({"value": "7"})),
                        ("sensors/n", json.dumps({"value": True}))],
        "wrong_shape": [("sensors/w", json.dumps({"reading": 1})), ("sensors/w", "[1, 2]")],
        "bad_sensor_id": [("sensors/bad$id", "1.0")],
        "bad_timestamp": [("sensors/good", json.dumps({"value": 1, "ts": "yesterday"})),
                          ("sensors/good", json.dumps({"value": 1, "ts": -5}))],
        "future_timestamp": [("sensors/good", json.dumps({"value": 1, "ts": now + 1e6}))],
        "out_of_range": [("sensors/good", json.dumps({"value": 1e12, "ts": now - 50})),
                         ("sensors/good", json.dumps({"value": 10 ** 400, "ts": now - 49}))],
        "too_many_readings": [("sensors/senml", json.dumps([{"n": "x", "v": i} for i in range(6)]))],
        "non_finite": [("sensors/good", "nan"), ("sensors/good", json.dumps({"value": float("inf"), "ts": now}))],
        "duplicate": [("sensors/good", json.dumps({"value": 4.0, "ts": now - 100 + 4}))],
        "out_of_order": [("sensors/good", json.dumps({"value": 1.0, "ts": now - 500}))],
        "capacity": [("sensors/c1", "1"), ("sensors/c2", "1"), ("sensors/c3", "1")],
    }
    for reason, messages in bad.items():
        publish_all(mosquitto, messages)
    publish_all(mosquitto, good[5:])
    expected = {reason: len(messages) for reason, messages in bad.items()}
    expected["capacity"] = 1  # 'good', c1 and c2 hold the three slots
    def counted():
        return {reason: daemon.metric("anomalyd_readings_rejected_total", reason=reason) for reason in expected}
    wait_until(lambda: counted() == expected, 20, message=lambda: f"rejection counts {counted()} != {expected}")
    wait_until(lambda: len([m for m in score_messages(scores) if m["sensor"] == "good"]) >= 10, 15,
               message="the good sensor's later readings")
    assert daemon.metric("anomalyd_resets_total", reason="non_finite") >= 1
    assert daemon.process.poll() is None
    assert "rejected a reading (invalid_json)" in daemon.log_text()
