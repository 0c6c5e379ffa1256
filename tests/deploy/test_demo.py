"""`anomalyd demo` against the fixture broker: the live view shows readings flowing, a bounded
run exits 0, and Ctrl-C (SIGINT) stops the daemon and the simulator it started."""
from __future__ import annotations

import re
import signal
import subprocess
import threading
from pathlib import Path

from support import free_port, wait_until

from .helpers import CLI

LINE = re.compile(r"readings/s\s+([\d.]+) \| active sensors (\d+)")


class DemoRun:
    def __init__(self, broker_url: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*CLI, "demo", "--broker", broker_url, "--metrics-addr", f"127.0.0.1:{free_port()}", "--warmup", "30",
             "--sensors", "20", *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def rates(self) -> list[float]:
        return [float(m.group(1)) for line in list(self.lines) if (m := LINE.search(line))]

    def workdir(self) -> Path:
        def first_line():
            line = next((l for l in self.lines if "work files in" in l), None)
            assert line or self.proc.poll() is None, f"the demo exited at once:\n{self.output()}"
            return line

        first = wait_until(first_line, 30, message=lambda: f"the demo's first line; got {self.lines}")
        return Path(first.rsplit("work files in ", 1)[1].strip())

    def finish(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout)
        self.reader.join(5)
        return code

    def output(self) -> str:
        return "\n".join(self.lines)


def demo_children(demo: "DemoRun", workdir: Path) -> list[str]:
    """Command lines of the demo's live children: the daemon names the work directory, the
    simulator a client id made from the demo's pid."""
    return processes_using(str(workdir)) + processes_using(f"anomalyd-demo-sim-{demo.proc.pid}")


def processes_using(needle: str) -> list[str]:
    """Command lines of live processes that contain needle."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if needle in cmdline:
                found.append(cmdline)
    return found


def test_bounded_demo_shows_readings_and_exits_cleanly(mosquitto):
    demo = DemoRun(mosquitto.url, "--duration", "6")
    workdir = demo.workdir()
    assert demo.finish() == 0, demo.output()
    rates = demo.rates()
    assert rates and max(rates) > 0, demo.output()
    assert "stopped the simulator and the daemon" in demo.output()
    assert not workdir.exists()  # temporary config, state and logs removed
    assert demo_children(demo, workdir) == []


def test_ctrl_c_stops_the_children(mosquitto):
    demo = DemoRun(mosquitto.url)
    workdir = demo.workdir()
    try:
        wait_until(lambda: any(rate > 0 for rate in demo.rates()), 60,
                   message=lambda: f"non-zero readings/s in the live view:\n{demo.output()}")
        children = demo_children(demo, workdir)
        assert any(" run " in c for c in children) and any(" simulate " in c for c in children), children
        demo.proc.send_signal(signal.SIGINT)
        assert demo.finish() == 0, demo.output()
    finally:
        if demo.proc.poll() is None:  # a failed assertion above: still stop the children cleanly
            demo.proc.send_signal(signal.SIGINT)
            try:
                demo.proc.wait(60)
            except subprocess.TimeoutExpired:
                demo.proc.kill()
    assert demo_children(demo, workdir) == [], "the demo left children running"
    assert "stopped the simulator and the daemon" in demo.output()
