"""``anomalyd run``: the long-running service."""
from __future__ import annotations

import argparse
import sys

from anomalyd.daemon.config import ConfigError, load, with_overrides


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="YAML configuration (default: built-in defaults)")
    parser.add_argument("--broker", metavar="URL", help="mqtt://[user:pass@]host:port or mqtts://...")
    parser.add_argument("--state-dir", metavar="DIR", help="where checkpoints and the journal live")
    parser.add_argument("--metrics-addr", metavar="HOST:PORT", help="Prometheus endpoint (default 127.0.0.1:9808)")
    parser.add_argument("--log-level", metavar="LEVEL", help="DEBUG, INFO, WARNING, ERROR")
    parser.add_argument("--log-json", action="store_true", help="log one JSON object per line")


def run(args: argparse.Namespace) -> int:
    try:
        config = with_overrides(load(args.config), broker=args.broker, state_dir=args.state_dir,
                                metrics_addr=args.metrics_addr,
                                log_level=args.log_level.upper() if args.log_level else None,
                                log_format="json" if args.log_json else None)
    except ConfigError as exc:
        print(f"anomalyd: configuration error: {exc}", file=sys.stderr)
        return 2
    from anomalyd.daemon.service import Service

    return Service(config, args.config).run()
