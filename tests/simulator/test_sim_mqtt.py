"""`anomalyd simulate` against a real private mosquitto: formats, labels, pacing, replay,
back-pressure across a broker restart, and a clean stop on SIGTERM."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from anomalyd.simulator import cli, scenario_from_config
from anomalyd.simulator.publisher import BrokerAddress, MqttPublisher
from support import MqttTestClient, wait_until

START = "1700000000"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(argv)


def run_cli(capsys, argv: list[str]) -> dict:
    assert cli.main([*argv, "--json", "--quiet"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def subscriber(broker, *topics: str) -> MqttTestClient:
    client = MqttTestClient.for_broker(broker)
    for topic in topics:
        client.subscribe(topic, qos=1)
    return client


def decode(messages, fmt: str) -> dict[str, list[tuple[float | None, float]]]:
    """sensor id -> [(ts, value)] in arrival order, decoded independently of the encoder."""
    out: dict[str, list] = defaultdict(list)
    for m in messages:
        if fmt == "number":
            out[m.topic.split("/", 1)[1]].append((None, float(m.payload.decode("ascii"))))
        elif fmt == "json":
            doc = json.loads(m.payload)
            out[m.topic.split("/", 1)[1]].append((doc["ts"], doc["value"]))
        else:
            records = json.loads(m.payload)
            bn, bt = records[0].get("bn", ""), records[0]["bt"]
            for r in records:
                out[bn + r["n"]].append((bt + r.get("t", 0), r["v"]))
    return out


FLEET = ["--sensors", "8", "--hz", "5", "--duration", "200", "--fast", "--seed", "4", "--start-ts", START,
         "--anomaly-rate", "30", "--warmup", "0", "--missing", "0.05"]


@pytest.mark.parametrize("fmt", ["number", "json", "senml"])
def test_each_format_round_trips_the_generated_readings(mosquitto, capsys, fmt):
    client = subscriber(mosquitto, "sensors/#")
    argv = ["--broker", mosquitto.url, *FLEET, "--format", fmt, "--senml-batch", "16", "--labels-topic", "",
            "--id-prefix", "plant1."]
    summary = run_cli(capsys, argv)
    got = decode(client.wait_for(summary["messages"]), fmt)
    expected = scenario_from_config(cli.fleet_config(parse(argv)), 200)
    assert summary["readings"] == expected.n_readings > 7000
    assert sorted(got) == sorted(s for s, ts in zip(expected.sensor_ids, expected.ts) if len(ts))
    for sensor, readings in got.items():
        ts, values = expected.series(sensor)
        assert [v for _, v in readings] == values.tolist()  # bit-exact, in order
        if fmt == "json":
            assert [t for t, _ in readings] == ts.tolist()
        elif fmt == "senml":
            np.testing.assert_allclose([t for t, _ in readings], ts, rtol=0, atol=1e-6)
    if fmt == "senml":
        packs = [json.loads(m.payload) for m in client.messages]
        assert all(len(p) == 16 for p in packs[:-1])
        assert all(p[0]["bn"] == "plant1." and "bn" not in p[1] for p in packs)
        assert max(len({r["n"] for r in p}) for p in packs) >= 8  # one pack, many sensors


def test_same_seed_publishes_the_same_payloads_and_labels(mosquitto, capsys, tmp_path):
    runs = []
    for name in ("a", "b"):
        client = subscriber(mosquitto, "sensors/#")
        labels = tmp_path / f"{name}.jsonl"
        summary = run_cli(capsys, ["--broker", mosquitto.url, *FLEET, "--format", "json", "--labels", str(labels)])
        messages = client.wait_for(summary["messages"])
        client.disconnect()
        by_topic = defaultdict(list)
        for m in messages:
            by_topic[m.topic].append(m.payload)
        runs.append((dict(by_topic), labels.read_text()))
    assert runs[0] == runs[1]
    assert runs[0][1].count("\n") > 3


def test_labels_written_as_jsonl_and_published(mosquitto, capsys, tmp_path):
    client = subscriber(mosquitto, "anomalyd/labels")
    path = tmp_path / "labels.jsonl"
    argv = ["--broker", mosquitto.url, *FLEET, "--format", "senml", "--labels", str(path), "--churn", "0.3"]
    summary = run_cli(capsys, argv)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == summary["labels"] == sum(summary["anomalies"].values()) > 5
    assert all(set(d) == {"sensor", "kind", "start_ts", "end_ts", "magnitude"} for d in lines)
    published = [json.loads(m.payload) for m in client.wait_for(len(lines))]
    assert published == lines
    expected = scenario_from_config(cli.fleet_config(parse(argv)), 200)
    key = lambda d: (d["sensor"], d["kind"], d["start_ts"])  # noqa: E731 - scenario clips end_ts at the end
    assert sorted(map(key, lines)) == sorted(key(lb.__dict__) for lb in expected.labels)


@pytest.mark.parametrize("pace", [["--rate", "2000"], ["--hz", "1", "--time-scale", "100"]], ids=["rate", "time-scale"])
def test_pacing_achieves_the_requested_rate(mosquitto, capsys, pace):
    client = subscriber(mosquitto, "sensors/#")
    sensors, seconds = (50, 3) if pace[0] == "--rate" else (20, 300)
    summary = run_cli(capsys, ["--broker", mosquitto.url, "--sensors", str(sensors), *pace, "--duration", str(seconds),
                               "--anomaly-rate", "0", "--format", "number", "--qos", "1"])
    assert summary["readings"] == 6000 and summary["target_rate"] == pytest.approx(2000)
    assert 1800 <= summary["achieved_rate"] <= 2100  # paced, not flat out (this runs >10k/s)
    assert 2.8 <= summary["duration_s"] <= 3.4
    assert len(client.wait_for(6000)) == 6000


def _write_csvs(folder: Path) -> dict[str, list[tuple[float, float]]]:
    folder.mkdir()
    t0 = 1372896000.0  # 2013-07-04 00:00:00 UTC
    a = [(t0 + 60 * i, 20.0 + i / 8) for i in range(10)]
    b = [(t0 + 30 + 60 * i, -1.5 * i) for i in range(10)]
    rows = [f"2013-07-04 00:{i:02d}:00,{v}" for i, (_, v) in enumerate(a)]
    (folder / "a.csv").write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    rows = [f"{t},{v}" for t, v in b]
    rows.insert(3, "not-a-time,1.0")
    (folder / "my sensor#1.csv").write_text("\n".join(rows) + "\n")
    return {"a": a, "my_sensor_1": b}


def test_replay_publishes_every_row_in_order(mosquitto, capsys, tmp_path):
    data = _write_csvs(tmp_path / "replay")
    client = subscriber(mosquitto, "sensors/#")
    summary = run_cli(capsys, ["--broker", mosquitto.url, "--replay", str(tmp_path / "replay"), "--speedup", "600",
                               "--format", "json"])
    assert summary["readings"] == 20 and summary["stopped_by"] == "end"
    assert 0.8 <= summary["duration_s"] <= 1.5  # 570 s of data at 600x
    messages = client.wait_for(20)
    arrived = [(m.topic, json.loads(m.payload)) for m in messages]
    assert [d["ts"] for _, d in arrived] == sorted(t for rows in data.values() for t, _ in rows)
    for sensor, rows in data.items():
        got = [(d["ts"], d["value"]) for topic, d in arrived if topic == f"sensors/{sensor}"]
        assert got == rows


def test_publisher_waits_out_a_broker_restart_without_losing_messages(mosquitto_persistent):
    broker = mosquitto_persistent
    sub = MqttTestClient(broker.host, broker.port, client_id="durable-sub", clean_session=False).connect()
    sub.subscribe("bp/#", qos=1)
    pub = MqttPublisher(BrokerAddress(broker.host, broker.port), client_id="bp-pub", qos=1, window=8)
    pub.connect()
    for i in range(5):
        pub.publish(f"bp/{i}", str(i).encode())
    assert pub.flush(10)
    sub.wait_for(5)
    broker.stop()
    done = threading.Event()

    def publish_rest():
        for i in range(5, 60):
            pub.publish(f"bp/{i}", str(i).encode())  # blocks while the broker is down
        pub.flush(20)
        done.set()

    worker = threading.Thread(target=publish_rest, daemon=True)
    worker.start()
    wait_until(lambda: pub.stats.backpressure_waits > 0, message="publisher blocked on the dead broker")
    assert not done.is_set()
    broker.restart()
    wait_until(done.is_set, timeout=30, message="publisher resumed after restart")
    wait_until(lambda: len({m.payload for m in sub.messages}) == 60, timeout=30, message="all 60 messages")
    first_seen = list(dict.fromkeys(int(m.payload) for m in sub.messages))  # QoS 1 may duplicate
    assert first_seen == list(range(60))
    assert pub.stats.reconnects >= 1
    pub.close()
    sub.disconnect()


def test_sigterm_stops_cleanly_with_a_summary(mosquitto):
    client = subscriber(mosquitto, "sensors/#")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "anomalyd.simulator", "--broker", mosquitto.url, "--sensors", "5", "--hz", "20",
         "--json", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        wait_until(lambda: client.count() >= 50, timeout=20, message="simulator publishing")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary["stopped_by"] == "signal" and summary["all_delivered"]
    assert len(client.wait_for(summary["readings"])) == summary["readings"] >= 50
