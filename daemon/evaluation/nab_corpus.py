"""Reading the NAB corpus from disk: data files, anomaly windows, scoring profiles.

Layout of a NAB directory (as in the numenta/NAB repository)::

    DIR/data/<category>/<file>.csv         columns timestamp,value
    DIR/labels/combined_windows.json       {"<category>/<file>.csv": [[start, end], ...]}
    DIR/profiles.json                      {"standard": {"CostMatrix": {...}}, ...}

Only NumPy and the standard library are used, so evaluation runs where pandas is absent.
Timestamps are kept two ways: the original strings (written back unchanged into result files)
and ``datetime64[us]`` (for exact comparison with window limits, which NAB spells with a
``.000000`` suffix that the data files lack).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np

# Environment variable that points evaluation and tests at a NAB checkout.
NAB_DIR_ENV = "ANOMALYD_NAB_DIR"


class CorpusError(ValueError):
    """A file of the corpus is missing or malformed: the scores would not be NAB's."""


class CorpusFile(NamedTuple):
    """One NAB data file, in data-row order."""

    category: str
    name: str
    timestamps: np.ndarray  # str, exactly as in the file
    unix_seconds: np.ndarray  # float64, seconds since the epoch (timestamps are naive: UTC)
    values: np.ndarray  # float64

    @property
    def relative_path(self) -> str:
        """NAB's key for this file, e.g. ``realKnownCause/nyc_taxi.csv``."""
        return f"{self.category}/{self.name}"


def default_nab_dir(project_root: str | os.PathLike[str] | None = None) -> Path:
    """Where the NAB corpus is expected: ``$ANOMALYD_NAB_DIR`` or ``<root>/../shared/data/nab``.

    The default follows the workplace layout (the corpus is shared, not vendored in the repo).
    """
    env = os.environ.get(NAB_DIR_ENV)
    if env:
        return Path(env)
    root = Path(project_root) if project_root is not None else Path.cwd()
    return (root / ".." / "shared" / "data" / "nab").resolve()


def parse_timestamps(strings: np.ndarray | list[str]) -> np.ndarray:
    """Parse NAB timestamp strings into ``datetime64[us]``.

    Both ``2014-02-19 10:50:00`` (data files) and ``2014-02-19 10:50:00.000000`` (label
    files) parse to the same instant, which is what NAB's pandas-based matching relies on.
    """
    return np.asarray(strings, dtype="datetime64[us]")


def to_unix_seconds(stamps: np.ndarray) -> np.ndarray:
    """``datetime64`` to float seconds since the epoch (naive timestamps are taken as UTC)."""
    micros = np.asarray(stamps, dtype="datetime64[us]").astype(np.int64)
    return micros.astype(np.float64) / 1e6


def read_data_file(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read one ``timestamp,value`` CSV; return (timestamp strings, their ``datetime64[us]``,
    float64 values). Every row must parse: NAB scores row by row, so a skipped row would shift
    the file against its labels."""
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, [])
        try:
            t_col, v_col = header.index("timestamp"), header.index("value")
        except ValueError as exc:
            raise CorpusError(f"{path}: expected columns timestamp,value; got {header}") from exc
        rows = [(line, r) for line, r in enumerate(reader, start=2) if r]
    try:
        stamps = np.array([r[t_col] for _, r in rows], dtype=str)
        values = np.array([float(r[v_col]) for _, r in rows], dtype=np.float64)
        instants = parse_timestamps(stamps)
    except (ValueError, IndexError):
        line = next(line for line, r in rows if not _row_parses(r, t_col, v_col))
        raise CorpusError(f"{path}, line {line}: not a timestamp,value row") from None
    return stamps, instants, values


def _row_parses(row: list[str], t_col: int, v_col: int) -> bool:
    try:
        float(row[v_col])
        parse_timestamps([row[t_col]])
    except (ValueError, IndexError):
        return False
    return True


def data_file_paths(nab_dir: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """Sorted (category, file name) of every data CSV under ``nab_dir/data``.

    Sorted by category then name, so every consumer sees the same stable order.
    """
    data_dir = Path(nab_dir) / "data"
    if not data_dir.is_dir():
        raise FileNotFoundError(f"no NAB data directory at {data_dir}")
    found = [
        (cat.name, f.name)
        for cat in data_dir.iterdir()
        if cat.is_dir()
        for f in cat.iterdir()
        if f.suffix == ".csv"
    ]
    return sorted(found)


def iter_corpus(nab_dir: str | os.PathLike[str]) -> Iterator[CorpusFile]:
    """Yield every data file under ``nab_dir/data`` in stable sorted order."""
    for category, name in data_file_paths(nab_dir):
        stamps, instants, values = read_data_file(Path(nab_dir) / "data" / category / name)
        yield CorpusFile(category, name, stamps, to_unix_seconds(instants), values)


def load_windows(nab_dir: str | os.PathLike[str]) -> dict[str, list[tuple[str, str]]]:
    """Anomaly windows per relative path, as (start, end) timestamp strings, in file order."""
    path = Path(nab_dir) / "labels" / "combined_windows.json"
    try:
        with open(path) as fh:
            raw = json.load(fh)
        return {rel: [(str(w[0]), str(w[1])) for w in wins] for rel, wins in raw.items()}
    except (OSError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise CorpusError(f"{path}: not NAB's anomaly windows ({exc})") from None


def load_profile_weights(nab_dir: str | os.PathLike[str]) -> dict[str, dict[str, float]]:
    """The cost matrices of ``profiles.json``: profile name -> {tpWeight, fpWeight, fnWeight, ...}."""
    path = Path(nab_dir) / "profiles.json"
    try:
        with open(path) as fh:
            raw = json.load(fh)
        return {name: {k: float(v) for k, v in body["CostMatrix"].items()} for name, body in raw.items()}
    except (OSError, ValueError, TypeError, AttributeError, KeyError) as exc:
        raise CorpusError(f"{path}: not NAB's scoring profiles ({exc})") from None
