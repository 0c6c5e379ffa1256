"""Model fixtures: small artifacts with seeded random weights, built once per test session."""
from __future__ import annotations

import numpy as np
import pytest

from anomalyd.models import artifact
from anomalyd.models.features import FeatureSpec
from anomalyd.models.spec import NetworkSpec

LAYER_CONFIGS = {"one_layer": (16,), "two_layers": (12, 8)}


def make_artifact(path, units, seed: int = 0) -> artifact.Artifact:
    """A real artifact (Keras weights, converted step program) with random weights.

    The weights are scaled up so the gates are far from their linear region: a step engine that
    gets the maths slightly wrong cannot hide behind near-zero activations.
    """
    from anomalyd.models.network import build_sequence_model
    from anomalyd.models.tf_engines import compile_step_program

    spec = NetworkSpec(units)
    model = build_sequence_model(spec, seed=seed)
    rng = np.random.default_rng(seed)
    model.set_weights([w + rng.normal(0.0, 0.3, w.shape).astype(np.float32) for w in model.get_weights()])
    return artifact.save(path, spec, FeatureSpec(), model.get_weights(), model.to_json(),
                         compile_step_program(model, spec), {"purpose": "test"})


@pytest.fixture(scope="session", params=list(LAYER_CONFIGS))
def model_artifact(request, tmp_path_factory) -> artifact.Artifact:
    return make_artifact(tmp_path_factory.mktemp(request.param), LAYER_CONFIGS[request.param])


def random_sequences(n: int, steps: int, n_features: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 1.5, (n, steps, n_features)).astype(np.float32)
