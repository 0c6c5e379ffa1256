"""The network: a stacked LSTM that predicts a sensor's next standardised value.

Keras is the source of truth. ``build_sequence_model`` is what training fits (whole sequences,
stateless); ``step_function`` wraps the *same layer objects* into one explicit-state step
``(x, state) -> (prediction, state')`` that the step engines compile. The output is a
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

    def __call__(self, x, state):
        width = self.spec.state_width
        offsets = [0]
        for units in self.spec.units:
            offsets.append(offsets[-1] + units)
        layer_in, new_h, new_c = x, [], []
        for cell, lo, hi in zip(self.cells, offsets[:-1], offsets[1:]):
            h_next, c_next = lstm_cell_step(cell, layer_in, state[:, lo:hi], state[:, width + lo:width + hi])
            new_h.append(h_next)
            new_c.append(c_next)
            layer_in = h_next
        prediction = ops.squeeze(head_layer(self.model)(layer_in), -1) + x[:, 0]
        # Every row is computed on its own, so padding rows cannot leak into real ones; the
        # engines keep masked rows' state (a select here splits the compiled program in two
        # for XNNPACK: 13% slower at B = 1024).
        return prediction, ops.concatenate(new_h + new_c, axis=1)


def lstm_cell_step(cell: keras.layers.LSTMCell, x, h, c):
    """One step of a trained Keras ``LSTMCell``, with its own weights and activations, as one
    matrix product over [x | h]. Calling the cell computes x @ W and h @ U apart, which the
    LiteRT converter keeps as two FULLY_CONNECTED ops and an ADD; fused, the compiled step is
    20-25% faster at B = 1024 (docs/performance.md). Outputs equal the cell's within 4e-7
    (tests compare the step with the Keras sequence model)."""
    kernel = ops.concatenate([cell.kernel, cell.recurrent_kernel], axis=0)
    gates = ops.matmul(ops.concatenate([x, h], axis=1), kernel)
    if cell.use_bias:
        gates = gates + cell.bias
    i, f, g, o = ops.split(gates, 4, axis=1)  # Keras's gate order
    c_next = cell.recurrent_activation(f) * c + cell.recurrent_activation(i) * cell.activation(g)
    return cell.recurrent_activation(o) * cell.activation(c_next), c_next


def step_function(model: keras.Model, spec: NetworkSpec) -> StepFunction:
    return StepFunction(model, spec)
