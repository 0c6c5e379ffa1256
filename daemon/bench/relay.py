"""The baseline relay: a bare paho subscriber that parses each reading and publishes one
result message, doing nothing else. It is the ceiling for a Python MQTT service here.

Same MQTT behaviour as the daemon where it matters for cost: QoS 1 in with a persistent
session, QoS 1 out, a result per reading (or one array per SenML message). Run as
``python -m anomalyd.daemon.bench.relay HOST PORT CLIENT_ID``; it prints READY once subscribed.
"""
from __future__ import annotations

import json
import signal
import sys
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


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
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)  # unbounded: never drop a result

    def on_message(cl, userdata, message):
        try:
            topic, text = result_for(message.topic, message.payload)
            cl.publish(topic, text, qos=1)
        except Exception as exc:  # noqa: BLE001 - an escaping exception would kill the loop
            print(f"relay error: {exc}", file=sys.stderr)

    def on_connect(cl, userdata, flags, reason_code, properties):
        cl.subscribe([("sensors/+", 1)])

    client.on_message = on_message
    client.on_connect = on_connect
    client.on_subscribe = lambda *args: print("READY", flush=True)
    signal.signal(signal.SIGTERM, lambda *args: client.disconnect())
    client.connect(host, port)
    client.loop_forever()
    time.sleep(0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
