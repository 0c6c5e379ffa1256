"""Training: fit the sequence model on series and write an artifact.

Stateless training on windows of whole series (truncated backpropagation through time: each
window starts from a zero state and its first steps carry no loss). Deterministic for a seed:
NumPy, Python and TensorFlow are seeded and TensorFlow's op determinism is switched on.
"""
from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from anomalyd.models.artifact import Artifact, save
from anomalyd.models.datasets import Series, featurize, windows
from anomalyd.models.features import FeatureSpec
from anomalyd.models.spec import NetworkSpec


@dataclass(frozen=True)
class TrainingConfig:
    seed: int = 0
    epochs: int = 20
    batch_size: int = 64
    window: int = 256
    burn_in: int = 32
    learning_rate: float = 3e-3
    validation_fraction: float = 0.15
    patience: int = 4  # epochs without validation improvement before stopping
    # Misses beyond this many standard deviations count linearly, not squared. Small, so the
    # loss is nearly the absolute miss and the network predicts the median next value: a
    # sensor that may jump at the next reading (a cycle's edge, a regime switch) is predicted
    # to stay, instead of partway toward the jump (the mean's answer, which on a quiet cycle
    # misses by several noise sigmas before every edge). See docs/model.md.
    huber_delta: float = 0.01

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "window"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.burn_in < self.window:
            raise ValueError(f"burn_in must be >= 0 and below the window ({self.window}), got {self.burn_in}")
        if self.patience < 0:
            raise ValueError(f"patience must be >= 0, got {self.patience}")
        for name in ("learning_rate", "huber_delta"):
            if not 0 < getattr(self, name) < float("inf"):  # NaN fails too
                raise ValueError(f"{name} must be finite and > 0, got {getattr(self, name)}")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")


def split_series(series: list[Series], fraction: float, seed: int) -> tuple[list[Series], list[Series]]:
    """Hold out whole series (not windows of them) for validation."""
    order = np.random.default_rng(seed).permutation(len(series))
    n_val = max(1, int(round(fraction * len(series)))) if len(series) > 1 else 0
    val = [series[i] for i in order[:n_val]]
    train = [series[i] for i in order[n_val:]]
    return train, val or train


def _datasets(series: list[Series], features: FeatureSpec, config: TrainingConfig):
    train, val = split_series(series, config.validation_fraction, config.seed)
    return (windows(*featurize(features, train), config.window, config.burn_in),
            windows(*featurize(features, val), config.window, config.burn_in))


def train(series: list[Series], out_dir: Path, network: NetworkSpec = NetworkSpec(),
          features: FeatureSpec = FeatureSpec(), config: TrainingConfig = TrainingConfig(),
          sources: dict | None = None, verbose: int | None = None) -> tuple[Artifact, dict]:
    """Train on ``series``, write the artifact to ``out_dir``, return it with the history."""
    import keras
    import tensorflow as tf

    from anomalyd.models.network import build_sequence_model
    from anomalyd.models.tf_engines import compile_step_program

    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    (x, y, w), (vx, vy, vw) = _datasets(series, features, config)
    model = build_sequence_model(network, seed=config.seed)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                  loss=keras.losses.Huber(delta=config.huber_delta), weighted_metrics=[])
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience,
                                         restore_best_weights=True)
    if verbose is None:
        verbose = 1 if sys.stderr.isatty() else 2
    started = time.time()
    fitted = model.fit(x, y[..., None], sample_weight=w, validation_data=(vx, vy[..., None], vw), epochs=config.epochs,
                       batch_size=config.batch_size, shuffle=True, callbacks=[stop], verbose=verbose)
    history = {key: [float(v) for v in values] for key, values in fitted.history.items()}
    metadata = {
        "config": asdict(config),
        "sources": sources or {},
        "train_windows": int(len(x)),
        "validation_windows": int(len(vx)),
        "epochs_run": len(history["loss"]),
        "best_val_loss": min(history["val_loss"]),
        "history": history,
        "seconds": round(time.time() - started, 1),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__,
                     "numpy": np.__version__, "python": platform.python_version()},
    }
    artifact = save(out_dir, network, features, model.get_weights(), model.to_json(),
                    compile_step_program(model, network), metadata)
    return artifact, history


def describe(artifact: Artifact) -> str:
    """One JSON line that summarises a trained artifact for the command line."""
    meta = artifact.training
    return json.dumps({"artifact": str(artifact.path), "fingerprint": artifact.fingerprint,
                       "units": list(artifact.network.units), "epochs_run": meta.get("epochs_run"),
                       "best_val_loss": meta.get("best_val_loss")})
