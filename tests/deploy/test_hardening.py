"""The daemon under the unit's seccomp hardening: MemoryDenyWriteExecute=,
SystemCallFilter= and RestrictAddressFamilies= as systemd would install them (sandbox.py),
since systemd itself is not PID 1 here. LiteRT/XNNPACK must score without W+X memory."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support import MqttTestClient, wait_until

from .helpers import UNIT, scrape, start_daemon, start_simulator

SANDBOX = [sys.executable, str(Path(__file__).with_name("sandbox.py")), str(UNIT), "--"]

PROBE = r"""
import mmap, os, socket
def attempt(name, action):
    try:
        action()
        print(name, "allowed")
    except OSError as exc:
        print(name, "refused", exc.errno)
attempt("wx-mmap", lambda: mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC))
attempt("rw-mmap", lambda: mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE))
attempt("packet-socket", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW))
attempt("inet-socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close())
attempt("chroot", lambda: os.chroot("/"))
"""


def test_sandbox_applies_the_rules():
    """Without this, the daemon test below could pass because nothing was enforced."""
    result = subprocess.run([*SANDBOX, sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    verdicts = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert verdicts["wx-mmap"].startswith("refused"), verdicts
    assert verdicts["rw-mmap"] == "allowed"
    assert verdicts["packet-socket"].startswith("refused")
    assert verdicts["inet-socket"] == "allowed"
    if os.geteuid() == 0:  # root may chroot, unless @privileged is filtered out
        assert verdicts["chroot"].startswith("refused")
    assert "MemoryDenyWriteExecute" in result.stderr and "SystemCallFilter" in result.stderr


def test_daemon_scores_and_checkpoints_under_the_unit_rules(tmp_path, mosquitto):
    daemon, metrics_url = start_daemon(tmp_path, mosquitto.url, prefix=SANDBOX)
    try:
        assert "sandbox: MemoryDenyWriteExecute" in daemon.log()
        with MqttTestClient.for_broker(mosquitto) as scores:
            scores.subscribe("anomalyd/scores/#")
            simulator = start_simulator(tmp_path, mosquitto.url, "--sensors", "5", "--hz", "5", "--duration", "40",
                                        "--fast")
            assert simulator.proc.wait(60) == 0, simulator.log()
            scores.wait_for(1000, timeout=60)  # 5 sensors x 200 readings, each scored and published
        metrics = wait_until(lambda: (m := scrape(metrics_url)).get(
            "anomalyd_checkpoint_last_success_timestamp_seconds", 0) > 0 and m, 30,
            message=lambda: f"a checkpoint written under the sandbox; log:\n{daemon.log()[-3000:]}")
        assert metrics["anomalyd_readings_scored_total"] == 1000
        assert metrics["anomalyd_checkpoint_failing"] == 0
        assert metrics.get("anomalyd_journal_failures_total", 0) == 0
    finally:
        code = daemon.stop()
    assert code == 0, daemon.log()[-3000:]
    assert "Traceback" not in daemon.log()
