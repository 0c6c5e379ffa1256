"""NAB-style per-file result files: writing a detector's scores, reading them back.

Layout written here::

    RESULTS_ROOT/<detector>/<category>/<file>.csv     columns timestamp,value,anomaly_score,label

i.e. NAB's ``results/<detector>/...`` tree, except that the file keeps the data file's own
name (NAB prefixes it with ``<detector>_``). The reader accepts both spellings, so the
published reference results (``numenta/<category>/numenta_<file>.csv``) load the same way.
``label`` is 1 for rows inside an anomaly window and 0 elsewhere, as in NAB's result files.

The corpus loader :func:`iter_corpus` lives in :mod:`.nab_corpus` and is re-exported here,
since writing results means walking the corpus.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Iterable, Mapping, NamedTuple, Sequence

import numpy as np

from .nab_corpus import CorpusFile, data_file_paths, iter_corpus

__all__ = [
    "CorpusFile",
    "ResultFile",
    "RESULT_COLUMNS",
    "iter_corpus",
    "read_detector_results",
    "read_result_file",
    "result_path",
    "window_labels",
    "write_detector_results",
    "write_result_file",
]

RESULT_COLUMNS = ("timestamp", "value", "anomaly_score", "label")


class ResultFile(NamedTuple):
    """One result file's columns, in row order; ``labels`` is None if the file has none."""

    timestamps: np.ndarray  # str
    values: np.ndarray  # float64
    anomaly_scores: np.ndarray  # float64
    labels: np.ndarray | None  # int8


def window_labels(n_rows: int, window_rows: Sequence[tuple[int, int]]) -> np.ndarray:
    """0/1 per row: 1 for rows inside any (first row, last row) window, both ends included."""
    labels = np.zeros(n_rows, dtype=np.int8)
    for start, end in window_rows:
        labels[start : end + 1] = 1
    return labels


def result_path(results_root: str | os.PathLike[str], detector: str, relative_path: str) -> Path:
    """``results_root/<detector>/<category>/<file>.csv`` for data file ``<category>/<file>.csv``."""
    return Path(results_root) / detector / relative_path


def write_result_file(
    path: str | os.PathLike[str],
    timestamps: Sequence[str],
    values: Sequence[float],
    anomaly_scores: Sequence[float],
    labels: Sequence[int],
) -> None:
    """Write one result CSV; floats use ``repr`` so reading back gives the same numbers.

    The file is written under a temporary name and renamed, so a reader never sees half a file.
    """
    n = len(timestamps)
    if not (len(values) == len(anomaly_scores) == len(labels) == n):
        raise ValueError("timestamps, values, anomaly_scores and labels differ in length")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(RESULT_COLUMNS)
        for t, v, s, lab in zip(timestamps, values, anomaly_scores, labels):
            writer.writerow((t, repr(float(v)), repr(float(s)), int(lab)))
    os.replace(tmp, path)


def read_result_file(path: str | os.PathLike[str]) -> ResultFile:
    """Read a result CSV (ours or NAB's); ``label`` is optional, other columns are ignored."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"timestamp", "value", "anomaly_score"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}")
        rows = list(reader)
    has_label = bool(rows) and "label" in rows[0]
    return ResultFile(
        timestamps=np.array([r["timestamp"] for r in rows], dtype=str),
        values=np.array([float(r["value"]) for r in rows], dtype=np.float64),
        anomaly_scores=np.array([float(r["anomaly_score"]) for r in rows], dtype=np.float64),
        labels=np.array([int(float(r["label"])) for r in rows], dtype=np.int8) if has_label else None,
    )


def write_detector_results(
    results_root: str | os.PathLike[str],
    detector: str,
    files: Iterable[CorpusFile],
    scores_by_file: Mapping[str, Sequence[float]],
    window_rows_by_file: Mapping[str, Sequence[tuple[int, int]]],
) -> list[Path]:
    """Write one result file per corpus file; return the paths written, in corpus order.

    ``window_rows_by_file`` is e.g. ``NabCorpus.window_rows`` (files without windows: label 0).
    """
    written = []
    for f in files:
        rel = f.relative_path
        scores = np.asarray(scores_by_file[rel], dtype=np.float64)
        if len(scores) != len(f.values):
            raise ValueError(f"{rel}: {len(scores)} scores for {len(f.values)} data rows")
        labels = window_labels(len(f.values), window_rows_by_file.get(rel, ()))
        path = result_path(results_root, detector, rel)
        write_result_file(path, f.timestamps, f.values, scores, labels)
        written.append(path)
    return written


def _find_result(detector_dir: Path, category: str, name: str, detector: str) -> Path | None:
    """Our un-prefixed name first, then NAB's ``<detector>_<file>.csv``."""
    for candidate in (detector_dir / category / name, detector_dir / category / f"{detector}_{name}"):
        if candidate.is_file():
            return candidate
    return None


def read_detector_results(
    results_root: str | os.PathLike[str],
    detector: str,
    nab_dir: str | os.PathLike[str] | None = None,
) -> dict[str, ResultFile]:
    """Read ``results_root/<detector>``: relative data path -> :class:`ResultFile`.

    With ``nab_dir`` the data files define which results must exist (a missing one is an
    error); without it, every CSV found under the detector directory is read.
    """
    detector_dir = Path(results_root) / detector
    if nab_dir is not None:
        out = {}
        for category, name in data_file_paths(nab_dir):
            path = _find_result(detector_dir, category, name, detector)
            if path is None:
                raise FileNotFoundError(f"no result for {category}/{name} under {detector_dir}")
            out[f"{category}/{name}"] = read_result_file(path)
        return out
    prefix = f"{detector}_"
    out = {}
    for path in sorted(detector_dir.glob("*/*.csv")):
        name = path.name[len(prefix):] if path.name.startswith(prefix) else path.name
        out[f"{path.parent.name}/{name}"] = read_result_file(path)
    return out
