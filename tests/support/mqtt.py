"""A small MQTT client for tests: collects what it receives, waits on real acks.

connect() returns after CONNACK, subscribe() after SUBACK, publish() after the message
completed its QoS flow, so a test never needs a sleep to be sure the broker has it.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from typing import Callable, NamedTuple

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from .wait import wait_until


class Received(NamedTuple):
    topic: str
    payload: bytes
    retain: bool


class MqttTestClient:
    def __init__(
        self,
        host: str,
        port: int,
        client_id: str | None = None,
        *,
        clean_session: bool = True,
        timeout: float = 10.0,
    ) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.client_id = client_id or f"test-{uuid.uuid4().hex[:12]}"
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=clean_session,
        )
        self._client.max_inflight_messages_set(1000)
        self._lock = threading.Lock()
        self._messages: list[Received] = []
        self._subacks: dict[int, list] = {}
        self._connack: object | None = None
        self.callback_errors: list[BaseException] = []
        self._client.on_connect = self._guard(self._on_connect)
        self._client.on_subscribe = self._guard(self._on_subscribe)
        self._client.on_message = self._guard(self._on_message)
        self._ids = itertools.count()

    @classmethod
    def for_broker(cls, broker, **kwargs) -> "MqttTestClient":
        """Convenience: a connected client for a ``MosquittoBroker``."""
        client = cls(broker.host, broker.port, **kwargs)
        client.connect()
        return client

    # -- callbacks (network thread; an exception there would silently kill it) --------------
    def _guard(self, fn: Callable) -> Callable:
        def wrapper(*args):
            try:
                fn(*args)
            except BaseException as exc:  # noqa: BLE001 - recorded, checked by tests
                self.callback_errors.append(exc)

        return wrapper

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connack = reason_code

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        with self._lock:
            self._subacks[mid] = list(reason_codes)

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            self._messages.append(Received(msg.topic, bytes(msg.payload), bool(msg.retain)))

    # -- actions -----------------------------------------------------------------------------
    def connect(self) -> "MqttTestClient":
        self._client.connect(self.host, self.port, keepalive=30)
        self._client.loop_start()
        wait_until(lambda: self._connack is not None, self.timeout, message="CONNACK")
        if self._connack.is_failure:  # type: ignore[attr-defined]
            raise AssertionError(f"connect refused: {self._connack}")
        return self

    def subscribe(self, topic: str, qos: int = 1) -> None:
        rc, mid = self._client.subscribe(topic, qos)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise AssertionError(f"subscribe({topic!r}) failed: {mqtt.error_string(rc)}")
        codes = wait_until(lambda: self._subacks.get(mid), self.timeout, message=f"SUBACK {topic}")
        if any(code.is_failure for code in codes):
            raise AssertionError(f"subscription to {topic!r} refused: {codes}")

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> None:
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise AssertionError(f"publish to {topic!r} failed: {mqtt.error_string(info.rc)}")
        info.wait_for_publish(self.timeout)
        if not info.is_published():
            raise AssertionError(f"publish to {topic!r} not completed in {self.timeout}s")

    def disconnect(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> "MqttTestClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    # -- received ----------------------------------------------------------------------------
    @property
    def messages(self) -> list[Received]:
        with self._lock:
            return list(self._messages)

    def count(self) -> int:
        with self._lock:
            return len(self._messages)

    def messages_on(self, topic: str) -> list[Received]:
        return [m for m in self.messages if m.topic == topic]

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()

    def wait_for(self, count: int, timeout: float | None = None) -> list[Received]:
        """Wait until at least ``count`` messages arrived; return them all."""
        wait_until(
            lambda: self.count() >= count,
            timeout or self.timeout,
            message=lambda: f"{count} messages (got {self.count()})",
        )
        return self.messages
