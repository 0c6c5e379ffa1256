"""Offline API for evaluation and training: whole scenarios as arrays, no MQTT.

Same generator as the live publisher, so ``generate_scenario(seed=S, ...)`` holds exactly the
values and labels that ``anomalyd simulate --seed S`` publishes with matching options.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .anomalies import KIND_NAMES, AnomalyConfig, Label
from .fleet import DEFAULT_START_TS, Fleet, FleetConfig, Tick
from .signals import FAMILY_NAMES

CHUNK_READINGS = 500_000  # per generation step: bounds memory, keeps numpy calls large
TRAINING_PERIODS = (1.0, 5.0, 10.0, 60.0, 300.0, 900.0, 3600.0)


@dataclass
class Scenario:
    sensor_ids: list[str]
    ts: list[np.ndarray]  # per sensor, increasing
    values: list[np.ndarray]
    labels: list[Label]  # sorted by start_ts
    families: list[str]
    local_sigma: np.ndarray  # per sensor: the unit of label magnitudes
    start_ts: float
    end_ts: float
    config: FleetConfig | None = None  # what made it (None: assembled by hand)
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._index = {s: i for i, s in enumerate(self.sensor_ids)}

    def series(self, sensor_id: str) -> tuple[np.ndarray, np.ndarray]:
        i = self._index[sensor_id]
        return self.ts[i], self.values[i]

    def labels_for(self, sensor_id: str) -> list[Label]:
        return [lb for lb in self.labels if lb.sensor == sensor_id]

    @property
    def n_readings(self) -> int:
        return sum(len(t) for t in self.ts)


def generate_scenario(n_sensors: int, duration: float, **options) -> Scenario:
    """All readings of ``duration`` simulated seconds from ``start_ts``, per sensor, with
    their labels; ``options`` as for ``scenario_config`` (``anomaly_rate`` per sensor-hour,
    magnitudes in local sigma, sampling every ``period`` s). For every other fleet option use
    ``scenario_from_config``."""
    return scenario_from_config(scenario_config(n_sensors, duration, **options), duration)


def scenario_config(
    n_sensors: int,
    duration: float,
    *,
    seed: int = 0,
    start_ts: float = DEFAULT_START_TS,
    period: float = 1.0,
    anomaly_rate: float = 1.0,
    kinds: tuple[str, ...] = KIND_NAMES,
    magnitude: float = 6.0,
    warmup: float = 0.0,
    missing: float = 0.0,
    jitter: float = 0.1,
    churn: float = 0.0,
    families: tuple[str, ...] = FAMILY_NAMES,
    id_prefix: str = "",
) -> FleetConfig:
    """The fleet configuration ``generate_scenario`` runs; raises ValueError for any option
    out of range (it is where every option is checked)."""
    return FleetConfig(
        n_sensors=n_sensors, seed=seed, start_ts=start_ts, period=period, jitter=jitter,
        missing=missing, churn=churn, churn_horizon=duration, families=families, id_prefix=id_prefix,
        anomalies=AnomalyConfig(rate_per_hour=anomaly_rate, kinds=kinds, magnitude=magnitude, warmup=warmup),
    )


def scenario_from_config(config: FleetConfig, duration: float) -> Scenario:
    """The scenario a live run with this config publishes in its first ``duration`` s
    (e.g. ``anomalyd.simulator.cli.fleet_config(args)``)."""
    fleet = Fleet(config)
    end = config.start_ts + duration
    step = CHUNK_READINGS / fleet.readings_per_second
    ticks = []
    while fleet.time < end:
        ticks.append(fleet.readings_until(min(end, fleet.time + step)))
    return _assemble(fleet, ticks, end)


def _assemble(fleet: Fleet, ticks: list[Tick], end: float) -> Scenario:
    n = fleet.config.n_sensors
    sensor = np.concatenate([t.sensor for t in ticks])
    ts = np.concatenate([t.ts for t in ticks])
    value = np.concatenate([t.value for t in ticks])
    order = np.lexsort((ts, sensor))  # per sensor, then time
    sensor, ts, value = sensor[order], ts[order], value[order]
    bounds = np.searchsorted(sensor, np.arange(n + 1))
    labels = [_clip(lb, end) for t in ticks for lb in t.labels]
    labels.sort(key=lambda lb: (lb.start_ts, lb.sensor))
    return Scenario(
        sensor_ids=fleet.sensor_ids,
        ts=[ts[bounds[i]:bounds[i + 1]] for i in range(n)],
        values=[value[bounds[i]:bounds[i + 1]] for i in range(n)],
        labels=labels,
        families=[FAMILY_NAMES[f] for f in fleet.params.family],
        local_sigma=fleet.params.local_sigma.copy(),
        start_ts=fleet.config.start_ts,
        end_ts=end,
        config=fleet.config,
    )


def _clip(label: Label, end: float) -> Label:
    return replace(label, end_ts=min(label.end_ts, end)) if label.end_ts > end else label


def training_series(
    n_series: int,
    length: int,
    seed: int = 0,
    *,
    families: tuple[str, ...] = FAMILY_NAMES,
    periods: tuple[float, ...] = TRAINING_PERIODS,
    jitter: float = 0.3,
    start_ts: float = DEFAULT_START_TS,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_series`` clean (anomaly-free, gap-free) series of exactly ``length`` readings,
    spread over all families, scales (1e-3..1e6), sampling periods and jitters.

    Sensor i of seed S has the same family and shape as sensor i of a scenario with seed S:
    use a seed different from your evaluation scenarios to keep training and test apart.
    """
    if n_series < 1 or length < 1:
        raise ValueError("n_series and length must be >= 1")
    config = FleetConfig(
        n_sensors=n_series, seed=seed, start_ts=start_ts, period_choices=periods, jitter=jitter,
        families=families, anomalies=AnomalyConfig(rate_per_hour=0.0),
    )
    fleet = Fleet(config)
    per_chunk = max(1, CHUNK_READINGS // length)
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for first in range(0, n_series, per_chunk):
        sensors = np.arange(first, min(n_series, first + per_chunk))
        tick = fleet.next_samples(length, sensors)
        order = np.lexsort((tick.ts, tick.sensor))
        ts, values = tick.ts[order].reshape(len(sensors), length), tick.value[order].reshape(len(sensors), length)
        out.extend((ts[j].copy(), values[j].copy()) for j in range(len(sensors)))
    return out
