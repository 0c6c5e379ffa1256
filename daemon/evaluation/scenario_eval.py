"""Simulator-scenario evaluation: labelled anomalies of every kind, event-level metrics.

The scenario is generated offline by the simulator (deterministic for a seed) and replayed
through the daemon's detector; events are matched with ``event_metrics``.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np

from anomalyd.daemon.detector import Detector, DetectorSettings
from anomalyd.daemon.evaluation.event_metrics import MatchConfig, evaluate_events, dashed
from anomalyd.daemon.evaluation.replay import SeriesScores, replay
from anomalyd.daemon.scoring import ScoringSettings
from anomalyd.models.artifact import Artifact


@dataclass(frozen=True)
class ScenarioSpec:
    sensors: int = 1000
    duration: float = 4 * 3600.0  # simulated seconds
    period: float = 5.0  # seconds between readings: 2,880 readings per sensor
    seed: int = 7
    anomaly_rate: float = 0.5  # per sensor-hour (capped by the simulator's spacing)
    magnitude: float = 6.0  # in local sigma
    kinds: tuple[str, ...] = ()  # empty: every kind the simulator knows
    tolerance_readings: int = 5
    # Simulated seconds replayed before the judged ``duration``: no anomalies are injected and
    # no flag counts there, so the figures describe a detector that already knows the fleet.
    lead_in: float = 0.0
    # What each reading is judged against: the model's prediction, as in the daemon, or the
    # simulator's ideal one-step prediction (``simulator.oracle``), to see what the scorer
    # alone makes of perfect predictions.
    predictor: str = "model"

    def __post_init__(self) -> None:
        """Refuse what would fail deep inside the simulator or run forever (NaN, inf, negatives):
        the spans here, every other option where the simulator checks it."""
        if not 0.0 < self.duration < math.inf:
            raise ValueError(f"duration must be finite and > 0, got {self.duration}")
        if not 0.0 <= self.lead_in < math.inf:
            raise ValueError(f"lead_in must be finite and >= 0, got {self.lead_in}")
        if self.predictor not in PREDICTORS:
            raise ValueError(f"predictor must be one of {', '.join(PREDICTORS)}")
        self.fleet_config(warmup=self.lead_in)

    def fleet_config(self, warmup: float):
        """The simulator fleet that generates this scenario, anomaly-free for ``warmup`` s."""
        from anomalyd.simulator.scenario import scenario_config

        options = {"kinds": self.kinds} if self.kinds else {}
        return scenario_config(self.sensors, self.lead_in + self.duration, seed=self.seed, period=self.period,
                               anomaly_rate=self.anomaly_rate, magnitude=self.magnitude, warmup=warmup, **options)


PREDICTORS = ("model", "oracle")


def evaluate_scenario(spec: ScenarioSpec, artifact: Artifact, scoring: ScoringSettings = ScoringSettings(),
                      backend: str = "litert", max_gap: float = 86_400.0):
    """Returns (report, scenario, per-sensor scores)."""
    from anomalyd.simulator.oracle import first_visits, ideal_predictions
    from anomalyd.simulator.scenario import scenario_from_config

    warmup = max(spec.lead_in, scoring.warmup * spec.period)
    scenario = scenario_from_config(spec.fleet_config(warmup), spec.lead_in + spec.duration)
    ids = list(scenario.sensor_ids)
    series = [scenario.series(sensor) for sensor in ids]
    detector = Detector(artifact, DetectorSettings(capacity=len(ids), batch_size=1024, backend=backend,
                                                   max_gap=max_gap), scoring)
    started = time.perf_counter()
    outputs = replay(detector, ids, series, ideal_predictions(scenario) if spec.predictor == "oracle" else None)
    seconds = time.perf_counter() - started
    judged_from = scenario.start_ts + spec.lead_in
    # Lead-in readings count as warm-up: never scored as detections or false alarms.
    streams = {sensor: {"ts": ts, "anomaly": out.anomaly, "warmup": out.warmup | (ts < judged_from)}
               for sensor, (ts, _), out in zip(ids, series, outputs)}
    labels = [asdict(label) for label in scenario.labels]
    match = MatchConfig(tolerance_readings=spec.tolerance_readings)
    visits = first_visits(scenario)
    report = evaluate_events(labels, streams, match, first_visits=visits)
    readings = sum(len(ts) for ts, _ in series)
    report["scenario"] = {**asdict(spec), "kinds": list(spec.kinds), "readings": readings,
                          "readings_per_s": round(readings / seconds), "threshold": scoring.threshold}
    judged = [~stream["warmup"] for stream in streams.values()]
    flagged = sum(int(out.anomaly[mask].sum()) for out, mask in zip(outputs, judged))
    report["scenario"]["flagged_fraction"] = flagged / max(1, sum(int(mask.sum()) for mask in judged))
    report["by_family"] = by_family(labels, streams, dict(zip(ids, scenario.families)), match, visits)
    return report, scenario, dict(zip(ids, outputs))


def by_family(labels: list[dict], streams: dict, families: dict[str, str], config: MatchConfig,
              first_visits: dict | None = None) -> dict:
    """The event metrics of each signal family's sensors on their own: where the false alarms
    and the misses come from. Each family's precision counts only its own false alarms (and
    ``first_visits``, by sensor, those at a regime's first visit; see ``evaluate_events``)."""
    report = {}
    for family in sorted(set(families.values())):
        sensors = {sensor for sensor, name in families.items() if name == family}
        own = evaluate_events([label for label in labels if label["sensor"] in sensors],
                              {sensor: stream for sensor, stream in streams.items() if sensor in sensors}, config,
                              first_visits=first_visits)
        report[family] = {"sensors": len(sensors), **own["overall"],
                          "recall_by_kind": {kind: summary["recall"] for kind, summary in own["by_kind"].items()}}
    return report


def render_families(report: dict, kinds: tuple[str, ...] = ("spike", "level_shift")) -> str:
    """Fixed-width text table of ``by_family``: one row per signal family."""
    head = (f"{'family':<18}{'sensors':>8}{'events':>7}{'recall':>8}{'prec':>8}{'false':>7}{'per_day':>9}"
            + "".join(f"{kind[:11]:>12}" for kind in kinds))
    lines = [head, "-" * len(head)]
    for family, summary in report["by_family"].items():
        recalls = summary["recall_by_kind"]
        lines.append(f"{family[:17]:<18}{summary['sensors']:>8}{summary['events']:>7}"
                     f"{dashed(summary['recall'], '.3f'):>8}{dashed(summary['precision'], '.3f'):>8}"
                     f"{summary['false_alarms']:>7}{dashed(summary['false_alarms_per_sensor_day'], '.2f'):>9}"
                     + "".join(f"{dashed(recalls.get(kind), '.3f'):>12}" for kind in kinds))
    return "\n".join(lines)


def events_of(scenario, sensor: str) -> list[tuple[float, float]]:
    return [(float(label.start_ts), float(label.end_ts)) for label in scenario.labels_for(sensor)]


def most_eventful(scenario, count: int) -> list[str]:
    """Sensors to plot: those with the most labelled events."""
    ids = list(scenario.sensor_ids)
    counts = np.array([len(scenario.labels_for(sensor)) for sensor in ids])
    return [ids[i] for i in np.argsort(-counts, kind="stable")[:count]]


__all__ = ["PREDICTORS", "ScenarioSpec", "SeriesScores", "by_family", "evaluate_scenario", "events_of", "most_eventful",
           "render_families"]
