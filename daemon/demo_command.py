"""``anomalyd demo``: the daemon and the simulator side by side, with a live view.

Starts ``anomalyd run`` (temporary config and state directory) and ``anomalyd simulate``
(sensors with injected anomalies) as child processes against a broker that is already
running, then refreshes a view about once a second: readings per second, active sensors,
anomalies found, the latest flagged sensors (from the scores on ``anomalyd/scores/#``, matched
against the simulator's ground truth on ``anomalyd/labels``) and the metrics URL.
Ctrl-C (or ``--duration``) stops the simulator, then the daemon, and removes the temporary files.
On a terminal the view redraws in place; otherwise it prints one line per refresh.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

SCORES_TOPIC = "anomalyd/scores/#"
LABELS_TOPIC = "anomalyd/labels"
LABEL_GRACE = 30.0  # seconds after an injected anomaly ends in which a flag still counts as a hit


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="broker to use (default %(default)s)")
    parser.add_argument("--sensors", type=int, default=50, help="simulated sensors (default %(default)s)")
    parser.add_argument("--hz", type=float, default=5.0, help="readings per second per sensor (default %(default)s)")
    parser.add_argument("--anomaly-rate", type=float, default=30.0,
                        help="injected anomalies per sensor-hour (default %(default)s)")
    parser.add_argument("--warmup", type=int, default=100,
                        help="readings per sensor before the daemon may flag it (default %(default)s)")
    parser.add_argument("--metrics-addr", default="127.0.0.1:9808",
                        help="daemon's metrics endpoint; a free port is used if it is taken (default %(default)s)")
    parser.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    parser.add_argument("--refresh", type=float, default=1.0, help="seconds between view refreshes (default 1)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (config, state, logs)")


def run(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="anomalyd-demo-"))
    demo = Demo(args, workdir)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return demo.run(stop)
    finally:
        demo.shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if args.keep:
            print(f"demo files kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class Flag:
    at: float
    sensor: str
    score: float
    value: float
    injected: str | None  # kind of the simulator's anomaly covering this reading, if any


@dataclass
class Feed:
    """What the view client saw on the broker (filled on paho's network thread)."""

    flags: collections.deque = field(default_factory=lambda: collections.deque(maxlen=8))
    flagged: int = 0
    hits: int = 0  # flagged readings inside an injected anomaly (or just after it)
    injected: int = 0
    labels: dict = field(default_factory=lambda: collections.defaultdict(list))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_message(self, _client, _userdata, message) -> None:
        try:  # an exception here would silently kill paho's network thread
            doc = json.loads(message.payload)
            with self.lock:
                if message.topic == LABELS_TOPIC:
                    if doc.get("kind") not in ("appear", "vanish"):
                        self.injected += 1
                        self.labels[doc["sensor"]].append((doc["start_ts"], doc["end_ts"], doc["kind"]))
                elif doc.get("anomaly"):
                    injected = self._injected(doc["sensor"], doc["ts"])
                    self.flagged += 1
                    self.hits += injected is not None
                    self.flags.appendleft(Flag(time.time(), doc["sensor"], float(doc["score"]),
                                               float(doc["value"]), injected))
        except (ValueError, KeyError, TypeError):
            pass

    def _injected(self, sensor: str, ts: float) -> str | None:
        for start, end, kind in self.labels.get(sensor, ()):
            if start <= ts <= end + LABEL_GRACE:
                return kind
        return None


class Demo:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args, self.workdir = args, workdir
        self.children: list[tuple[str, subprocess.Popen]] = []
        self.feed = Feed()
        self.view_client = None
        self.tty = sys.stdout.isatty()

    # -- start ---------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> int:
        from anomalyd.daemon.config import BrokerAddress

        args = self.args
        broker = BrokerAddress.parse(args.broker)
        host, port = _metrics_address(args.metrics_addr)
        self.metrics_url = f"http://{host}:{port}/metrics"
        config = self.workdir / "config.yaml"
        config.write_text(json.dumps({  # JSON is YAML
            "mqtt": {"broker": args.broker, "client_id": "anomalyd-demo"},
            "metrics": {"address": f"{host}:{port}"},
            "state": {"directory": str(self.workdir / "state")},
            "scoring": {"warmup": args.warmup},
            "detector": {"batch_size": 256, "max_sensors": max(1000, 2 * args.sensors)},
        }, indent=2))
        print(f"anomalyd demo: broker {broker.redacted()}, work files in {self.workdir}", flush=True)
        self._start("daemon", ["run", "--config", str(config)])
        if not self._wait_daemon(stop):
            return 0 if stop.is_set() else 1
        self.view_client = self._connect_view(broker)
        # Inject anomalies only once the daemon's per-sensor warm-up is over (plus a margin).
        quiet_start = args.warmup / args.hz + 10
        self._start("simulator", ["simulate", "--broker", args.broker, "--sensors", str(args.sensors),
                                  "--hz", str(args.hz), "--anomaly-rate", str(args.anomaly_rate),
                                  "--warmup", f"{quiet_start:g}", "--client-id", f"anomalyd-demo-sim-{os.getpid()}",
                                  "--quiet"])
        return self._loop(stop)

    def _start(self, name: str, argv: list[str]) -> None:
        log = open(self.workdir / f"{name}.log", "wb")
        # Own session: Ctrl-C reaches only the demo, which then stops the children in order
        # (simulator first, so the daemon scores what is queued and checkpoints cleanly).
        proc = subprocess.Popen([sys.executable, "-m", "anomalyd.daemon.cli", *argv], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self.children.append((name, proc))

    def _wait_daemon(self, stop: threading.Event, timeout: float = 120.0) -> bool:
        """Until the daemon serves metrics and is connected to the broker."""
        deadline = time.monotonic() + timeout
        while not stop.is_set() and time.monotonic() < deadline:
            if self._dead_child():
                return False
            sample = _scrape(self.metrics_url)
            if sample.get("anomalyd_mqtt_connected") == 1.0:
                return True
            stop.wait(0.2)
        if not stop.is_set():
            print(f"anomalyd demo: the daemon did not connect to the broker within {timeout:.0f} s", file=sys.stderr)
            self._tail("daemon")
        return False

    def _connect_view(self, broker):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"anomalyd-demo-view-{os.getpid()}")
        if broker.username:
            client.username_pw_set(broker.username, broker.password)
        if broker.tls:
            client.tls_set()
        client.on_message = self.feed.on_message
        client.on_connect = lambda c, *_: c.subscribe([(SCORES_TOPIC, 0), (LABELS_TOPIC, 1)])
        client.connect(broker.host, broker.port, keepalive=30)
        client.loop_start()
        return client

    # -- live view -------------------------------------------------------------------------------
    def _loop(self, stop: threading.Event) -> int:
        started = time.monotonic()
        last = (started, _scrape(self.metrics_url))
        while not stop.wait(self.args.refresh):
            dead = self._dead_child()
            if dead:
                return 1
            now, sample = time.monotonic(), _scrape(self.metrics_url)
            self._render(now - started, sample, last, now)
            last = (now, sample)
            if self.args.duration is not None and now - started >= self.args.duration:
                break
        return 0

    def _render(self, elapsed: float, sample: dict, last: tuple[float, dict], now: float) -> None:
        then, before = last
        span = max(now - then, 1e-9)
        rate = (sample.get("anomalyd_readings_scored_total", 0.0) - before.get("anomalyd_readings_scored_total", 0.0)) / span
        active = int(sample.get("anomalyd_active_sensors", 0))
        warming = int(sample.get("anomalyd_warmup_sensors", 0))
        anomalies = int(sample.get("anomalyd_anomalies_total", 0))
        scored = int(sample.get("anomalyd_readings_scored_total", 0))
        mqtt = "connected" if sample.get("anomalyd_mqtt_connected") == 1.0 else "DISCONNECTED"
        with self.feed.lock:
            flags = list(self.feed.flags)
            injected, flagged, hits = self.feed.injected, self.feed.flagged, self.feed.hits
        if not self.tty:
            latest = ", ".join(f"{f.sensor} ({f.score:.2f})" for f in flags[:3]) or "none yet"
            print(f"[{elapsed:5.0f}s] readings/s {rate:7.1f} | active sensors {active} | anomalies {anomalies} "
                  f"| injected {injected} | mqtt {mqtt} | latest flagged: {latest}", flush=True)
            return
        lines = [
            f"anomalyd demo  {elapsed:5.0f} s   (Ctrl-C to stop)",
            "",
            f"  readings/s        {rate:10.1f}",
            f"  active sensors    {active:10d}   ({warming} still in warm-up)",
            f"  readings scored   {scored:10d}",
            f"  anomalies found   {anomalies:10d}   (simulator injected {injected} anomalies so far)",
            f"  flags seen        {flagged:10d}   ({hits} during or just after an injected anomaly)",
            f"  mqtt              {mqtt:>10}",
            f"  metrics           {self.metrics_url}",
            "",
            "  latest flagged sensors (anomalyd/scores/#, anomaly=true):",
        ]
        for flag in flags:
            clock = time.strftime("%H:%M:%S", time.localtime(flag.at))
            truth = f"injected {flag.injected}" if flag.injected else "no injected anomaly"
            lines.append(f"    {clock}  {flag.sensor:<12} score {flag.score:5.3f}  value {flag.value:12.4g}  {truth}")
        if not flags:
            lines.append("    none yet (each sensor warms up first)")
        sys.stdout.write("\x1b[H\x1b[2J" + "\n".join(lines) + "\n")
        sys.stdout.flush()

    # -- children --------------------------------------------------------------------------------
    def _dead_child(self) -> str | None:
        for name, proc in self.children:
            if proc.poll() is not None:
                print(f"anomalyd demo: the {name} exited unexpectedly (status {proc.returncode})", file=sys.stderr)
                self._tail(name)
                return name
        return None

    def _tail(self, name: str, lines: int = 20) -> None:
        try:
            text = (self.workdir / f"{name}.log").read_text(errors="replace")
        except OSError:
            return
        print("\n".join(text.splitlines()[-lines:]), file=sys.stderr)

    def shutdown(self) -> None:
        for name, proc in reversed(self.children):  # simulator first, then the daemon
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(40 if name == "daemon" else 10)  # the daemon's shutdown_timeout is 30 s
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if self.view_client is not None:
            self.view_client.disconnect()
            self.view_client.loop_stop()
        if self.children:
            print("anomalyd demo: stopped the simulator and the daemon", flush=True)


def _metrics_address(text: str) -> tuple[str, int]:
    """The requested HOST:PORT if it is free, else the same host on a free port."""
    from anomalyd.daemon.config import parse_address

    host, port = parse_address(text)
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
            return host, port
        except OSError:
            probe.bind((host, 0))
            return host, probe.getsockname()[1]


def _scrape(url: str) -> dict[str, float]:
    """Unlabelled samples of the daemon's /metrics (labelled ones summed per name)."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return {}
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[sample.name] = values.get(sample.name, 0.0) + sample.value
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="anomalyd demo", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
