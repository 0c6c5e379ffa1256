"""Training writes a loadable, reproducible artifact and learns something."""
from __future__ import annotations

import json

import numpy as np
import pytest

from anomalyd.models import artifact
from anomalyd.models.datasets import read_series_csv
from anomalyd.models.engine import load_engine
from anomalyd.models.spec import NetworkSpec
from anomalyd.models.training import TrainingConfig, train

CONFIG = TrainingConfig(seed=3, epochs=4, window=96, burn_in=16, patience=10)


def toy_series(n: int, length: int, seed: int):
    """Noisy sines of different periods, scales and sampling jitter: easy to learn from."""
    rng = np.random.default_rng(seed)
    series = []
    for _ in range(n):
        ts = np.cumsum(rng.uniform(50, 70, length))
        period = rng.uniform(1500, 6000)
        values = rng.uniform(1, 50) * np.sin(2 * np.pi * ts / period) + rng.uniform(-100, 100)
        series.append((ts, values + rng.normal(0, 0.05, length)))
    return series


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("trained")
    result, history = train(toy_series(24, 600, 0), out, NetworkSpec((8,)), config=CONFIG, verbose=0)
    return out, result, history


def test_training_lowers_validation_loss_and_writes_a_loadable_artifact(trained):
    out, result, history = trained
    assert history["val_loss"][-1] < history["val_loss"][0]
    loaded = artifact.load(out)
    assert loaded.fingerprint == result.fingerprint  # stable across reloads
    meta = json.loads((out / "model.json").read_text())
    assert meta["training"]["config"]["seed"] == 3 and meta["network"]["units"] == [8]
    engine = load_engine(loaded, 4)
    h = np.zeros((4, engine.state_width), np.float32)
    prediction, _, _ = engine.step(np.ones((4, engine.n_features), np.float32), h, h, np.ones(4, np.float32))
    assert np.isfinite(prediction).all()


def test_same_seed_gives_the_same_model(trained, tmp_path):
    _, first, _ = trained
    second, _ = train(toy_series(24, 600, 0), tmp_path, NetworkSpec((8,)), config=CONFIG, verbose=0)
    assert second.fingerprint == first.fingerprint


def test_fingerprint_changes_with_weights(trained, tmp_path):
    out, result, _ = trained
    weights = [w.copy() for w in result.weights]
    weights[0][0, 0] += 1e-3
    changed = artifact.save(tmp_path, result.network, result.features, weights, "{}", result.step_program, {})
    assert changed.fingerprint != result.fingerprint


def test_tampered_weights_are_detected(trained, tmp_path):
    out, result, _ = trained
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    weights = dict(np.load(copy / "weights.npz"))
    weights["w000"] = weights["w000"] + 1.0
    np.savez(copy / "weights.npz", **weights)
    with pytest.raises(artifact.ArtifactError, match="fingerprint"):
        artifact.load(copy)


def test_read_series_csv_accepts_dates_and_unix_seconds(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("timestamp,value\n2014-04-01 00:00:00,1.5\n2014-04-01 00:05:00,2\n")
    ts, values = read_series_csv(path)
    assert ts.tolist() == [1396310400.0, 1396310700.0] and values.tolist() == [1.5, 2.0]
    path.write_text("timestamp,value\n1700000000.5,3\n")
    assert read_series_csv(path)[0].tolist() == [1700000000.5]
    path.write_text("time,reading\n1,2\n")
    with pytest.raises(ValueError, match="timestamp"):
        read_series_csv(path)
