"""``anomalyd evaluate`` end to end: NAB result files and scores, and a simulator scenario."""
from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from anomalyd.daemon.evaluation.nab_corpus import default_nab_dir, iter_corpus


def evaluate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "anomalyd.daemon.cli", "evaluate", *args],
                          capture_output=True, text=True, timeout=600)


def test_nab_writes_one_result_file_per_data_file_and_scores_both_detectors(tmp_path):
    nab = default_nab_dir()
    if not (nab / "data").is_dir():
        pytest.skip(f"NAB corpus not found at {nab} (set ANOMALYD_NAB_DIR)")
    out = tmp_path / "results"
    result = evaluate("--nab", str(nab), "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for detector in ("anomalyd", "last_value"):
        scores = report["detectors"][detector]["nab"]
        assert set(scores) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
        assert all(-100 < value <= 100 for value in scores.values())
    files = list(iter_corpus(nab))
    assert len(files) == 58
    for f in files:
        for root in (out, out / "last_value"):
            with open(root / f.category / f.name, newline="") as handle:
                rows = list(csv.DictReader(handle))
            assert list(rows[0]) == ["timestamp", "value", "anomaly_score", "label"]
            assert len(rows) == len(f.values) and rows[0]["timestamp"] == str(f.timestamps[0])
            assert all(0.0 <= float(row["anomaly_score"]) <= 1.0 for row in rows)
    assert (out / "report.json").is_file()


def test_scenario_reports_event_metrics_by_kind_and_plots(tmp_path):
    result = evaluate("--scenario", "--sensors", "40", "--hours", "2", "--out", str(tmp_path), "--json",
                      "--plot", "2")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["overall"]["events"] > 0 and {"spike", "level_shift"} <= set(report["by_kind"])
    assert {"precision", "recall", "f1", "delay_readings_median", "delay_readings_p90", "delay_seconds_median",
            "delay_seconds_p90", "false_alarms_per_sensor_day"} <= set(report["overall"])
    assert 0.0 <= report["overall"]["recall"] <= 1.0
    # Each family's sensors on their own: together they are the whole scenario.
    families = report["by_family"].values()
    assert len(report["by_family"]) >= 3 and sum(f["sensors"] for f in families) == 40
    for key in ("events", "detected", "false_alarms", "first_visit_false_alarms", "first_visits"):
        assert sum(f[key] for f in families) == report["overall"][key], key
    # Flags at a regime's first visit are false alarms, also counted apart.
    overall = report["overall"]
    assert 0 <= overall["first_visit_false_alarms"] <= overall["false_alarms"]
    assert all(f["first_visits"] == 0 for name, f in report["by_family"].items() if name != "regime")
    assert overall["precision_without_first_visits"] == overall["detected"] / (
        overall["detected"] + overall["false_alarms"] - overall["first_visit_false_alarms"])
    assert all(f["first_visit_false_alarms"] == 0 for name, f in report["by_family"].items() if name != "regime")
    assert all(0.0 <= r <= 1.0 for f in families for r in f["recall_by_kind"].values() if r is not None)
    pngs = list((tmp_path / "plots").glob("*.png"))
    assert len(pngs) == 2 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_scenario_lead_in_is_replayed_but_not_judged():
    result = evaluate("--scenario", "--sensors", "30", "--hours", "1", "--lead-in", "2", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["scenario"]["lead_in"] == 7200.0 and report["overall"]["events"] > 0
    # Only the judged hour counts: 30 sensors x 1 h, not the 3 h replayed.
    assert 0.9 * 30 / 24 <= report["overall"]["sensor_days"] <= 30 / 24
    assert report["overall"]["excluded"] == 0  # no event falls in the lead-in
    bad = evaluate("--scenario", "--lead-in", "-1")
    assert bad.returncode == 2 and "--lead-in" in bad.stderr


@pytest.mark.parametrize("argv, message", [
    (["--hours", "nan"], "--hours must be finite"),
    (["--hours", "inf"], "--hours must be finite"),
    (["--lead-in", "nan"], "--lead-in finite"),
    (["--period", "nan"], "period must be finite and > 0"),
    (["--magnitude", "-3"], "magnitude must be finite and >= 0"),
    (["--magnitude", "nan"], "magnitude must be finite and >= 0"),
    (["--sensors", "0"], "sensors must be in 1..100000"),
    (["--kinds", "spike,wobble"], "unknown anomaly kinds ['wobble']"),
    (["--plot", "2"], "--plot needs --out DIR"),
])
def test_bad_scenario_options_are_a_clear_error_not_a_traceback(argv, message):
    result = evaluate("--scenario", *argv)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_nab_without_out_or_with_a_wrong_directory_is_a_clear_error(tmp_path):
    assert "needs --out" in evaluate("--nab", str(tmp_path)).stderr
    wrong = evaluate("--nab", str(tmp_path), "--out", str(tmp_path / "o"))
    assert wrong.returncode == 2 and "no data/ directory" in wrong.stderr


def test_an_out_directory_that_cannot_be_made_is_a_clear_error(tmp_path):
    (tmp_path / "taken").write_text("a file, not a directory")
    result = evaluate("--scenario", "--sensors", "3", "--hours", "0.1", "--out", str(tmp_path / "taken"))
    assert result.returncode == 2 and "cannot use --out" in result.stderr and "Traceback" not in result.stderr


def small_corpus(root, rows: str, windows: str | None = '{"cat/x.csv": []}'):
    """A one-file NAB layout under ``root``: data/cat/x.csv holding ``rows`` after the header."""
    (root / "data" / "cat").mkdir(parents=True)
    (root / "data" / "cat" / "x.csv").write_text("timestamp,value\n" + rows)
    (root / "labels").mkdir()
    if windows is not None:
        (root / "labels" / "combined_windows.json").write_text(windows)
    return root


@pytest.mark.parametrize("rows, windows, message", [
    ("2014-04-01 00:00:00,1\n2014-04-01 00:05:00,abc\n", '{"cat/x.csv": []}', "x.csv, line 3: not a timestamp,value"),
    ("2014-04-01 00:00:00,1\nyesterday,2\n", '{"cat/x.csv": []}', "x.csv, line 3: not a timestamp,value"),
    ("2014-04-01 00:00:00,1\n", None, "combined_windows.json: not NAB's anomaly windows"),
    ("2014-04-01 00:00:00,1\n", '{"cat/x.csv": 5}', "combined_windows.json: not NAB's anomaly windows"),
    ("2014-04-01 00:00:00,1\n", '{"cat/x.csv": [["nope", "nope"]]}', "window limits must be pairs of timestamps"),
    ("2014-04-01 00:00:00,1\n", '{"cat/y.csv": []}', "windows for files not in the corpus"),
])
def test_a_malformed_corpus_is_a_clear_error_naming_the_file(tmp_path, rows, windows, message):
    result = evaluate("--nab", str(small_corpus(tmp_path / "nab", rows, windows)), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_scenario_with_the_oracle_predictor_judges_against_ideal_predictions(tmp_path):
    runs = {}
    for predictor in ("model", "oracle"):
        result = evaluate("--scenario", "--sensors", "60", "--hours", "2", "--kinds", "level_shift",
                          "--predictor", predictor, "--json")
        assert result.returncode == 0, result.stderr
        runs[predictor] = json.loads(result.stdout)
        assert runs[predictor]["scenario"]["predictor"] == predictor
    model, oracle = (runs[p]["overall"] for p in ("model", "oracle"))
    assert model["events"] == oracle["events"] > 30  # the same scenario
    # An ideal predictor's errors are noise alone: at least as many shifts seen, fewer false
    # alarms (on this small scenario the model now sees as many shifts: 48 of 53 each).
    assert oracle["detected"] >= model["detected"] and oracle["false_alarms"] < model["false_alarms"]
    table = evaluate("--scenario", "--sensors", "10", "--hours", "1", "--predictor", "oracle")
    assert table.returncode == 0 and "ideal one-step predictions" in table.stdout
    assert "family" in table.stdout and "level_shift" in table.stdout
    nab = evaluate("--nab", str(tmp_path), "--out", str(tmp_path / "o"), "--predictor", "oracle")
    assert nab.returncode == 2 and "--scenario only" in nab.stderr
