"""The baseline relay: a bare paho subscriber that parses each reading and publishes one
result message, doing nothing else. It is the ceiling for a Python MQTT service here.

Same MQTT behaviour as the daemon where it matters for cost: QoS 1 in with a persistent
session, QoS 1 out without losing a result, a result per reading (or one array per SenML
message); everything runs in one thread (paho's loop driven by hand), with no GIL contention. Run as
``python -m anomalyd.daemon.bench.relay HOST PORT CLIENT_ID``; it prints READY once subscribed.
"""
from __future__ import annotations

import json
import signal
import sys
from collections import deque

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

MAX_OUTSTANDING = 1000  # as the daemon's default mqtt.max_inflight_messages


def result_for(topic: str, payload: bytes) -> tuple[str, str]:
    document = json.loads(payload)
    if isinstance(document, list):  # SenML: one array of results for the message
        base = document[0].get("bt", 0.0)
        items = [{"sensor": r.get("n"), "ts": base + r.get("t", 0.0), "value": r["v"], "score": 0.0}
                 for r in document]
        return "relay/batch", json.dumps(items)
    sensor = topic.rsplit("/", 1)[-1]
    return f"relay/scores/{sensor}", json.dumps({"sensor": sensor, "ts": document["ts"], "value": document["value"],
                                                  "score": 0.0, "anomaly": False})


def main(argv: list[str]) -> int:
    host, port, client_id = argv[0], int(argv[1]), argv[2]
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    # The same publishing discipline as the daemon, or the baseline would lose results: paho's
    # own in-flight window is off (it scans every queued message per PUBACK), at most
    # MAX_OUTSTANDING results are handed to paho (it has 65,535 message ids and drops a
    # message whose id is still in use), the rest wait here.
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    results: deque[tuple[str, str]] = deque()
    outstanding = [0]
    running = [True]

    def on_message(cl, userdata, message):
        try:
            results.append(result_for(message.topic, message.payload))
        except Exception as exc:  # noqa: BLE001 - an escaping exception would kill the loop
            print(f"relay error: {exc}", file=sys.stderr)

    def on_publish(cl, userdata, mid, reason_code, properties):
        outstanding[0] -= 1

    client.on_message = on_message
    client.on_publish = on_publish
    client.on_connect = lambda cl, *args: cl.subscribe([("sensors/+", 1)])
    client.on_subscribe = lambda *args: print("READY", flush=True)
    signal.signal(signal.SIGTERM, lambda *args: running.__setitem__(0, False))
    client.connect(host, port)
    while running[0]:
        client.loop(0.0 if results else 0.01)
        while results and outstanding[0] < MAX_OUTSTANDING:
            topic, text = results.popleft()
            client.publish(topic, text, qos=1)
            outstanding[0] += 1
    client.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
