"""``anomalyd simulate``: a fleet of simulated sensors (or a CSV replay) published over MQTT.

Mounted by the main CLI through ``add_arguments(parser)`` and ``run(args)``; also runnable
as ``python -m anomalyd.simulator``.

Rates and time: each sensor samples every ``1/--hz`` *simulated* seconds, and simulated
time runs ``--time-scale`` times faster than the wall clock (``--fast``: as fast as the
broker accepts). ``--rate R`` instead asks for R readings per wall second overall and sets
the sampling period to ``sensors * time_scale / (R * (1 - missing))``. ``--duration`` is in
simulated seconds (the same as wall seconds at ``--time-scale 1``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from typing import Iterator, TextIO

from .anomalies import KIND_NAMES, AnomalyConfig
from .fleet import SENSOR_ID_RE, Fleet, FleetConfig
from .payloads import (DEFAULT_SENML_TOPIC, DEFAULT_TOPIC_TEMPLATE, FORMATS, Encoder, is_topic_name,
                       validate_topic_template)
from .publisher import BrokerAddress, MqttPublisher, PublishError
from .replay import ReplaySource
from .runner import LabelSink, MqttSink, Pacing, Runner, RunStats
from .signals import FAMILY_NAMES

log = logging.getLogger("anomalyd.simulate")
DEFAULT_LABELS_TOPIC = "anomalyd/labels"


class UsageError(ValueError):
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("connection")
    g.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="mqtt://[user:pass@]host:port (default %(default)s)")
    g.add_argument("--client-id", default=None, help="MQTT client id (default anomalyd-simulate-<pid>)")
    g.add_argument("--qos", type=int, choices=(0, 1), default=1, help="QoS of readings (default %(default)s)")
    g.add_argument("--max-inflight", type=int, default=1000, help="unacknowledged messages allowed (back-pressure window)")

    g = parser.add_argument_group("fleet")
    g.add_argument("--sensors", type=int, default=100, help="number of simulated sensors, 1..100000 (default %(default)s)")
    rate = g.add_mutually_exclusive_group()
    rate.add_argument("--rate", type=float, help="target readings per wall-clock second, all sensors together")
    rate.add_argument("--hz", type=float, help="readings per simulated second per sensor (default 1)")
    g.add_argument("--seed", type=int, default=0, help="seed: same seed, same values and labels (default %(default)s)")
    g.add_argument("--families", default=",".join(FAMILY_NAMES), help="comma list of signal families (default all)")
    g.add_argument("--missing", type=float, default=0.0, help="probability that a reading is lost (default 0)")
    g.add_argument("--jitter", type=float, default=0.1, help="max sampling delay (jitter), fraction of the period, < 1 (default %(default)s)")
    g.add_argument("--churn", type=float, default=0.0,
                   help="fraction of sensors appearing late, and fraction vanishing, within the run (default 0)")
    g.add_argument("--id-prefix", default="", help="prefix of every sensor id; the SenML base name (bn), e.g. plant1.")

    g = parser.add_argument_group("anomalies (ground truth)")
    g.add_argument("--anomaly-rate", type=float, default=1.0,
                   help="expected anomalies per sensor per simulated hour (default %(default)s; 0 = none)")
    g.add_argument("--anomaly-kinds", default=",".join(KIND_NAMES), help="comma list (default all: %(default)s)")
    g.add_argument("--magnitude", type=float, default=6.0,
                   help="size of spikes/shifts/drifts/variance bursts in local sigma (default %(default)s)")
    g.add_argument("--warmup", type=float, default=60.0, help="simulated seconds without anomalies at the start (default %(default)s)")
    g.add_argument("--labels", metavar="FILE.jsonl", help="write ground-truth labels here, one JSON per line")
    g.add_argument("--labels-topic", default=DEFAULT_LABELS_TOPIC, help="publish labels here ('' = do not publish)")

    g = parser.add_argument_group("time")
    g.add_argument("--duration", type=float, help="simulated seconds to run (default: until interrupted)")
    g.add_argument("--time-scale", type=float, default=1.0, help="simulated seconds per wall second (default 1)")
    g.add_argument("--fast", action="store_true", help="ignore the clock and publish as fast as the broker accepts")
    g.add_argument("--start-ts", type=float,
                   help="simulated start time, epoch s (default: now, or now - duration with --fast or "
                        "--time-scale > 1 so no reading is stamped in the future; replay: the data's own)")

    g = parser.add_argument_group("payload")
    g.add_argument("--format", choices=FORMATS, default="json", help="payload format (default %(default)s)")
    g.add_argument("--topic-template", default=DEFAULT_TOPIC_TEMPLATE, help="topic of number/json readings")
    g.add_argument("--senml-topic", default=DEFAULT_SENML_TOPIC, help="topic of SenML packs (default %(default)s)")
    g.add_argument("--senml-batch", type=int, default=100, help="readings per SenML pack (default %(default)s)")

    g = parser.add_argument_group("replay")
    g.add_argument("--replay", metavar="CSV_OR_DIR", help="replay timestamp,value CSV files (one sensor per file)")
    g.add_argument("--speedup", type=float, help="replay speed: data seconds per wall second (default: --time-scale)")

    g = parser.add_argument_group("output")
    g.add_argument("--quiet", action="store_true", help="no progress line and no text summary")
    g.add_argument("--json", action="store_true", help="print the final summary as JSON on stdout")


def run(args: argparse.Namespace) -> int:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        source, pacing, target_rate = build_source(args)
        address = BrokerAddress.parse(args.broker)
    except (UsageError, ValueError, FileNotFoundError) as exc:
        print(f"anomalyd simulate: error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    with ExitStack() as stack:
        try:
            labels_file = stack.enter_context(open(args.labels, "w")) if args.labels else None
        except OSError as exc:
            print(f"anomalyd simulate: error: cannot write --labels: {exc}", file=sys.stderr)
            return 2
        publisher = MqttPublisher(
            address, client_id=args.client_id or f"anomalyd-simulate-{os.getpid()}",
            qos=args.qos, window=args.max_inflight, stop=stop,
        )
        try:
            publisher.connect()
        except ConnectionError as exc:
            print(f"anomalyd simulate: error: {exc}", file=sys.stderr)
            return 1
        sink = _make_sink(args, source, publisher, labels_file)
        progress = None if args.quiet else ProgressLine(sys.stderr, target_rate)
        runner = Runner(source, sink, pacing, stop=stop, on_progress=progress)
        with _stop_on_signals(stop):
            try:
                stats = runner.run()
            except PublishError as exc:
                print(f"anomalyd simulate: error: {exc}", file=sys.stderr)
                return 1
        if progress:
            progress.close()
    _report(args, stats, target_rate, len(source.sensor_ids))
    return 0


def build_source(args: argparse.Namespace) -> tuple[Fleet | ReplaySource, Pacing, float | None]:
    """The reading source, its pacing, and the target wall-clock rate (None when --fast)."""
    if args.max_inflight < 1 or args.senml_batch < 1:
        raise UsageError("--max-inflight and --senml-batch must be >= 1")
    _check_topics(args)
    # Written as "not > 0" so that NaN is refused too.
    if not args.time_scale > 0:
        raise UsageError("--time-scale must be > 0")
    if args.speedup is not None and not args.speedup > 0:
        raise UsageError("--speedup must be > 0")
    if args.id_prefix and not SENSOR_ID_RE.match(args.id_prefix):
        raise UsageError(f"--id-prefix must match {SENSOR_ID_RE.pattern} (it is the SenML base name)")
    if args.replay:
        source = ReplaySource.from_path(args.replay, start_ts=args.start_ts, id_prefix=args.id_prefix)
        scale = args.speedup or args.time_scale
        end = source.end_ts if args.duration is None else min(source.end_ts, source.start_ts + args.duration)
        pacing = Pacing(time_scale=scale, fast=args.fast, end_ts=end)
        return source, pacing, None if args.fast else source.readings_per_second * scale
    if args.speedup:
        raise UsageError("--speedup applies to --replay; use --time-scale for simulated sensors")
    config = fleet_config(args)
    source = Fleet(config)
    _warn_rate_cap(config)
    end = None if args.duration is None else config.start_ts + args.duration
    pacing = Pacing(time_scale=args.time_scale, fast=args.fast, end_ts=end)
    return source, pacing, None if args.fast else source.readings_per_second * args.time_scale


def _check_topics(args: argparse.Namespace) -> None:
    """Topics are published to, so they must be names, not filters (no + or #)."""
    try:
        validate_topic_template(args.topic_template)
    except ValueError as exc:
        raise UsageError(f"--topic-template: {exc}") from None
    if not args.senml_topic or not is_topic_name(args.senml_topic):
        raise UsageError("--senml-topic must be a topic name, without + or #")
    if not is_topic_name(args.labels_topic):
        raise UsageError("--labels-topic must be a topic name, without + or # ('' = do not publish)")


def fleet_config(args: argparse.Namespace) -> FleetConfig:
    if args.rate is not None and not 0 < args.rate < math.inf or args.hz is not None and not 0 < args.hz < math.inf:
        raise UsageError("--rate and --hz must be finite and > 0")
    if args.duration is not None and not args.duration > 0:
        raise UsageError("--duration must be > 0")
    if not 0 <= args.missing < 1:
        raise UsageError("--missing must be in [0, 1)")
    if args.rate is not None:
        period = args.sensors * args.time_scale / (args.rate * (1.0 - args.missing))
    else:
        period = 1.0 / (args.hz or 1.0)
    anomalies = AnomalyConfig(
        rate_per_hour=args.anomaly_rate,
        kinds=_split(args.anomaly_kinds),
        magnitude=args.magnitude,
        warmup=args.warmup,
    )
    return FleetConfig(
        n_sensors=args.sensors,
        seed=args.seed,
        start_ts=_default_start(args) if args.start_ts is None else args.start_ts,
        period=period,
        jitter=args.jitter,
        missing=args.missing,
        churn=args.churn,
        churn_horizon=args.duration or 3600.0,
        families=_split(args.families),
        anomalies=anomalies,
        id_prefix=args.id_prefix,
    )


def _default_start(args: argparse.Namespace) -> float:
    """Now, except when simulated time outruns the wall clock (--fast, --time-scale > 1):
    then the data ends now, because the daemon refuses readings stamped more than a few
    minutes in the future."""
    now = round(time.time(), 3)
    if not (args.fast or args.time_scale > 1):
        return now
    if args.duration:
        return now - args.duration
    log.warning("simulated time will run ahead of the wall clock and the daemon refuses readings "
                "stamped too far in the future: give --duration (the data then ends now) or --start-ts")
    return now


def _split(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _warn_rate_cap(config: FleetConfig) -> None:
    cap = config.anomalies.max_rate_per_hour(config.period)
    if config.anomalies.rate_per_hour > cap:
        log.warning("anomaly rate capped at %.3g per sensor-hour (one per %d readings)",
                    cap, config.anomalies.slot_samples)


def _make_sink(args, source, publisher: MqttPublisher, labels_file: TextIO | None) -> MqttSink:
    encoder = Encoder(
        args.format, source.sensor_ids, topic_template=args.topic_template,
        senml_topic=args.senml_topic, senml_batch=args.senml_batch, base_name=args.id_prefix,
    )
    labels = LabelSink(labels_file, publisher, args.labels_topic or None)
    return MqttSink(publisher, encoder, labels)


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set ``stop`` so the run ends cleanly with its summary; a second signal
    falls back to the previous handler (e.g. KeyboardInterrupt)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        stop.set()
        for sig, old in previous.items():
            signal.signal(sig, old)

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class ProgressLine:
    """One status line on stderr, redrawn in place on a terminal, appended otherwise."""

    def __init__(self, stream: TextIO, target_rate: float | None) -> None:
        self.stream, self.target_rate = stream, target_rate
        self.tty = stream.isatty()
        self._last = (time.monotonic(), 0)

    def __call__(self, stats: RunStats) -> None:
        now = time.monotonic()
        then, readings = self._last
        rate = (stats.readings - readings) / max(now - then, 1e-9)
        self._last = (now, stats.readings)
        target = f" (target {self.target_rate:,.0f}/s)" if self.target_rate else ""
        line = (
            f"sim {_iso(stats.sim_time)}  {rate:,.0f} readings/s{target}  {stats.readings:,} readings  "
            f"{stats.messages:,} msgs  {sum(stats.anomalies.values()):,} anomalies  lag {stats.lag_seconds:.1f}s"
        )
        self.stream.write(f"\r{line}\x1b[K" if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-5] + "Z"


def _report(args, stats: RunStats, target_rate: float | None, n_sensors: int) -> None:
    summary = stats.as_dict() | {
        "target_rate": None if target_rate is None else round(target_rate, 1),
        "sensors": n_sensors,
        "format": args.format,
        "qos": args.qos,
        "seed": None if args.replay else args.seed,
    }
    if not args.quiet:
        kinds = ", ".join(f"{k} {v}" for k, v in summary["anomalies"].items()) or "none"
        target = f", target {target_rate:,.0f}/s" if target_rate else ""
        print(
            f"simulate: {stats.readings:,} readings in {stats.messages:,} messages over {stats.wall_seconds:.1f} s "
            f"= {stats.achieved_rate:,.0f} readings/s{target}; simulated {_iso(stats.sim_start)} .. "
            f"{_iso(stats.sim_time)}; anomalies: {kinds}; stopped by {stats.stopped_by}"
            + ("" if stats.flushed else "; WARNING: not every message was acknowledged"),
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(summary))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="anomalyd simulate", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))
