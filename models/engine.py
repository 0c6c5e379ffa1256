"""Step engines: one compiled LSTM step for a fixed batch of B sensor slots.

    step(x[B, F], h[B, H], c[B, H], mask[B]) -> (prediction[B], h'[B, H], c'[B, H])

State goes in and out explicitly (no ``stateful=True`` layer, no ``model.predict``): the caller
owns every sensor's h and c. Internally the program takes them packed as one ``state`` row
[h | c] of width 2H per sensor, which is also how the daemon stores them: ``step_rows``, the
hot path, gathers the chosen rows of the caller's state table straight into the engine's input
buffer, runs one step, and scatters the new state back into those rows only: padding slots are
never written back and rows not named are never touched. ``step`` keeps masked rows' state
bit for bit by copying it past the program, which itself has no mask (each row is computed on
its own, so padding cannot leak into real rows; a select inside the program cost 13%).

Backends, measured by ``anomalyd bench step`` (docs/performance.md): ``litert`` runs the
artifact's flat buffer in the LiteRT interpreter and needs no TensorFlow; ``tf`` and ``xla``
trace the Keras layers into a ``tf.function`` (optionally XLA-compiled) and are kept for
comparison and for machines where the interpreter is unavailable.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np

from anomalyd.models.artifact import Artifact

BACKENDS = ("litert", "tf", "xla")
# Tensor names in the step program (models.tf_engines.compile_step_program): the inputs keep
# their placeholder names, the outputs are numbered in the order prediction, state'.
INPUT_NAMES = ("x", "state")
OUTPUT_NAMES = ("Identity", "Identity_1")
LAST_VALUE = "last_value"  # the baseline predictor, not a backend of the network


class StepEngine(Protocol):
    batch_size: int
    n_features: int
    state_width: int  # H: one of h or c; a packed state row is 2H wide

    def step(self, x: np.ndarray, h: np.ndarray, c: np.ndarray,
             mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One step over a full batch; returns new arrays (inputs are not modified)."""

    def step_rows(self, table: np.ndarray, rows: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Step the given rows (at most B, unique) of a packed [N, 2H] state table in place;
        returns their predictions."""


def pack(h: np.ndarray, c: np.ndarray) -> np.ndarray:
    return np.concatenate([h, c], axis=1)


def unpack(state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    width = state.shape[1] // 2
    return state[:, :width], state[:, width:]


class _BufferedEngine:
    """Shared gather/step/scatter around a backend's ``_invoke`` on full-size buffers."""

    def __init__(self, batch_size: int, n_features: int, state_width: int) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.batch_size, self.n_features, self.state_width = batch_size, n_features, state_width

    def _buffers(self) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _invoke(self) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def run_packed(self, x: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One step on a full batch given as contiguous arrays (inputs copied in, outputs
        copied out, as set_tensor/get_tensor would): the bare step, the benchmark floor."""
        x_in, state_in = self._buffers()
        x_in[...], state_in[...] = x, state
        del x_in, state_in  # LiteRT refuses to run while views of its memory live
        prediction, state_out = self._invoke()
        return prediction.copy(), state_out.copy()

    def step(self, x, h, c, mask):
        state = pack(h, c)
        prediction, stepped = self.run_packed(x, state)
        stepped = np.where(np.asarray(mask)[:, None] > 0.5, stepped, state)  # masked rows: as they were
        h_out, c_out = unpack(stepped)
        return prediction, h_out.copy(), c_out.copy()

    def step_rows(self, table, rows, x):
        n = len(rows)
        if n > self.batch_size:
            raise ValueError(f"{n} rows do not fit a batch of {self.batch_size}")
        x_in, state_in = self._buffers()
        x_in[:n] = x
        # mode="clip" lets take() write straight into the buffer (mode="raise" buffers first).
        np.take(table, rows, axis=0, out=state_in[:n], mode="clip")
        del x_in, state_in
        prediction, state = self._invoke()
        table[rows] = state[:n]  # padding rows beyond n hold stale inputs and are never read
        return prediction[:n].copy()


class LiteRTEngine(_BufferedEngine):
    """The artifact's step program in the LiteRT interpreter, shapes fixed at batch_size."""

    def __init__(self, artifact: Artifact, batch_size: int, threads: int = 1) -> None:
        super().__init__(batch_size, artifact.network.n_features, artifact.network.state_width)
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_content=artifact.step_program, num_threads=threads)
        inputs = {detail["name"]: detail for detail in self._interpreter.get_input_details()}
        for name in INPUT_NAMES:
            shape = list(inputs[name]["shape_signature"])
            shape[0] = batch_size
            self._interpreter.resize_tensor_input(inputs[name]["index"], shape, strict=True)
        self._interpreter.allocate_tensors()
        outputs = {detail["name"]: detail["index"] for detail in self._interpreter.get_output_details()}
        # Functions that return views of the interpreter's own memory (kept: creating them
        # costs more than calling them; the views themselves must not outlive a call).
        self._in = [self._interpreter.tensor(inputs[name]["index"]) for name in INPUT_NAMES]
        self._out = [self._interpreter.tensor(outputs[name]) for name in OUTPUT_NAMES]

    def _buffers(self):
        # Writing these views is the whole "set_tensor": no copy in between.
        return tuple(view() for view in self._in)

    def _invoke(self):
        self._interpreter.invoke()
        return tuple(view() for view in self._out)


class LastValueEngine:
    """Baseline predictor with the engine interface: the next value equals the current one.

    Run through the identical scoring chain, it shows what the LSTM adds (evaluation reports
    both side by side). It keeps no state; the one state column pair exists to fit the tables.
    """

    state_width = 1

    def __init__(self, n_features: int, batch_size: int) -> None:
        self.n_features, self.batch_size = n_features, batch_size

    def step(self, x, h, c, mask):
        return x[:, 0].copy(), h.copy(), c.copy()

    def step_rows(self, table, rows, x):
        return np.asarray(x[:, 0], np.float32).copy()


def load_engine(artifact: Artifact, batch_size: int, backend: str = "litert", threads: int = 1) -> StepEngine:
    """The step engine for ``artifact`` at a fixed batch size on the chosen backend."""
    if backend == "litert":
        return LiteRTEngine(artifact, batch_size, threads)
    if backend == LAST_VALUE:
        return LastValueEngine(artifact.network.n_features, batch_size)
    if backend in ("tf", "xla"):
        from anomalyd.models.tf_engines import TFFunctionEngine

        return TFFunctionEngine(artifact, batch_size, jit_compile=backend == "xla")
    raise ValueError(f"unknown engine backend {backend!r}; choose one of {', '.join((*BACKENDS, LAST_VALUE))}")
