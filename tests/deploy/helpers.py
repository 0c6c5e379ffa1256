"""Shared by the deployment tests: paths, required tools, and real processes (the daemon,
the simulator, Prometheus) started on free ports and stopped afterwards."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from support import free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
UNIT = REPO / "systemd" / "anomalyd.service"
PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
CLI = [sys.executable, "-m", "anomalyd.daemon.cli"]


def require_tool(path: str, package: str) -> str:
    """The tool's path; fails the test (never skips) when it is missing."""
    found = path if os.access(path, os.X_OK) else shutil.which(Path(path).name)
    if not found:
        pytest.fail(f"{path} not found: run scripts/setup.sh as root (it installs the Debian package "
                    f"'{package}'), then run the tests again.", pytrace=False)
    return found


class Child:
    """A subprocess with its output in a log file; terminated (then killed) on stop()."""

    def __init__(self, name: str, argv: list[str], log_dir: Path, env: dict | None = None) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 40.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def http_get(url: str, timeout: float = 2.0) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read()
    except OSError:
        return None


def scrape(url: str) -> dict[str, float]:
    """Unlabelled view of a /metrics page: sample name -> value (labelled samples summed)."""
    from prometheus_client.parser import text_string_to_metric_families

    body = http_get(url)
    if body is None:
        return {}
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            values[sample.name] = values.get(sample.name, 0.0) + sample.value
    return values


def daemon_config(broker_url: str, metrics_port: int, state_dir: Path, **overrides) -> dict:
    """A small, fast configuration for tests (warm-up of 30 readings, frequent checkpoints)."""
    config = {
        "mqtt": {"broker": broker_url, "client_id": f"anomalyd-test-{os.getpid()}-{metrics_port}"},
        "metrics": {"address": f"127.0.0.1:{metrics_port}", "top_k": 10},
        "state": {"directory": str(state_dir), "checkpoint_interval": 2.0},
        "scoring": {"warmup": 30},
        "detector": {"batch_size": 64, "max_sensors": 1000},
    }
    for section, values in overrides.items():
        config.setdefault(section, {}).update(values)
    return config


def start_daemon(tmp_path: Path, broker_url: str, prefix: list[str] | None = None, **overrides) -> tuple[Child, str]:
    """``anomalyd run`` as a subprocess; returns it and its metrics URL once it is connected."""
    port = free_port()
    config_path = tmp_path / "anomalyd.yaml"
    config_path.write_text(yaml.safe_dump(daemon_config(broker_url, port, tmp_path / "state", **overrides)))
    child = Child("daemon", [*(prefix or []), *CLI, "run", "--config", str(config_path)], tmp_path)
    url = f"http://127.0.0.1:{port}/metrics"
    wait_until(lambda: not child.alive() or scrape(url).get("anomalyd_mqtt_connected") == 1.0, 60, 0.1,
               message=lambda: f"daemon connected to the broker; log:\n{child.log()[-3000:]}")
    assert child.alive(), f"the daemon exited at start-up:\n{child.log()[-3000:]}"
    return child, url


def start_simulator(tmp_path: Path, broker_url: str, *args: str) -> Child:
    return Child("simulator", [*CLI, "simulate", "--broker", broker_url, "--quiet", *args], tmp_path)


class Prometheus:
    """A real Prometheus on a free port with its own storage, built from the shipped
    prometheus.yml: same job names and rule files, fast intervals, the test daemon as target."""

    def __init__(self, tmp_path: Path, target: str, interval: str = "1s") -> None:
        binary = require_tool(PROMETHEUS, "prometheus")
        config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
        config["global"] = {"scrape_interval": interval, "evaluation_interval": interval}
        config["rule_files"] = [str(PROMETHEUS_DIR / path) for path in config["rule_files"]]
        config.pop("alerting", None)
        jobs = {job["job_name"]: job for job in config["scrape_configs"]}
        jobs["anomalyd"]["static_configs"] = [{"targets": [target]}]
        config["scrape_configs"] = [jobs["anomalyd"]]
        workdir = tmp_path / "prometheus"
        workdir.mkdir()
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.child = Child("prometheus", [
            binary, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"], tmp_path)
        wait_until(lambda: not self.child.alive() or http_get(f"{self.url}/-/ready") is not None, 30, 0.1,
                   message=lambda: f"prometheus ready; log:\n{self.child.log()[-3000:]}")
        assert self.child.alive(), f"prometheus exited at start-up:\n{self.child.log()[-3000:]}"

    def query(self, expr: str) -> dict:
        """The /api/v1/query answer (status, and data or error) for an instant query."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:  # 400/422: the answer still explains the error
            return json.load(exc)

    def stop(self) -> None:
        self.child.stop(10)
