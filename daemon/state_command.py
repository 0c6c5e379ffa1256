"""``anomalyd state inspect|verify DIR``: what a state directory holds, and whether it is sound."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from anomalyd.daemon import checkpoint, journal


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, text in (("inspect", "list checkpoints (age, sensors, fingerprint, validity) and the journal"),
                       ("verify", "exit non-zero if any checkpoint or journal segment is corrupt")):
        sub = actions.add_parser(name, help=text)
        sub.add_argument("directory", type=Path)
        sub.add_argument("--json", action="store_true", help="machine-readable output")


def survey(directory: Path) -> dict:
    now = time.time()
    files = [checkpoint.describe(path, now) for _, path in checkpoint.list_checkpoints(directory)]
    segments = []
    for segment in journal.segments(directory):
        path = journal.segment_path(directory, segment)
        records = list(journal.replay(directory, journal.Position(segment, 0), segment + 1))
        end = records[-1].position.offset if records else 0
        size = path.stat().st_size
        segments.append({"file": path.name, "bytes": size, "records": len(records),
                         "readings": sum(len(r.sensors) for r in records), "torn_tail_bytes": size - end})
    return {"directory": str(directory), "checkpoints": files, "journal": segments}


def run(args: argparse.Namespace) -> int:
    if not args.directory.is_dir():
        print(f"anomalyd: {args.directory} is not a directory", file=sys.stderr)
        return 2
    report = survey(args.directory)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render(report))
    if args.action == "verify":
        corrupt = [c["file"] for c in report["checkpoints"] if not c["valid"]]
        if corrupt:
            print(f"corrupt: {', '.join(corrupt)}", file=sys.stderr)
            return 1
        if not report["checkpoints"]:
            print("no checkpoint found", file=sys.stderr)
            return 1
    return 0


def render(report: dict) -> str:
    lines = [f"state directory {report['directory']}", "checkpoints (newest first):"]
    for c in report["checkpoints"]:
        if c["valid"]:
            lines.append(f"  {c['file']}  ok       {c['bytes']:>12,d} B  age {c['age_seconds']:>9.1f} s  "
                         f"{c['sensors']:>7d} sensors  model {c['fingerprint'][:12]}")
        else:
            lines.append(f"  {c['file']}  CORRUPT  {c['bytes']:>12,d} B  {c['error']}")
    if not report["checkpoints"]:
        lines.append("  (none)")
    lines.append("journal segments:")
    for s in report["journal"]:
        torn = f", torn tail {s['torn_tail_bytes']} B" if s["torn_tail_bytes"] else ""
        lines.append(f"  {s['file']}  {s['bytes']:>12,d} B  {s['records']} records, {s['readings']} readings{torn}")
    if not report["journal"]:
        lines.append("  (none)")
    return "\n".join(lines)
