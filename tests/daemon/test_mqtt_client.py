"""The chunked-read paho client against a real mosquitto: every byte reaches paho exactly once
and in order, in far fewer system calls than packets; nothing waits in the buffer for the next
network event; a reconnect starts from an empty buffer."""
from __future__ import annotations

import threading
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from anomalyd.daemon.mqtt_client import ChunkedReadClient
from support.wait import wait_until


class Subscriber:
    def __init__(self, broker, topic: str, qos: int, clean_session: bool = True) -> None:
        self.payloads: list[bytes] = []
        self.subscribed = threading.Event()
        self.client = ChunkedReadClient(CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex[:8]}",
                                        clean_session=clean_session)
        self.client.on_connect = lambda client, *args: client.subscribe(topic, qos)
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        self.client.on_message = lambda client, userdata, message: self.payloads.append(message.payload)
        self.client.reconnect_delay_set(1, 1)
        self.broker = broker

    def start(self) -> "Subscriber":
        self.subscribed.clear()
        self.client.connect(self.broker.host, self.broker.port, keepalive=60)
        self.client.loop_start()
        assert self.subscribed.wait(10), "no SUBACK"
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish_all(broker, topic: str, payloads: list[bytes], qos: int) -> None:
    """Hand every payload to paho at once and wait until the broker has them all."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    client.max_inflight_messages_set(0)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=qos) for payload in payloads]
        for info in infos:
            info.wait_for_publish(10)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def numbered(count: int, size: int = 40) -> list[bytes]:
    return [f"{i:08d}".encode().ljust(size, b".") for i in range(count)]


def test_a_backlog_arrives_whole_in_order_with_few_socket_reads(mosquitto):
    subscriber = Subscriber(mosquitto, "chunked/backlog", qos=1, clean_session=False).start()
    subscriber.stop()  # the persistent session queues the backlog at the broker
    expected = numbered(3000) + [b"x" * 20_000, b"", b"\x00\xff" * 5000]  # large, empty, binary
    publish_all(mosquitto, "chunked/backlog", expected, qos=1)
    subscriber.start()
    try:
        wait_until(lambda: len(subscriber.payloads) >= len(expected), 20,
                   message=lambda: f"{len(expected)} messages (got {len(subscriber.payloads)})")
        assert subscriber.payloads == expected
        # paho alone makes at least three recv calls per packet
        assert subscriber.client.socket_reads * 2 < len(expected), subscriber.client.socket_reads
    finally:
        subscriber.stop()


def test_packets_that_arrive_together_on_an_idle_connection_are_all_delivered(mosquitto):
    """paho reads one packet per wake-up on an idle connection; the rest of a chunk must not
    wait for the next network event (here that would be the 60 s keepalive)."""
    subscriber = Subscriber(mosquitto, "chunked/idle", qos=0).start()
    try:
        for round_ in range(5):
            expected = numbered(30)
            subscriber.payloads.clear()
            publish_all(mosquitto, "chunked/idle", expected, qos=0)
            wait_until(lambda: len(subscriber.payloads) >= len(expected), 5,
                       message=lambda: f"round {round_}: 30 messages (got {len(subscriber.payloads)})")
            assert subscriber.payloads == expected
    finally:
        subscriber.stop()


def test_after_a_broker_restart_the_session_continues_without_stale_bytes(mosquitto_persistent):
    broker = mosquitto_persistent
    subscriber = Subscriber(broker, "chunked/restart", qos=1, clean_session=False).start()
    try:
        first = numbered(200)
        publish_all(broker, "chunked/restart", first, qos=1)
        wait_until(lambda: len(subscriber.payloads) >= len(first), 10)
        broker.restart()
        wait_until(subscriber.client.is_connected, 20, message="reconnect")
        second = [payload.replace(b".", b"!") for payload in numbered(200)]
        publish_all(broker, "chunked/restart", second, qos=1)
        wait_until(lambda: set(second) <= set(subscriber.payloads), 10,
                   message=lambda: f"second batch (got {len(subscriber.payloads)} in all)")
        # QoS 1 may deliver twice, never garbled: every payload is one that was published
        assert set(subscriber.payloads) == set(first) | set(second)
    finally:
        subscriber.stop()
