"""Fixtures for the scorer tests: the model artifact; helpers live in ``scorer_driver`` and
``scoring_signals`` (this directory is put on ``sys.path``)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from anomalyd.models.artifact import load

sys.path.insert(0, str(Path(__file__).parent))

# Point the LSTM tests at another artifact directory than the shipped model (e.g. a candidate).
ARTIFACT_ENV = "ANOMALYD_TEST_ARTIFACT"


@pytest.fixture(scope="session")
def artifact():
    return load(os.environ.get(ARTIFACT_ENV) or None)
