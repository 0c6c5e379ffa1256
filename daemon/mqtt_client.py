"""A paho client that reads its socket in chunks.

paho (2.x) reads every incoming packet with at least three ``recv`` system calls: one byte of
packet type, the remaining-length bytes one at a time, then the body. Under one-reading-per-
message load that is six system calls per reading (its PUBLISH and the PUBACK of its score),
and the largest single cost in the daemon's network thread (18% of the process's samples in a
py-spy profile of the e2e drain). This client reads up to ``CHUNK`` bytes per system call and
hands paho the bytes it asks for from that buffer.

paho only reads when select() reports the socket readable, and reads at most a few packets per
wake-up, so bytes left in the buffer would wait for the next network event (with an idle
connection, until the keepalive). ``loop_read`` therefore keeps reading while the buffer holds
bytes. What is buffered belongs to one connection: closing the socket drops it.

It overrides two private methods of paho's ``Client`` (``_sock_recv``, ``_sock_close``);
setup.cfg pins paho-mqtt below 3, and tests/daemon/test_mqtt_client.py checks the behaviour
against a real broker.
"""
from __future__ import annotations

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

CHUNK = 65_536


class ChunkedReadClient(mqtt.Client):
    def __init__(self, *args, **kwargs) -> None:
        self._chunk = b""
        self._chunk_pos = 0
        self.socket_reads = 0  # recv system calls made, for tests and profiling
        super().__init__(*args, **kwargs)

    def buffered(self) -> int:
        """Bytes received from the socket and not yet handed to paho."""
        return len(self._chunk) - self._chunk_pos

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._chunk_pos >= len(self._chunk):
            data = super()._sock_recv(CHUNK)  # BlockingIOError when nothing waits: paho expects it
            self.socket_reads += 1
            if not data:
                return data  # the peer closed the connection
            self._chunk, self._chunk_pos = data, 0
        start = self._chunk_pos
        self._chunk_pos = min(start + bufsize, len(self._chunk))
        return self._chunk[start:self._chunk_pos]

    def _sock_close(self) -> None:
        self._chunk, self._chunk_pos = b"", 0
        super()._sock_close()

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        result = super().loop_read(max_packets)
        while result == MQTTErrorCode.MQTT_ERR_SUCCESS and self._sock is not None and self.buffered():
            result = super().loop_read(max_packets)
        return result
