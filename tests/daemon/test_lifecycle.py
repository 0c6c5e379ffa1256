"""Signals, the systemd notification protocol, reconnection after a broker restart."""
from __future__ import annotations

import json
import signal
import time

from support.daemon import DaemonProcess, publish_all
from support.mqtt import MqttTestClient
from support.wait import wait_until

from .conftest import score_messages


def test_sigterm_exits_zero_and_publishes_offline(mosquitto, make_daemon, scores):
    daemon = make_daemon()
    publish_all(mosquitto, [("sensors/a", "1.0")])
    wait_until(lambda: score_messages(scores), 10, message="a score")
    assert daemon.stop(signal.SIGTERM, timeout=30) == 0
    statuses = [json.loads(m.payload)["status"] for m in scores.messages_on("anomalyd/status")]
    assert statuses[-1] == "offline"
    late = MqttTestClient.for_broker(mosquitto)
    late.subscribe("anomalyd/status")
    assert json.loads(late.wait_for(1)[0].payload)["status"] == "offline"  # retained
    late.disconnect()


def test_notify_protocol_ready_watchdog_status_stopping(mosquitto, make_daemon):
    daemon = make_daemon(env={"WATCHDOG_USEC": "400000"})
    notices = daemon.notify.received()
    assert "READY=1" in notices
    wait_until(lambda: daemon.notify.received().count("WATCHDOG=1") >= 3, 10, message="watchdog pings")
    wait_until(lambda: any(n.startswith("STATUS=") for n in daemon.notify.received()), 15, message="STATUS=")
    notify = daemon.notify
    daemon.process.send_signal(signal.SIGTERM)
    wait_until(lambda: "STOPPING=1" in notify.received(), 15, message="STOPPING=1")
    assert daemon.process.wait(30) == 0


def test_ready_waits_for_the_broker(mosquitto, tmp_path):
    mosquitto.stop()
    daemon = DaemonProcess(mosquitto, tmp_path / "d").start(wait_ready=False)
    try:
        wait_until(lambda: "metrics on http" in daemon.log_text(), 30, message="daemon started")
        assert "READY=1" not in daemon.notify.received()
        mosquitto.restart()  # same port
        daemon.wait_notified("READY=1", 30)
    finally:
        daemon.kill()


def test_sighup_applies_new_threshold_and_keeps_state(mosquitto, make_daemon, scores):
    daemon = make_daemon({"scoring": {"warmup": 5, "threshold": 0.5}})
    start = time.time() - 100
    publish_all(mosquitto, [("sensors/h", json.dumps({"value": float(i % 3), "ts": start + i})) for i in range(10)])
    wait_until(lambda: len(score_messages(scores)) >= 10, 15, message="ten scores")
    assert daemon.metric("anomalyd_threshold") == 0.5
    config = dict(daemon.config)
    config["scoring"] = {"warmup": 5, "threshold": 0.0}
    daemon.write_config(config)
    daemon.send_signal(signal.SIGHUP)
    wait_until(lambda: daemon.metric("anomalyd_threshold") == 0.0, 15, message="new threshold")
    publish_all(mosquitto, [("sensors/h", json.dumps({"value": 1.0, "ts": start + 20}))])
    wait_until(lambda: len(score_messages(scores)) >= 11, 15, message="score after reload")
    last = score_messages(scores)[-1]
    assert last["warmup"] is False and last["anomaly"] is True  # threshold 0 flags everything after warm-up
    assert daemon.metric("anomalyd_resets_total", reason="new") == 1  # state kept, no restart


def test_broker_restart_loses_no_qos1_reading(mosquitto_persistent, tmp_path):
    broker = mosquitto_persistent
    daemon = DaemonProcess(broker, tmp_path / "d", {"mqtt": {"reconnect_min_delay": 1.0}}).start()
    collector = MqttTestClient(broker.host, broker.port, client_id="collector", clean_session=False).connect()
    collector.subscribe("anomalyd/scores/#", qos=1)
    try:
        start = time.time() - 1000
        first = [("sensors/r", json.dumps({"value": float(i), "ts": start + i})) for i in range(50)]
        publish_all(broker, first)
        wait_until(lambda: len(collector.messages) >= 50, 20, message="scores before the restart")
        broker.restart()
        # Published before the daemon is back: the broker must hold them in its persistent session.
        second = [("sensors/r", json.dumps({"value": float(i), "ts": start + i})) for i in range(50, 120)]
        publish_all(broker, second)
        wait_until(lambda: daemon.metric("anomalyd_mqtt_reconnects_total") >= 1, 30, message="reconnect")
        wait_until(lambda: len({json.loads(m.payload)["ts"] for m in collector.messages}) >= 120, 30,
                   message=lambda: f"120 distinct scores, got {len(collector.messages)}")
        assert daemon.process.poll() is None
    finally:
        collector.disconnect()
        daemon.kill()
