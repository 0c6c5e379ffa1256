"""The network: a stacked LSTM that predicts a sensor's next standardised value.

Keras is the source of truth. ``build_sequence_model`` is what training fits (whole sequences,
stateless); ``step_function`` wraps the *same layer objects* into one explicit-state step
``(x, state, mask) -> (prediction, state')`` that the step engines compile. The output is a
residual on the current value (prediction = z + head(h)), so an untrained head degrades to
the last-value predictor instead of to nonsense.

State layout: ``state`` is [B, 2H] with H = sum(units): first every layer's h side by side,
then every layer's c. One row holds all of a sensor's network state contiguously, so one
gather and one scatter move it (measured: half the cost of separate h and c tables).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from keras import ops  # noqa: E402

from anomalyd.models.spec import NetworkSpec  # noqa: E402


def build_sequence_model(spec: NetworkSpec, seed: int | None = None) -> keras.Model:
    """Sequence model [batch, time, features] -> [batch, time, 1] next-value predictions."""
    inputs = keras.Input((None, spec.n_features), name="x")
    hidden = inputs
    for layer_index, units in enumerate(spec.units):
        hidden = keras.layers.LSTM(units, return_sequences=True, name=f"lstm_{layer_index}",
                                   kernel_initializer=keras.initializers.GlorotUniform(seed),
                                   recurrent_initializer=keras.initializers.Orthogonal(seed=seed))(hidden)
    delta = keras.layers.Dense(1, name="head", kernel_initializer=keras.initializers.GlorotUniform(seed))(hidden)
    prediction = delta + inputs[..., :1]
    return keras.Model(inputs, prediction, name="anomalyd_lstm")


def lstm_layers(model: keras.Model) -> list[keras.layers.LSTM]:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.LSTM)]


def head_layer(model: keras.Model) -> keras.layers.Dense:
    return model.get_layer("head")


@dataclass
class StepFunction:
    """One explicit-state step built from a trained sequence model's own layers."""

    model: keras.Model
    spec: NetworkSpec
    cells: list = field(init=False)

    def __post_init__(self) -> None:
        self.cells = [layer.cell for layer in lstm_layers(self.model)]

    def __call__(self, x, state, mask):
        width = self.spec.state_width
        offsets = [0]
        for units in self.spec.units:
            offsets.append(offsets[-1] + units)
        layer_in, new_h, new_c = x, [], []
        for cell, lo, hi in zip(self.cells, offsets[:-1], offsets[1:]):
            out, (h_next, c_next) = cell(layer_in, [state[:, lo:hi], state[:, width + lo:width + hi]])
            new_h.append(h_next)
            new_c.append(c_next)
            layer_in = out
        prediction = ops.squeeze(head_layer(self.model)(layer_in), -1) + x[:, 0]
        keep = ops.expand_dims(mask > 0.5, -1)
        # Masked (padding) rows return their input state untouched, bit for bit.
        return prediction, ops.where(keep, ops.concatenate(new_h + new_c, axis=1), state)


def step_function(model: keras.Model, spec: NetworkSpec) -> StepFunction:
    return StepFunction(model, spec)
