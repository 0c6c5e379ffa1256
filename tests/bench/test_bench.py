"""The benchmark commands produce complete reports (figures are measured, not asserted)."""
from __future__ import annotations

import pytest

from anomalyd.daemon.bench import e2e, scale, step
from anomalyd.models.artifact import load


@pytest.fixture(scope="module")
def artifact():
    return load()


def test_step_report_has_every_method_and_ratio(artifact):
    report = step.run(artifact, batch_sizes=(1, 64), min_seconds=0.02)
    for batch in ("1", "64"):
        entry = report["batches"][batch]
        assert {"engine", "bare_litert", "bare_tf", "bare_xla", "keras_call", "keras_predict_stateful",
                "window100"} <= set(entry["methods"])
        assert all(m["us_per_step"] > 0 and m["readings_per_s"] > 0 for m in entry["methods"].values())
        assert entry["floor"]["method"].startswith("bare_")
        assert entry["speedup_vs_predict"] > 1 and entry["speedup_vs_window100"] > 1  # predict is slower


def test_scale_measures_ticks_checkpoint_and_restore(artifact):
    result = scale.measure(2000, artifact, ticks=3)
    assert result["readings_per_s"] > 0 and result["tick_p99_s"] >= result["tick_p50_s"]
    assert result["checkpoint_bytes"] > 2000 * 100 and result["restore_s"] > 0
    assert result["peak_rss_bytes"] > 0 and result["small_ticks_during_checkpoint"] >= 0


@pytest.mark.slow
def test_e2e_quick_run_reports_every_variant(artifact):
    report = e2e.run(artifact, quick=True)
    assert {"single", "senml100", "latency", "bars"} <= set(report)
    assert report["single"]["anomalyd"]["readings"] >= 20_000
