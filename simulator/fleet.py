"""The sensor fleet: turns simulated time into batches of readings (pure, no I/O).

``Fleet.readings_until(t)`` returns every reading whose nominal sampling time falls before
``t`` and was not returned yet, for all sensors at once, as flat arrays. A reading is a pure
function of (seed, sensor, sample index k) plus the two running states of the stateful
families, so the output does not depend on how time is cut into ticks: a live run paced by
the wall clock and an offline scenario produce the same values and labels.

Sample k of sensor i is taken at relative time ``phase_i + k * period_i`` plus a delay of up
to ``jitter_i`` periods (jitter_i drawn in [0, jitter)); emitted timestamps are ``start_ts``
+ that, rounded to the millisecond.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from . import anomalies as an
from .anomalies import AnomalyConfig, Kind, Label
from .hashrng import Stream, uniform
from .signals import FAMILY_NAMES, SensorParams, clean_values, draw_params, family_codes, initial_state

DEFAULT_START_TS = 1_700_000_000.0
MAX_SENSORS = 100_000
SENSOR_ID_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class FleetConfig:
    n_sensors: int
    seed: int = 0
    start_ts: float = DEFAULT_START_TS
    period: float = 1.0  # nominal sampling period, simulated seconds
    period_choices: tuple[float, ...] = ()  # if set, each sensor's period is one of these
    jitter: float = 0.1  # max sampling delay, fraction of the period (per sensor 0..this)
    missing: float = 0.0  # probability that a reading is lost
    churn: float = 0.0  # fraction of sensors that appear late, and fraction that vanish
    churn_horizon: float = 3600.0  # churn happens within this many simulated seconds
    families: tuple[str, ...] = FAMILY_NAMES
    anomalies: AnomalyConfig = field(default_factory=AnomalyConfig)
    id_prefix: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.n_sensors <= MAX_SENSORS:
            raise ValueError(f"n_sensors must be in 1..{MAX_SENSORS}, got {self.n_sensors}")
        for period in (self.period, *self.period_choices):
            if not 0 < period < np.inf:  # NaN fails too
                raise ValueError(f"sampling period must be finite and > 0, got {period}")
        if not np.isfinite(self.start_ts):
            raise ValueError("start_ts must be a finite number of seconds")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter is a fraction of the period in [0, 1)")
        if not 0 <= self.missing < 1 or not 0 <= self.churn <= 1:
            raise ValueError("missing must be in [0, 1) and churn in [0, 1]")
        if self.id_prefix and not SENSOR_ID_RE.match(self.id_prefix):
            raise ValueError(f"id prefix {self.id_prefix!r} must match {SENSOR_ID_RE.pattern}")
        family_codes(self.families)


@dataclass
class Tick:
    """Readings of one batch, sorted by timestamp; ``sensor`` indexes ``Fleet.sensor_ids``."""

    sensor: np.ndarray
    ts: np.ndarray
    value: np.ndarray
    labels: list[Label] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def empty(cls) -> "Tick":
        return cls(np.zeros(0, np.int32), np.zeros(0), np.zeros(0))


def sensor_ids(n: int, prefix: str = "") -> list[str]:
    """``s00000``-style ids (at least 5 digits), optionally prefixed."""
    width = max(5, len(str(n - 1)))
    return [f"{prefix}s{i:0{width}d}" for i in range(n)]


class Fleet:
    def __init__(self, config: FleetConfig) -> None:
        self.config = config
        c = config
        self.params: SensorParams = draw_params(
            c.seed, c.n_sensors, period=c.period, period_choices=c.period_choices,
            jitter=c.jitter, families=c.families,
        )
        self.sensor_ids = sensor_ids(c.n_sensors, c.id_prefix)
        self.injected: Counter[str] = Counter()  # labels emitted, by kind
        self._next_k = np.zeros(c.n_sensors, np.int64)
        self._state = initial_state(self.params, c.seed)
        self._last_clean = np.full(c.n_sensors, np.nan)
        self._held = np.full(c.n_sensors, np.nan)
        self._join, self._leave = self._churn_times()
        self._churn_events = self._churn_schedule()
        self._churn_pos = 0
        self._time = 0.0  # relative time up to which readings were produced

    # -- public API ------------------------------------------------------------------------
    @property
    def time(self) -> float:
        """Absolute simulated time up to which readings have been produced."""
        return self.config.start_ts + self._time

    @property
    def start_ts(self) -> float:
        return self.config.start_ts

    @property
    def readings_per_second(self) -> float:
        """Expected readings per simulated second (missing readings excluded)."""
        return float(np.sum(1.0 / self.params.period)) * (1.0 - self.config.missing)

    def readings_until(self, t_end: float) -> Tick:
        """All readings with nominal time in [previous t_end, t_end), plus labels."""
        t_rel = t_end - self.config.start_ts
        if t_rel <= self._time:
            return Tick.empty()
        p = self.params
        k_end = np.maximum(np.ceil((t_rel - p.phase) / p.period), 0).astype(np.int64)
        due = np.maximum(k_end - self._next_k, 0)
        sensors = np.nonzero(due)[0]
        tick = self._generate(sensors, due[sensors])
        tick.labels = self._churn_labels(t_rel) + tick.labels
        self._time = t_rel
        return tick

    def next_samples(self, count: int, sensors: np.ndarray | None = None) -> Tick:
        """The next ``count`` samples of each sensor (all by default), whatever their period;
        used for fixed-length training series."""
        sensors = np.arange(self.config.n_sensors) if sensors is None else np.asarray(sensors)
        return self._generate(sensors, np.full(len(sensors), count, np.int64))

    # -- time and presence -------------------------------------------------------------------
    def ts_rel(self, s: np.ndarray, k: np.ndarray) -> np.ndarray:
        p, seed = self.params, self.config.seed
        # A delay, never early: readings stay at or after start_ts and in order per sensor.
        jitter = p.jitter[s] * uniform(seed, Stream.SAMPLE_JITTER, s, k)
        return p.phase[s] + (k + jitter) * p.period[s]

    def _absolute(self, t_rel: np.ndarray) -> np.ndarray:
        return np.round(self.config.start_ts + t_rel, 3)

    def _present(self, s: np.ndarray, t_rel: np.ndarray) -> np.ndarray:
        return (t_rel >= self._join[s]) & (t_rel < self._leave[s])

    def _churn_times(self) -> tuple[np.ndarray, np.ndarray]:
        c = self.config
        i = np.arange(c.n_sensors)
        late = uniform(c.seed, Stream.CHURN_JOIN, i) < c.churn
        gone = uniform(c.seed, Stream.CHURN_LEAVE, i) < c.churn
        join = np.where(late, c.churn_horizon * uniform(c.seed, Stream.CHURN_JOIN_AT, i), -np.inf)
        leave = np.where(gone, c.churn_horizon * uniform(c.seed, Stream.CHURN_LEAVE_AT, i), np.inf)
        return np.minimum(join, leave), np.maximum(join, leave)

    def _churn_schedule(self) -> list[tuple[float, int, str]]:
        events = []
        for times, kind in ((self._join, "appear"), (self._leave, "vanish")):
            idx = np.nonzero(np.isfinite(times))[0]
            events += [(float(t), int(i), kind) for t, i in zip(times[idx], idx)]
        return sorted(events)

    def _churn_labels(self, t_rel: float) -> list[Label]:
        labels = []
        while self._churn_pos < len(self._churn_events) and self._churn_events[self._churn_pos][0] < t_rel:
            t, i, kind = self._churn_events[self._churn_pos]
            ts = float(self._absolute(np.array(t)))
            labels.append(Label(self.sensor_ids[i], kind, ts, ts, None))
            self.injected[kind] += 1
            self._churn_pos += 1
        return labels

    # -- the core ---------------------------------------------------------------------------
    def _generate(self, g_sensor: np.ndarray, g_size: np.ndarray) -> Tick:
        """Samples next_k .. next_k + size - 1 of each sensor in ``g_sensor``."""
        if len(g_sensor) == 0 or g_size.sum() == 0:
            return Tick.empty()
        c, p = self.config, self.params
        g_start = np.cumsum(g_size) - g_size
        s = np.repeat(g_sensor, g_size)
        k_first = np.repeat(self._next_k[g_sensor], g_size)
        k = k_first + (np.arange(len(s)) - np.repeat(g_start, g_size))
        t_rel = self.ts_rel(s, k)
        events = an.lookup(c.anomalies, c.seed, s, k, p.period[s])
        t0 = self._drop_invalid_events(events, s)
        tau = t_rel.copy()
        freq = events.kind == Kind.FREQUENCY
        tau[freq] = t0[freq] + events.magnitude[freq] * (t_rel[freq] - t0[freq])
        clean = clean_values(p, c.seed, s, k, tau, an.speed(events), (g_sensor, g_start, g_size), self._state)
        held = self._held_values(events, clean, s, k, k_first)
        values = an.apply_overlays(events, clean, p.local_sigma[s], held, k, an.extra_noise(c.seed, s, k))
        labels = self._event_labels(events, s, k)
        self._last_clean[g_sensor] = clean[g_start + g_size - 1]
        self._next_k[g_sensor] += g_size
        keep = self._kept(events, s, k, t_rel)
        order = np.argsort(t_rel[keep], kind="stable")
        return Tick(
            sensor=s[keep][order].astype(np.int32),
            ts=self._absolute(t_rel[keep][order]),
            value=values[keep][order],
            labels=labels,
        )

    def _drop_invalid_events(self, events: an.Events, s: np.ndarray) -> np.ndarray:
        """Cancel events starting in the warm-up or while the sensor is absent (churn), so
        every label describes readings that were really affected. Returns the relative start
        time of each sample's event."""
        t0 = np.zeros(len(s))
        act = np.nonzero(events.active)[0]
        if len(act):
            t0[act] = self.ts_rel(s[act], events.k0[act])
            ok = (t0[act] >= self.config.anomalies.warmup) & self._present(s[act], t0[act])
            events.kind[act[~ok]] = Kind.NONE
        return t0

    def _held_values(self, events: an.Events, clean: np.ndarray, s, k, k_first) -> np.ndarray:
        """Value a stuck span freezes at: the clean value of the sample before the span."""
        held = np.full(len(s), np.nan)
        idx = np.nonzero(events.kind == Kind.STUCK)[0]
        if len(idx) == 0:
            return held
        k0 = events.k0[idx]
        in_batch = k0 - 1 >= k_first[idx]
        held[idx[in_batch]] = clean[idx[in_batch] - (k[idx[in_batch]] - k0[in_batch] + 1)]
        starts_here = ~in_batch & (k0 == k_first[idx])
        held[idx[starts_here]] = self._last_clean[s[idx[starts_here]]]
        earlier = ~in_batch & ~starts_here
        held[idx[earlier]] = self._held[s[idx[earlier]]]
        no_prev = np.isnan(held[idx])  # the span starts at the very first sample
        held[idx[no_prev]] = clean[idx[no_prev] - (k[idx[no_prev]] - k0[no_prev])]
        self._held[s[idx]] = held[idx]
        return held

    def _event_labels(self, events: an.Events, s: np.ndarray, k: np.ndarray) -> list[Label]:
        first = np.nonzero(events.active & (k == events.k0))[0]
        if len(first) == 0:
            return []
        fs, fk = s[first], k[first]
        start = self._absolute(self.ts_rel(fs, fk))
        end = self._absolute(self.ts_rel(fs, fk + events.duration[first] - 1))
        labels = []
        for j, i in enumerate(first):
            code = int(events.kind[i])
            name = an.kind_name(code)
            labels.append(
                Label(self.sensor_ids[fs[j]], name, float(start[j]), float(end[j]),
                      an.label_magnitude(code, events.magnitude[i]))
            )
            self.injected[name] += 1
        return labels

    def _kept(self, events: an.Events, s: np.ndarray, k: np.ndarray, t_rel: np.ndarray) -> np.ndarray:
        """Readings that reach the wire: not lost (spikes are never lost, so every labelled
        spike is observable), not in a dropout, sensor present."""
        keep = self._present(s, t_rel) & (events.kind != Kind.DROPOUT)
        if self.config.missing > 0:
            lost = uniform(self.config.seed, Stream.SAMPLE_MISSING, s, k) < self.config.missing
            keep &= ~lost | (events.kind == Kind.SPIKE)
        return keep
