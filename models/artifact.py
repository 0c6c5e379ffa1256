"""Model artifacts: one directory with everything needed to serve and to reproduce a model.

    model.json         format version, network and feature specs, training metadata,
                       the fingerprint, and the SHA-256 of the step program
    weights.npz        the Keras weights, in ``model.get_weights()`` order
    architecture.json  the Keras model config, for people and for Keras
    step.tflite        the one-step program (dynamic batch) run by the LiteRT interpreter

Loading needs only NumPy: the daemon serves from ``step.tflite`` and never imports TensorFlow
unless asked for a TensorFlow engine. The fingerprint is a hash of the architecture, the
feature settings and the weights, so two artifacts with the same fingerprint compute the same
thing, and sensor state saved under one fingerprint is only meaningful for that fingerprint.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anomalyd.models.features import FeatureSpec
from anomalyd.models.spec import NetworkSpec

# 2: the step program takes (x, state) without a mask. A format-1 artifact's weights still
# load (the fingerprint is unchanged) once its program is rewritten: models.tf_engines.recompile.
FORMAT_VERSION = 2
DEFAULT_ARTIFACT = Path(__file__).resolve().parent / "default"


class ArtifactError(Exception):
    """The artifact directory is missing, incomplete or inconsistent."""


@dataclass(frozen=True)
class Artifact:
    path: Path
    network: NetworkSpec
    features: FeatureSpec
    weights: list[np.ndarray]
    fingerprint: str
    training: dict
    step_program: bytes

    @property
    def short_fingerprint(self) -> str:
        return self.fingerprint[:12]

    def head_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """The shared output layer (kernel [units, 1], bias [1]): the last two weights."""
        return self.weights[-2], self.weights[-1]


def fingerprint(network: NetworkSpec, features: FeatureSpec, weights: list[np.ndarray]) -> str:
    digest = hashlib.sha256()
    spec = {"network": network.to_dict(), "features": features.to_dict()}
    digest.update(json.dumps(spec, sort_keys=True).encode())
    for array in weights:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def save(path: Path, network: NetworkSpec, features: FeatureSpec, weights: list[np.ndarray],
         architecture: str, step_program: bytes, training: dict) -> Artifact:
    """Write an artifact directory (created if missing) and return it as loaded."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    weights = [np.asarray(w, np.float32) for w in weights]
    np.savez(path / "weights.npz", **{f"w{index:03d}": w for index, w in enumerate(weights)})
    (path / "architecture.json").write_text(architecture)
    (path / "step.tflite").write_bytes(step_program)
    meta = {
        "format": FORMAT_VERSION,
        "fingerprint": fingerprint(network, features, weights),
        "network": network.to_dict(),
        "features": features.to_dict(),
        "step_program_sha256": hashlib.sha256(step_program).hexdigest(),
        "training": training,
    }
    (path / "model.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return load(path)


def load(path: Path | str | None = None, check_format: bool = True) -> Artifact:
    """Load and verify an artifact; ``None`` means the model shipped with the package.
    ``check_format=False`` also loads older formats (to rewrite their step program)."""
    path = Path(path) if path is not None else DEFAULT_ARTIFACT
    try:
        meta = json.loads((path / "model.json").read_text())
        with np.load(path / "weights.npz") as stored:
            weights = [stored[name] for name in sorted(stored.files)]
        step_program = (path / "step.tflite").read_bytes()
    except (OSError, ValueError, KeyError) as exc:
        raise ArtifactError(f"cannot read model artifact {path}: {exc}") from exc
    if check_format and meta.get("format") != FORMAT_VERSION:
        hint = (" (its step program takes a mask: rewrite it with python -c 'from anomalyd.models import "
                f"artifact, tf_engines; tf_engines.recompile(artifact.load(\"{path}\", check_format=False))')"
                if meta.get("format") == 1 else "")
        raise ArtifactError(f"{path}: unsupported artifact format {meta.get('format')!r}{hint}")
    network = NetworkSpec.from_dict(meta["network"])
    features = FeatureSpec.from_dict(meta["features"])
    actual = fingerprint(network, features, weights)
    if actual != meta["fingerprint"]:
        raise ArtifactError(f"{path}: weights do not match the recorded fingerprint")
    if hashlib.sha256(step_program).hexdigest() != meta["step_program_sha256"]:
        raise ArtifactError(f"{path}: step.tflite does not match the recorded checksum")
    return Artifact(path, network, features, weights, actual, meta.get("training", {}), step_program)


def keras_model(artifact: Artifact):
    """Rebuild the trained Keras sequence model (imports TensorFlow)."""
    from anomalyd.models.network import build_sequence_model

    model = build_sequence_model(artifact.network)
    model.set_weights(artifact.weights)
    return model
