"""The ``anomalyd`` command line: one sub-command per job, each mounted from its own module.

Modules are imported only when their command runs, so ``anomalyd --help`` and the daemon do
not pay for TensorFlow or matplotlib they never use.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

# name -> (module, help). Each module offers add_arguments(parser) and run(args) -> int.
COMMANDS = {
    "run": ("anomalyd.daemon.service_command", "run the daemon (MQTT in, scores and metrics out)"),
    "config": ("anomalyd.daemon.config_command", "validate a configuration file"),
    "train": ("anomalyd.daemon.train_command", "train a model and write an artifact directory"),
    "simulate": ("anomalyd.simulator.cli", "publish simulated sensors with labelled anomalies"),
    "evaluate": ("anomalyd.daemon.evaluation.cli", "measure detection quality (NAB, simulator scenarios)"),
    "bench": ("anomalyd.daemon.bench.cli", "benchmarks against baselines measured in the same run"),
    "state": ("anomalyd.daemon.state_command", "inspect or verify a state directory"),
    "install-service": ("anomalyd.daemon.install_command", "install anomalyd as a systemd service"),
    "demo": ("anomalyd.daemon.demo_command", "run the daemon and the simulator with a live view"),
}


def _available() -> dict[str, tuple[str, str]]:
    """Commands whose module exists in this installation."""
    found = {}
    for name, (module, help_text) in COMMANDS.items():
        if importlib.util.find_spec(module) is not None:
            found[name] = (module, help_text)
    return found


def build_parser() -> argparse.ArgumentParser:
    from anomalyd.daemon import __version__

    parser = argparse.ArgumentParser(prog="anomalyd", description="Real-time sensor anomaly detection.")
    parser.add_argument("--version", action="version", version=f"anomalyd {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in _available().items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return importlib.import_module(args._module).run(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
