"""Logging: plain text or one JSON object per line, and rate limiting for repeated problems."""
from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Callable

LOGGER_NAME = "anomalyd"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": round(record.created, 3), "level": record.levelname, "logger": record.name,
                 "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup(level: str = "INFO", fmt: str = "text", stream=None) -> logging.Logger:
    """Configure the ``anomalyd`` logger once (later calls only change level and format)."""
    logger = logging.getLogger(LOGGER_NAME)
    handler = next((h for h in logger.handlers if getattr(h, "_anomalyd", False)), None)
    if handler is None:
        handler = logging.StreamHandler(stream or sys.stderr)
        handler._anomalyd = True
        logger.addHandler(handler)
        logger.propagate = False
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.setLevel(level.upper())
    return logger


class RateLimiter:
    """Lets one message per key through every ``interval`` seconds and counts the rest, so a
    flood of bad messages costs a log line per interval, not one per message."""

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval, self.clock = interval, clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> tuple[bool, int]:
        """(may log now, how many were suppressed since the last time it could)."""
        now = self.clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False, 0
            self._last[key] = now
            return True, self._suppressed.pop(key, 0)

    def log(self, logger: logging.Logger, level: int, key: str, message: str, *args) -> None:
        allowed, suppressed = self.allow(key)
        if allowed:
            suffix = f" ({suppressed} similar suppressed)" if suppressed else ""
            logger.log(level, message + suffix, *args)
