"""A separate process that receives the output of the relay or the daemon and times it.

    python -m anomalyd.daemon.bench.collector HOST PORT FILTER EXPECTED MODE OUT.json

MODE ``count`` counts readings (one per message, or the items of an array) and records the
first and last arrival; ``latency`` also parses each result's ``ts`` (the publish time the
load generator put in the payload) to get reading-to-score latency. It prints READY once
subscribed and writes OUT.json when EXPECTED readings arrived or on SIGTERM.
"""
from __future__ import annotations

import json
import signal
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def readings_in(payload: bytes) -> int:
    """Results in one message: an object, or an array of objects (each has a "sensor" key)."""
    return payload.count(b'"sensor"') if payload[:1] == b"[" else 1


def main(argv: list[str]) -> int:
    host, port, topic_filter, expected, mode, out = argv[0], int(argv[1]), argv[2], int(argv[3]), argv[4], argv[5]
    done = threading.Event()
    state = {"count": 0, "first": None, "last": None, "latencies": []}

    def on_message(client, userdata, message):
        now = time.time()
        n = readings_in(message.payload)
        if state["first"] is None:
            state["first"] = now
        state["last"] = now
        state["count"] += n
        if mode == "latency":
            body = json.loads(message.payload)
            items = body if isinstance(body, list) else [body]
            state["latencies"].extend(now - item["ts"] for item in items)
        if state["count"] >= expected:
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-collector-{time.monotonic_ns()}")
    client.on_message = on_message
    client.on_subscribe = lambda *args: print("READY", flush=True)
    client.on_connect = lambda cl, *args: cl.subscribe(topic_filter, qos=0)
    signal.signal(signal.SIGTERM, lambda *args: done.set())
    client.connect(host, port)
    client.loop_start()
    done.wait()
    client.loop_stop()
    with open(out, "w") as handle:
        json.dump(state, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
