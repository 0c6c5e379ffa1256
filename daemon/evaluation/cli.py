"""``anomalyd evaluate``: detection quality on NAB or on a simulator scenario.

    anomalyd evaluate --nab ../shared/data/nab --out DIR [--json] [--plot]
    anomalyd evaluate --scenario [--sensors N] [--seed S] [--lead-in HOURS] [--predictor oracle]
                      [--out DIR] [--json] [--plot N]

Both replay through the daemon's own detector with the daemon's settings (defaults, or those
of ``--config``), so the figures describe what the daemon does.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--nab", type=Path, metavar="DIR", help="NAB corpus directory (with data/ and labels/)")
    what.add_argument("--scenario", action="store_true", help="a labelled simulator scenario")
    parser.add_argument("--out", type=Path, help="results directory (required with --nab)")
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")
    parser.add_argument("--plot", nargs="?", type=int, const=-1, default=None, metavar="N",
                        help="also write PNG plots (NAB: every file; scenario: the N most eventful sensors)")
    parser.add_argument("--config", type=Path, help="daemon configuration whose scoring settings to use")
    parser.add_argument("--model", type=Path, help="model artifact (default: the configured or shipped one)")
    parser.add_argument("--sensors", type=int, default=1000, help="scenario: number of sensors")
    parser.add_argument("--hours", type=float, default=4.0, help="scenario: simulated hours judged")
    parser.add_argument("--lead-in", type=float, default=0.0, metavar="HOURS",
                        help="scenario: simulated hours replayed first, without anomalies and not judged")
    parser.add_argument("--period", type=float, default=5.0, help="scenario: seconds between readings")
    parser.add_argument("--seed", type=int, default=7, help="scenario: seed")
    parser.add_argument("--magnitude", type=float, default=6.0, help="scenario: anomaly size in local sigma")
    parser.add_argument("--kinds", default="", help="scenario: comma-separated anomaly kinds (default: all)")
    parser.add_argument("--predictor", choices=("model", "oracle"), default="model",
                        help="scenario: judge readings against the model's predictions (what the daemon does) or "
                             "the simulator's ideal ones, to see what the scorer alone makes of perfect predictions")


def run(args: argparse.Namespace) -> int:
    from anomalyd.daemon.config import ConfigError, load
    from anomalyd.models import artifact as artifact_module

    try:
        config = load(args.config)
        model = artifact_module.load(args.model or config.detector.model)
    except (ConfigError, artifact_module.ArtifactError) as exc:
        print(f"anomalyd evaluate: {exc}", file=sys.stderr)
        return 2
    if args.out is not None:
        try:
            args.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file of that name, no permission, a read-only disk
            print(f"anomalyd evaluate: cannot use --out {args.out}: {exc}", file=sys.stderr)
            return 2
    if args.nab:
        return _nab(args, config, model)
    return _scenario(args, config, model)


def _nab(args, config, model) -> int:
    from anomalyd.daemon.evaluation import nab_eval

    if args.out is None:
        print("anomalyd evaluate: --nab needs --out DIR", file=sys.stderr)
        return 2
    if args.predictor != "model":
        print("anomalyd evaluate: --predictor applies to --scenario only (NAB has no ideal predictor)", file=sys.stderr)
        return 2
    if not (args.nab / "data").is_dir():
        print(f"anomalyd evaluate: {args.nab} has no data/ directory (is it the NAB corpus?)", file=sys.stderr)
        return 2
    from anomalyd.daemon.evaluation.nab_corpus import CorpusError

    try:
        report, scores = nab_eval.evaluate_nab(args.nab, args.out, model, config.scoring, _backend(config),
                                               config.detector.max_gap)
    except CorpusError as exc:
        print(f"anomalyd evaluate: {exc}", file=sys.stderr)
        return 2
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    if args.plot is not None:
        _plot_nab(args, report, scores)
    print(json.dumps(report if args.json else nab_eval.summary(report), indent=2))
    return 0


def _scenario(args, config, model) -> int:
    from anomalyd.daemon.evaluation import scenario_eval
    from anomalyd.daemon.evaluation.event_metrics import render_table

    if args.plot is not None and args.out is None:
        print("anomalyd evaluate: --plot needs --out DIR (the plots go to DIR/plots)", file=sys.stderr)
        return 2
    if not (0 < args.hours < math.inf and 0 <= args.lead_in < math.inf):  # NaN fails both
        print("anomalyd evaluate: --hours must be finite and > 0, --lead-in finite and >= 0", file=sys.stderr)
        return 2
    try:
        spec = scenario_eval.ScenarioSpec(sensors=args.sensors, duration=args.hours * 3600, period=args.period,
                                          seed=args.seed, magnitude=args.magnitude, lead_in=args.lead_in * 3600,
                                          kinds=tuple(k for k in args.kinds.split(",") if k),
                                          predictor=args.predictor)
    except ValueError as exc:
        print(f"anomalyd evaluate: {exc}", file=sys.stderr)
        return 2
    report, scenario, outputs = scenario_eval.evaluate_scenario(spec, model, config.scoring, _backend(config),
                                                                config.detector.max_gap)
    if args.out:  # made by run()
        (args.out / "scenario_report.json").write_text(json.dumps(report, indent=2) + "\n")
        if args.plot is not None:
            _plot_scenario(args, scenario, outputs, config.scoring.threshold)
    print(json.dumps(report, indent=2) if args.json
          else render_table(report) + "\n\n" + scenario_eval.render_families(report))
    if not args.json and spec.predictor == "oracle":
        print("predictor: the simulator's ideal one-step predictions, not the model's (--predictor oracle)")
    return 0


def _backend(config) -> str:
    return config.detector.backend


def _plot_nab(args, report, scores) -> None:
    from anomalyd.daemon.evaluation.nab_corpus import iter_corpus, load_windows, parse_timestamps
    from anomalyd.daemon.evaluation.plots import plot_series

    windows = load_windows(args.nab)
    threshold = report["detectors"]["anomalyd"]["detail"]["standard"]["threshold"]
    for f in iter_corpus(args.nab):
        rel = f.relative_path
        score = scores["anomalyd"][rel]
        spans = [tuple(parse_timestamps(list(w))) for w in windows.get(rel, [])]
        path = args.out / "plots" / rel.replace(".csv", ".png")
        plot_series(path, parse_timestamps(list(f.timestamps)), f.values, score, threshold, spans,
                    score >= threshold, f"{rel} (NAB standard threshold {threshold:.3f})")


def _plot_scenario(args, scenario, outputs, threshold) -> None:
    from datetime import datetime, timezone

    import numpy as np

    from anomalyd.daemon.evaluation.plots import plot_series
    from anomalyd.daemon.evaluation.scenario_eval import events_of, most_eventful

    count = 12 if args.plot < 0 else args.plot
    for sensor in most_eventful(scenario, count):
        ts, values = scenario.series(sensor)
        when = np.array([datetime.fromtimestamp(t, timezone.utc) for t in ts])
        spans = [tuple(datetime.fromtimestamp(t, timezone.utc) for t in span) for span in events_of(scenario, sensor)]
        out = outputs[sensor]
        plot_series(args.out / "plots" / f"{sensor}.png", when, values, out.score, threshold, spans, out.anomaly,
                    f"{sensor}: " + ", ".join(label.kind for label in scenario.labels_for(sensor)))
