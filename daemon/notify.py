"""systemd's notification protocol (sd_notify) without extra dependencies.

With ``NOTIFY_SOCKET`` unset (not under systemd) every call is a no-op. A leading '@' names
an abstract-namespace socket.
"""
from __future__ import annotations

import os
import socket


class Notifier:
    def __init__(self, environ: dict | None = None) -> None:
        environ = os.environ if environ is None else environ
        address = environ.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        usec = environ.get("WATCHDOG_USEC", "")
        # Ping at half the interval systemd waits for, as sd_watchdog_enabled(3) advises.
        self.watchdog_interval = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 else None
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) if self._address else None

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def send(self, *fields: str) -> bool:
        if self._socket is None:
            return False
        try:
            self._socket.sendto("\n".join(fields).encode(), self._address)
            return True
        except OSError:
            return False  # systemd gone or socket full: never let this take the daemon down

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def reloading(self) -> bool:
        return self.send("RELOADING=1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
