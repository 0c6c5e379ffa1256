"""``anomalyd bench``: step, e2e, scale, or all of them; JSON on stdout, optionally saved."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BENCHMARKS = ("step", "e2e", "scale")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("which", choices=(*BENCHMARKS, "all"), help="which benchmark to run")
    parser.add_argument("--json", action="store_true", help="print the full JSON report (default: a summary)")
    parser.add_argument("--save", metavar="NAME", help="also write bench/results/NAME.json")
    parser.add_argument("--results-dir", type=Path, default=Path("bench/results"),
                        help="where --save writes (default: bench/results)")
    parser.add_argument("--model", type=Path, help="model artifact directory (default: the shipped model)")
    parser.add_argument("--quick", action="store_true", help="shorter measurements (noisier figures)")


def _run_one(which: str, args: argparse.Namespace) -> dict:
    from anomalyd.models import artifact

    model = artifact.load(args.model)
    if which == "step":
        from anomalyd.daemon.bench import step

        return step.run(model, min_seconds=0.15 if args.quick else 0.5)
    module = __import__(f"anomalyd.daemon.bench.{which}", fromlist=["run"])
    return module.run(model, quick=args.quick)


def run(args: argparse.Namespace) -> int:
    chosen = BENCHMARKS if args.which == "all" else (args.which,)
    reports = {which: _run_one(which, args) for which in chosen}
    report = reports[chosen[0]] if len(chosen) == 1 else {"benchmark": "all", "reports": reports}
    text = json.dumps(report, indent=2)
    if args.save:
        args.results_dir.mkdir(parents=True, exist_ok=True)
        (args.results_dir / f"{args.save}.json").write_text(text + "\n")
    print(text if args.json else _summary(reports))
    failed = [name for r in reports.values() for name, ok in r.get("bars", {}).items() if not ok]
    if failed:
        print(f"bars not met: {', '.join(failed)}", file=sys.stderr)
    return 0


def _summary(reports: dict) -> str:
    lines = []
    for which, report in reports.items():
        lines.append(f"== {which}")
        for name, ok in report.get("bars", {}).items():
            lines.append(f"  {'PASS' if ok else 'FAIL'}  {name}")
    return "\n".join(lines)
