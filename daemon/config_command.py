"""``anomalyd config check FILE``: validate a configuration; exit 0 if valid, 2 if not."""
from __future__ import annotations

import argparse
import sys

from anomalyd.daemon.config import ConfigError, load, schema_rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="validate a configuration file")
    check.add_argument("file")
    actions.add_parser("reference", help="print every key with its type and default (Markdown)")


def run(args: argparse.Namespace) -> int:
    if args.action == "reference":
        print(reference_table())
        return 0
    try:
        load(args.file)
    except ConfigError as exc:
        print(f"anomalyd: {exc}", file=sys.stderr)
        return 2
    print(f"{args.file}: OK")
    return 0


def reference_table() -> str:
    lines = ["| key | type | default |", "|---|---|---|"]
    lines += [f"| `{key}` | {kind} | `{default}` |" for key, kind, default in schema_rows()]
    return "\n".join(lines)
