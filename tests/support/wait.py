"""Poll a condition with a deadline: tests wait for events, they never sleep for them."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.01,
    message: str | Callable[[], str] = "condition",
) -> T:
    """Return the first truthy value of ``predicate()``; AssertionError after ``timeout`` s.

    ``message`` may be a callable so the failure text can describe the state at timeout
    (e.g. how many messages did arrive).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for: {text}")
        time.sleep(interval)
