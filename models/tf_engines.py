"""TensorFlow-side step programs: ``tf.function`` engines and the LiteRT conversion.

Importing this module imports TensorFlow; the daemon only does so when configured to run a
TensorFlow engine or when training.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from anomalyd.models.artifact import Artifact, keras_model, save
from anomalyd.models.engine import _BufferedEngine
from anomalyd.models.network import step_function
from anomalyd.models.spec import NetworkSpec


def _signature(spec: NetworkSpec, batch_size: int | None) -> list[tf.TensorSpec]:
    return [tf.TensorSpec([batch_size, spec.n_features], tf.float32, name="x"),
            tf.TensorSpec([batch_size, 2 * spec.state_width], tf.float32, name="state")]


def traced_step(model, spec: NetworkSpec, batch_size: int | None, jit_compile: bool = False):
    """The Keras layers' step as a ``tf.function`` returning (prediction, state')."""
    step = step_function(model, spec)
    return tf.function(lambda x, state: step(x, state),
                       input_signature=_signature(spec, batch_size), jit_compile=jit_compile)


def compile_step_program(model, spec: NetworkSpec) -> bytes:
    """Convert the step to a LiteRT flat buffer with a dynamic batch dimension.

    The variables are frozen into constants first: converting the Keras 3 variables directly
    produced a program that read garbage weights (TensorFlow 2.21). The program's inputs are
    named x and state and its outputs come in the order prediction, state'. The batch is
    fixed later by the engine (``resize_tensor_input``); measured here, a resized dynamic
    program runs as fast as one converted for that batch size.
    """
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    frozen = convert_variables_to_constants_v2(traced_step(model, spec, None).get_concrete_function())
    return tf.lite.TFLiteConverter.from_concrete_functions([frozen]).convert()


class TFFunctionEngine(_BufferedEngine):
    """The step as a (optionally XLA-compiled) ``tf.function`` at a fixed batch size."""

    def __init__(self, artifact: Artifact, batch_size: int, jit_compile: bool = False) -> None:
        spec = artifact.network
        super().__init__(batch_size, spec.n_features, spec.state_width)
        self._function = traced_step(keras_model(artifact), spec, batch_size, jit_compile)
        self._inputs = (np.zeros((batch_size, spec.n_features), np.float32),
                        np.zeros((batch_size, 2 * spec.state_width), np.float32))
        self._invoke()  # trace and compile now, not on the first real tick

    def _buffers(self):
        return self._inputs

    def _invoke(self):
        return tuple(tensor.numpy() for tensor in self._function(*self._inputs))


def recompile(artifact: Artifact) -> Artifact:
    """Rewrite an artifact's step program from its weights (same fingerprint): needed when
    the program's interface changes, never when the network does."""
    model = keras_model(artifact)
    return save(artifact.path, artifact.network, artifact.features, artifact.weights, model.to_json(),
                compile_step_program(model, artifact.network), artifact.training)
