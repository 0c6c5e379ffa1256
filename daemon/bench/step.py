"""``anomalyd bench step``: our step engine against the usual ways of running an LSTM online.

For each batch size B, one call advances B sensors by one reading:
- engine: the daemon's path, gathering B random rows of a larger state table into the
  engine, one compiled step, scattering the new state back;
- bare_<backend>: the compiled step alone, per backend: a full batch of inputs copied in from
  contiguous arrays and the outputs copied out (what set_tensor/get_tensor do), no
  gather/scatter; the fastest is the floor;
- keras_call: a Keras functional model with explicit h/c inputs, called directly;
- keras_predict_stateful: a ``stateful=True`` Keras model, ``model.predict`` per step;
- window100: ``model.predict`` on each sensor's last 100 readings, keeping the last output
  (the stateless re-feed that tutorials start from).
"""
from __future__ import annotations

import numpy as np

from anomalyd.daemon.bench.timing import machine, time_per_call
from anomalyd.models.artifact import Artifact, keras_model
from anomalyd.models.engine import BACKENDS, load_engine

BATCH_SIZES = (1, 64, 256, 1024)
WINDOW = 100
ROUNDS = 5


def _engine_call(artifact: Artifact, batch: int, rng: np.random.Generator):
    engine = load_engine(artifact, batch)
    table_rows = max(4 * batch, 4096)
    table = rng.normal(0, 0.1, (table_rows, 2 * engine.state_width)).astype(np.float32)
    # Rows in ascending order, as the daemon's batch plan hands them to the engine.
    rows = np.sort(rng.choice(table_rows, batch, replace=False))
    x = rng.normal(size=(batch, engine.n_features)).astype(np.float32)
    return lambda: engine.step_rows(table, rows, x)


def _bare_call(artifact: Artifact, batch: int, backend: str, rng: np.random.Generator):
    engine = load_engine(artifact, batch, backend)
    x = rng.normal(size=(batch, engine.n_features)).astype(np.float32)
    state = rng.normal(0, 0.1, (batch, 2 * engine.state_width)).astype(np.float32)
    return lambda: engine.run_packed(x, state)


def _keras_models(artifact: Artifact, batch: int):
    """A functional step model with explicit state, and a stateful=True sequence model."""
    import keras

    spec = artifact.network
    x_in = keras.Input((spec.n_features,))
    states_in = [keras.Input((units,)) for units in spec.units for _ in "hc"]
    layer_in, states_out = x_in, []
    cells = [keras.layers.LSTMCell(units) for units in spec.units]
    for index, cell in enumerate(cells):
        layer_in, (h, c) = cell(layer_in, states_in[2 * index:2 * index + 2])
        states_out += [h, c]
    head = keras.layers.Dense(1)
    functional = keras.Model([x_in, *states_in], [head(layer_in) + x_in[:, :1], *states_out])
    functional.set_weights(artifact.weights)

    seq_in = keras.Input(batch_shape=(batch, 1, spec.n_features))
    hidden = seq_in
    for units in spec.units:
        hidden = keras.layers.LSTM(units, return_sequences=True, stateful=True)(hidden)
    stateful = keras.Model(seq_in, keras.layers.Dense(1)(hidden) + seq_in[..., :1])
    stateful.set_weights(artifact.weights)
    return functional, stateful


def measure_batch(artifact: Artifact, batch: int, min_seconds: float, rng: np.random.Generator) -> dict:
    spec = artifact.network
    x = rng.normal(size=(batch, spec.n_features)).astype(np.float32)
    functional, stateful = _keras_models(artifact, batch)
    states = [np.zeros((batch, units), np.float32) for units in spec.units for _ in "hc"]
    window = rng.normal(size=(batch, WINDOW, spec.n_features)).astype(np.float32)
    sequence_model = keras_model(artifact)
    calls = {
        "engine": _engine_call(artifact, batch, rng),
        **{f"bare_{backend}": _bare_call(artifact, batch, backend, rng) for backend in BACKENDS},
        "keras_call": lambda: functional([x, *states], training=False)[0].numpy(),
        "keras_predict_stateful": lambda: stateful.predict(x[:, None, :], batch_size=batch, verbose=0),
        "window100": lambda: sequence_model.predict(window, batch_size=batch, verbose=0)[:, -1],
    }
    slow = {"keras_predict_stateful", "window100"}
    # Rounds interleave the methods, so a noisy moment of a shared machine falls on all of them
    # instead of on one method's every round; each method's figure is its median round.
    rounds: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(ROUNDS):
        for name, call in calls.items():
            rounds[name].append(time_per_call(call, min_seconds=min_seconds / (4 if name in slow else 2),
                                              min_calls=3 if name in slow else 20, repeats=1))
    result = {}
    for name, seconds in ((name, float(np.median(values))) for name, values in rounds.items()):
        result[name] = {"us_per_step": round(seconds * 1e6, 1), "readings_per_s": round(batch / seconds)}
    return result


def summarise(batch_result: dict) -> dict:
    """Ratios for one batch size: the engine against the Keras ways and against the floor."""
    engine = batch_result["engine"]["us_per_step"]
    bare = {name: value["us_per_step"] for name, value in batch_result.items() if name.startswith("bare_")}
    floor_name = min(bare, key=bare.get)
    return {
        "floor": {"method": floor_name, "us_per_step": bare[floor_name]},
        "speedup_vs_predict": round(batch_result["keras_predict_stateful"]["us_per_step"] / engine, 1),
        "speedup_vs_window100": round(batch_result["window100"]["us_per_step"] / engine, 1),
        "speedup_vs_keras_call": round(batch_result["keras_call"]["us_per_step"] / engine, 1),
        "engine_over_floor": round(engine / bare[floor_name], 3),
    }


def bars(summary_1024: dict) -> dict:
    """The Foundation issue's bars at B=1024."""
    return {
        "speedup_vs_predict>=60": summary_1024["speedup_vs_predict"] >= 60,
        "speedup_vs_window100>=500": summary_1024["speedup_vs_window100"] >= 500,
        "engine_over_floor<=1.3": summary_1024["engine_over_floor"] <= 1.3,
    }


def run(artifact: Artifact, batch_sizes: tuple[int, ...] = BATCH_SIZES, min_seconds: float = 0.5,
        seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    batches = {}
    for batch in batch_sizes:
        measured = measure_batch(artifact, batch, min_seconds, rng)
        batches[str(batch)] = {"methods": measured, **summarise(measured)}
    report = {"benchmark": "step", "machine": machine(), "model": {
        "fingerprint": artifact.fingerprint, "units": list(artifact.network.units)}, "batches": batches}
    if "1024" in batches:
        report["bars"] = bars(batches["1024"])
    return report
