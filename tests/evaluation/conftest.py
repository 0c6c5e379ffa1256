"""Fixtures for the evaluation tests: the shared NAB corpus and the published HTM results."""

from __future__ import annotations

from pathlib import Path

import pytest

from anomalyd.daemon.evaluation.nab_corpus import NAB_DIR_ENV, default_nab_dir

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def nab_dir() -> Path:
    """The NAB corpus (``$ANOMALYD_NAB_DIR`` or ``<repo>/../shared/data/nab``); skip if absent."""
    path = default_nab_dir(PROJECT_ROOT)
    if not (path / "data").is_dir() or not (path / "labels" / "combined_windows.json").is_file():
        pytest.skip(f"NAB corpus not found at {path}; set {NAB_DIR_ENV} to a NAB checkout")
    return path


@pytest.fixture(scope="session")
def nab_corpus(nab_dir):
    from anomalyd.daemon.evaluation.nab_scoring import NabCorpus

    return NabCorpus.from_dir(nab_dir)


@pytest.fixture(scope="session")
def reference_scores(nab_dir) -> dict:
    """Published per-record scores of the Numenta HTM detector, keyed by data file."""
    from anomalyd.daemon.evaluation.nab_results import read_detector_results

    ref_root = nab_dir / "reference_results"
    if not (ref_root / "numenta").is_dir():
        pytest.skip(f"NAB reference results not found under {ref_root}")
    results = read_detector_results(ref_root, "numenta", nab_dir=nab_dir)
    return {rel: r.anomaly_scores for rel, r in results.items()}
