"""Timing helpers and the machine description every benchmark result carries."""
from __future__ import annotations

import os
import platform
import time
from datetime import datetime, timezone
from typing import Callable


def time_per_call(function: Callable[[], object], min_seconds: float = 0.5, min_calls: int = 5,
                  max_calls: int = 100_000, repeats: int = 3) -> float:
    """Median over ``repeats`` rounds of the mean seconds per call (after one warm-up call).

    Each round runs at least ``min_calls`` calls and at least ``min_seconds``; the median of
    rounds damps the noise of a shared machine.
    """
    function()
    rounds = []
    for _ in range(repeats):
        calls, started = 0, time.perf_counter()
        while calls < min_calls or (time.perf_counter() - started < min_seconds and calls < max_calls):
            function()
            calls += 1
        rounds.append((time.perf_counter() - started) / calls)
    return sorted(rounds)[len(rounds) // 2]


def machine() -> dict:
    """Where and when a figure was measured: figures are only comparable within one run."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            names = [line.split(":", 1)[1].strip() for line in info if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
