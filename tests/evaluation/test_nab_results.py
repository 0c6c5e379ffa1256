"""NAB-style result files and the corpus loader, on a small NAB-shaped directory."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from anomalyd.daemon.evaluation.nab_results import (
    RESULT_COLUMNS,
    iter_corpus,
    read_detector_results,
    read_result_file,
    result_path,
    window_labels,
    write_detector_results,
)
from anomalyd.daemon.evaluation.nab_scoring import NabCorpus, score_corpus, NAB_PROFILES


def make_nab_dir(root: Path) -> Path:
    """A two-category NAB-shaped directory: data/, labels/combined_windows.json."""
    files = {
        "zeta/b.csv": [("1970-01-01 00:01:00", "1.5"), ("1970-01-01 00:02:00", "2"),
                       ("1970-01-01 00:03:00", "-3.25"), ("1970-01-01 00:04:00", "4")],
        "alpha/a.csv": [(f"2014-04-01 00:{m:02d}:00", str(m * 1.1)) for m in range(10)],
        "alpha/c.csv": [("2015-01-01 00:00:00", "7")] * 1 + [("2015-01-01 00:05:00", "8")],
    }
    for rel, rows in files.items():
        path = root / "data" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as fh:
            fh.write("timestamp,value\n" + "".join(f"{t},{v}\n" for t, v in rows))
    (root / "data" / "README.md").write_text("not a data file")
    (root / "labels").mkdir()
    windows = {
        "alpha/a.csv": [["2014-04-01 00:03:00.000000", "2014-04-01 00:05:00.000000"]],
        "alpha/c.csv": [],
        "zeta/b.csv": [["1970-01-01 00:04:00.000000", "1970-01-01 00:04:00.000000"]],
    }
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    return root


def test_iter_corpus_is_sorted_and_parses_times_and_values(tmp_path):
    nab = make_nab_dir(tmp_path / "nab")
    files = list(iter_corpus(nab))
    assert [f.relative_path for f in files] == ["alpha/a.csv", "alpha/c.csv", "zeta/b.csv"]
    b = files[2]
    assert (b.category, b.name) == ("zeta", "b.csv")
    assert list(b.timestamps) == ["1970-01-01 00:01:00", "1970-01-01 00:02:00",
                                  "1970-01-01 00:03:00", "1970-01-01 00:04:00"]
    assert b.unix_seconds.dtype == np.float64 and list(b.unix_seconds) == [60.0, 120.0, 180.0, 240.0]
    assert b.values.dtype == np.float64 and list(b.values) == [1.5, 2.0, -3.25, 4.0]


def test_window_labels_mark_both_ends():
    assert list(window_labels(8, [(1, 2), (5, 5)])) == [0, 1, 1, 0, 0, 1, 0, 0]


def test_write_and_read_back_results(tmp_path):
    nab = make_nab_dir(tmp_path / "nab")
    corpus = NabCorpus.from_dir(nab)
    files = list(iter_corpus(nab))
    rng = np.random.default_rng(3)
    scores = {f.relative_path: rng.random(len(f.values)) for f in files}
    out = tmp_path / "results"
    written = write_detector_results(out, "lstm", files, scores, corpus.window_rows)

    assert written == [out / "lstm" / "alpha" / "a.csv", out / "lstm" / "alpha" / "c.csv",
                       out / "lstm" / "zeta" / "b.csv"]
    assert result_path(out, "lstm", "zeta/b.csv") == written[2]
    with open(written[0]) as fh:
        header = next(csv.reader(fh))
    assert tuple(header) == RESULT_COLUMNS

    a = read_result_file(written[0])
    assert list(a.labels) == [0, 0, 0, 1, 1, 1, 0, 0, 0, 0]
    assert list(a.timestamps) == list(files[0].timestamps)
    np.testing.assert_array_equal(a.values, files[0].values)
    np.testing.assert_array_equal(a.anomaly_scores, scores["alpha/a.csv"])  # exact round trip

    back = read_detector_results(out, "lstm", nab_dir=nab)
    assert list(back) == list(corpus.files)
    assert list(back["zeta/b.csv"].labels) == [0, 0, 0, 1]
    assert list(back["alpha/c.csv"].labels) == [0, 0]
    # Reading back gives the same NAB score as the in-memory scores.
    read_scores = {rel: r.anomaly_scores for rel, r in back.items()}
    for prof in NAB_PROFILES:
        assert score_corpus(corpus, read_scores, prof, 0.5).raw == score_corpus(corpus, scores, prof, 0.5).raw


def test_reader_accepts_nab_prefixed_names_and_reports_missing(tmp_path):
    nab = make_nab_dir(tmp_path / "nab")
    det_dir = tmp_path / "res" / "numenta" / "alpha"
    det_dir.mkdir(parents=True)
    (det_dir / "numenta_a.csv").write_text("timestamp,value,anomaly_score\n2014-04-01 00:00:00,0.0,0.25\n")
    found = read_detector_results(tmp_path / "res", "numenta")
    assert list(found) == ["alpha/a.csv"]
    assert found["alpha/a.csv"].labels is None
    assert list(found["alpha/a.csv"].anomaly_scores) == [0.25]
    with pytest.raises(FileNotFoundError, match="alpha/c.csv"):
        read_detector_results(tmp_path / "res", "numenta", nab_dir=nab)


def test_length_mismatch_is_rejected(tmp_path):
    nab = make_nab_dir(tmp_path / "nab")
    files = list(iter_corpus(nab))
    scores = {f.relative_path: np.zeros(len(f.values) + 1) for f in files}
    with pytest.raises(ValueError, match="scores for"):
        write_detector_results(tmp_path / "out", "d", files, scores, {})


def test_reference_results_cover_the_corpus(nab_dir, nab_corpus, reference_scores):
    assert sorted(reference_scores) == list(nab_corpus.files)
    for rel, scores in reference_scores.items():
        assert len(scores) == nab_corpus.n_rows[rel]
        assert np.all((scores >= 0) & (scores <= 1))
