"""``anomalyd train``: fit the network on synthetic signals and/or CSV files, write an artifact.

The shipped model (models/default) is reproduced by the command in docs/model.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from anomalyd.models.training import TrainingConfig

    defaults = TrainingConfig()
    parser.add_argument("--out", type=Path, required=True, help="artifact directory to write")
    parser.add_argument("--synthetic", type=int, default=512, metavar="N",
                        help="number of synthetic series from the simulator's signal families (0: none)")
    parser.add_argument("--length", type=int, default=2048, help="readings per synthetic series")
    parser.add_argument("--data-seed", type=int, default=1000,
                        help="seed of the synthetic data (keep it apart from evaluation scenarios)")
    parser.add_argument("--csv", type=Path, nargs="*", default=[], metavar="PATH",
                        help="timestamp,value CSV files, or directories searched for *.csv")
    parser.add_argument("--units", default="32", help="LSTM units per layer, comma separated (e.g. 64,32)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="training seed (deterministic)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--window", type=int, default=defaults.window, help="truncated-BPTT window length")
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--patience", type=int, default=defaults.patience, help="early-stopping patience")
    parser.add_argument("--huber-delta", type=float, default=defaults.huber_delta,
                        help="standard deviations beyond which a miss counts linearly in the loss, not squared")


def _csv_files(paths: list[Path]) -> list[Path]:
    files = []
    for path in paths:
        files.extend(sorted(path.rglob("*.csv")) if path.is_dir() else [path])
    return files


def run(args: argparse.Namespace) -> int:
    from anomalyd.models.datasets import read_series_csv
    from anomalyd.models.spec import NetworkSpec
    from anomalyd.models.training import TrainingConfig, describe, train
    from anomalyd.simulator.scenario import training_series

    try:
        units = tuple(int(u) for u in args.units.split(","))
        network = NetworkSpec(units)
        config = TrainingConfig(seed=args.seed, epochs=args.epochs, batch_size=args.batch_size, window=args.window,
                                learning_rate=args.learning_rate, patience=args.patience,
                                huber_delta=args.huber_delta)
        series = training_series(args.synthetic, args.length, seed=args.data_seed) if args.synthetic else []
        csv_files = _csv_files(args.csv)
        series += [read_series_csv(path) for path in csv_files]
    except (ValueError, OSError) as exc:
        print(f"anomalyd train: {exc}", file=sys.stderr)
        return 2
    if len(series) < 2:
        print("anomalyd train: need at least two series (use --synthetic and/or --csv)", file=sys.stderr)
        return 2
    sources = {"synthetic": {"series": args.synthetic, "length": args.length, "seed": args.data_seed},
               "csv": [str(path) for path in csv_files], "command": " ".join(sys.argv)}
    artifact, _history = train(series, args.out, network, config=config, sources=sources)
    print(describe(artifact))
    return 0
