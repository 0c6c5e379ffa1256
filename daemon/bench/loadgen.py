"""The paced load generator of the latency measurement, in a process of its own.

    python -m anomalyd.daemon.bench.loadgen HOST PORT RATE COUNT SENSORS

Publishes COUNT JSON readings round-robin over SENSORS sensors at RATE readings/s, QoS 1, each
stamped with the wall-clock time at the moment it is handed to the client ("ts"), and exits
once the broker has acknowledged them all. Single-threaded, paho's loop driven by hand like the
relay: with a network thread, every publish wakes that thread and the two fight over the GIL,
so on a small machine readings waited inside the generator after being stamped and the
measured latency was the generator's own backlog (seen here: a bare relay at "p50 1.3 s").
"""
from __future__ import annotations

import sys
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

MAX_OUTSTANDING = 1000  # unacknowledged publishes; paho refuses to reuse a message id in flight


def main(argv: list[str]) -> int:
    host, port, rate, count, sensors = argv[0], int(argv[1]), float(argv[2]), int(argv[3]), int(argv[4])
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-loadgen-{time.monotonic_ns()}")
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    acked = [0]
    client.on_publish = lambda *args: acked.__setitem__(0, acked[0] + 1)
    client.connect(host, port)
    started, sent = time.monotonic(), 0
    while acked[0] < count:
        due = min(count, int((time.monotonic() - started) * rate) + 1)
        while sent < due and sent - acked[0] < MAX_OUTSTANDING:
            value = (sent * 7919) % 1000 / 100.0
            client.publish(f"sensors/b{sent % sensors:04d}", f'{{"value":{value!r},"ts":{time.time()!r}}}', qos=1)
            sent += 1
        # Wait for acknowledgements or until the next reading is due, whichever is first.
        client.loop(max(0.0, min(0.01, started + sent / rate - time.monotonic())) if sent < count else 0.01)
    client.disconnect()
    print("DONE", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
