"""Sensor fleet simulator: signal families, anomaly injection with ground-truth labels,
MQTT publishing in the daemon's payload formats, and CSV replay.

Independent of ``anomalyd.daemon`` and ``anomalyd.models`` by design. Offline API for
evaluation and training: ``generate_scenario`` and ``training_series``; live publishing:
``anomalyd simulate`` (see ``cli.py``).
"""

from .anomalies import KIND_NAMES, AnomalyConfig, Label
from .fleet import DEFAULT_START_TS, Fleet, FleetConfig, Tick
from .scenario import Scenario, generate_scenario, scenario_from_config, training_series
from .signals import FAMILY_NAMES

__all__ = [
    "AnomalyConfig", "DEFAULT_START_TS", "FAMILY_NAMES", "Fleet", "FleetConfig", "KIND_NAMES",
    "Label", "Scenario", "Tick", "generate_scenario", "scenario_from_config", "training_series",
]
