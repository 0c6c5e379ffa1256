"""The step engines against Keras, the source of truth, and the per-row state guarantees."""
from __future__ import annotations

import numpy as np
import pytest

from anomalyd.models.artifact import keras_model
from anomalyd.models.engine import BACKENDS, load_engine, pack, unpack

from .conftest import random_sequences

TOLERANCE = 1e-5


def run_engine(engine, sequences: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step every sequence through the engine; returns predictions [n, T] and final h, c."""
    n, steps, _ = sequences.shape
    h = np.zeros((n, engine.state_width), np.float32)
    c = np.zeros_like(h)
    predictions = np.zeros((n, steps), np.float32)
    for t in range(steps):
        predictions[:, t], h, c = engine.step(sequences[:, t], h, c, np.ones(n, np.float32))
    return predictions, h, c


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch", [1, 7, 64])
def test_engine_matches_full_sequence_keras_model(model_artifact, backend, batch):
    sequences = random_sequences(batch, 40, model_artifact.network.n_features, seed=batch)
    expected = keras_model(model_artifact)(sequences).numpy()[..., 0]
    engine = load_engine(model_artifact, batch, backend)
    predictions, _, _ = run_engine(engine, sequences)
    assert np.abs(predictions - expected).max() <= TOLERANCE


def test_engine_matches_stateful_keras_model_fed_one_step_at_a_time(model_artifact):
    import keras

    batch, steps = 5, 60
    spec = model_artifact.network
    inputs = keras.Input(batch_shape=(batch, 1, spec.n_features))
    hidden = inputs
    for units in spec.units:
        hidden = keras.layers.LSTM(units, return_sequences=True, stateful=True)(hidden)
    head = keras.layers.Dense(1)(hidden)
    stateful = keras.Model(inputs, head + inputs[..., :1])
    stateful.set_weights(model_artifact.weights)
    sequences = random_sequences(batch, steps, spec.n_features, seed=11)
    expected = np.stack([stateful.predict(sequences[:, t:t + 1], verbose=0)[:, 0, 0] for t in range(steps)], 1)
    predictions, _, _ = run_engine(load_engine(model_artifact, batch), sequences)
    assert np.abs(predictions - expected).max() <= TOLERANCE


def test_reset_row_restarts_that_row_only(model_artifact):
    batch, steps, reset_at, reset_row = 6, 50, 20, 2
    engine = load_engine(model_artifact, batch)
    sequences = random_sequences(batch, steps, model_artifact.network.n_features, seed=3)
    baseline, _, _ = run_engine(engine, sequences)

    table = np.zeros((batch, 2 * engine.state_width), np.float32)
    rows = np.arange(batch)
    predictions = np.zeros((batch, steps), np.float32)
    for t in range(steps):
        if t == reset_at:
            table[reset_row] = 0.0  # the initial state of this row, h and c
        predictions[:, t] = engine.step_rows(table, rows, sequences[:, t])
    fresh, _, _ = run_engine(load_engine(model_artifact, 1), sequences[reset_row:reset_row + 1, reset_at:])

    others = rows != reset_row
    assert np.array_equal(predictions[others], baseline[others])  # bit for bit
    assert np.abs(predictions[reset_row, reset_at:] - fresh[0]).max() <= TOLERANCE
    assert np.abs(predictions[reset_row, reset_at:] - baseline[reset_row, reset_at:]).max() > 1e-3


@pytest.mark.parametrize("backend", BACKENDS)
def test_masked_rows_keep_state_and_padding_does_not_leak(model_artifact, backend):
    batch = 8
    engine = load_engine(model_artifact, batch, backend)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(batch, engine.n_features)).astype(np.float32)
    h = rng.normal(size=(batch, engine.state_width)).astype(np.float32)
    c = rng.normal(size=(batch, engine.state_width)).astype(np.float32)
    mask = np.array([1, 0, 1, 1, 0, 0, 1, 1], np.float32)
    prediction, h_out, c_out = engine.step(x, h, c, mask)
    masked = mask == 0
    assert np.array_equal(h_out[masked], h[masked]) and np.array_equal(c_out[masked], c[masked])
    assert not np.allclose(h_out[~masked], h[~masked])

    garbage_x, garbage_h = x.copy(), h.copy()
    garbage_x[masked] = 1e6
    garbage_h[masked] = -1e6
    prediction2, h_out2, c_out2 = engine.step(garbage_x, garbage_h, c, mask)
    assert np.array_equal(prediction2[~masked], prediction[~masked])
    assert np.array_equal(h_out2[~masked], h_out[~masked]) and np.array_equal(c_out2[~masked], c_out[~masked])


def test_step_rows_touches_only_named_rows(model_artifact):
    engine = load_engine(model_artifact, 4)
    rng = np.random.default_rng(9)
    table = rng.normal(size=(10, 2 * engine.state_width)).astype(np.float32)
    before = table.copy()
    rows = np.array([7, 2, 5])
    x = rng.normal(size=(3, engine.n_features)).astype(np.float32)
    predictions = engine.step_rows(table, rows, x)
    expected, eh, ec = load_engine(model_artifact, 3).step(x, *unpack(before[rows]), np.ones(3, np.float32))
    untouched = np.setdiff1d(np.arange(10), rows)
    assert np.array_equal(table[untouched], before[untouched])
    assert np.abs(predictions - expected).max() <= TOLERANCE
    assert np.abs(table[rows] - pack(eh, ec)).max() <= TOLERANCE


def test_too_many_rows_for_the_batch_is_an_error(model_artifact):
    engine = load_engine(model_artifact, 2)
    table = np.zeros((5, 2 * engine.state_width), np.float32)
    with pytest.raises(ValueError, match="do not fit"):
        engine.step_rows(table, np.arange(3), np.zeros((3, engine.n_features), np.float32))


def test_unknown_backend_is_rejected(model_artifact):
    with pytest.raises(ValueError, match="unknown engine backend"):
        load_engine(model_artifact, 4, "cuda")
