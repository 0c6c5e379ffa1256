"""Anomaly schedule, injection and ground-truth labels (pure, vectorised).

Scheduling is stateless so that it is identical however readings are batched: each
sensor's sample indices are cut into slots of ``slot_samples`` readings; a slot holds at
most one anomaly, with probability ``rate_per_hour * slot duration``, at an offset inside
the slot so it never spills into the next one. Everything about the event (kind, duration,
offset, sign) is a hash of (seed, sensor, slot). Hence anomalies of one sensor never
overlap, and the largest achievable rate is one per slot (``max_rate_per_hour``).

Magnitudes are in units of the sensor's ``local_sigma`` (see signals.py). Per kind, the
label's ``magnitude`` means:
- spike:        one reading moved by ``magnitude`` sigma (signed);
- level_shift:  every reading in the span moved by ``magnitude`` sigma (signed);
- drift:        a ramp from 0 to ``magnitude`` sigma over the span, then back (signed);
- variance:     extra white noise with std ``magnitude`` sigma over the span (positive);
- stuck:        readings frozen at the value just before the span (``null``);
- frequency:    the process runs ``magnitude`` (2..4) times faster: periodic signals speed
                up, a random walk gets rougher, a counter climbs faster, regimes flap;
- dropout:      no readings in the span (``null``);
Churn labels (kinds ``appear`` / ``vanish``, ``null`` magnitude, start_ts == end_ts) come from
fleet.py.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import IntEnum
from types import MappingProxyType

import numpy as np

from .hashrng import Stream, integers, log_uniform, normal, uniform


class Kind(IntEnum):
    NONE = 0
    SPIKE = 1
    LEVEL_SHIFT = 2
    DRIFT = 3
    VARIANCE = 4
    STUCK = 5
    FREQUENCY = 6
    DROPOUT = 7


KIND_NAMES: tuple[str, ...] = tuple(k.name.lower() for k in Kind if k is not Kind.NONE)
CHURN_KINDS: tuple[str, ...] = ("appear", "vanish")

# Span length range per kind, in readings (so spans look alike at any sampling rate).
DURATION_SAMPLES = MappingProxyType(
    {
        Kind.SPIKE: (1, 1),
        Kind.LEVEL_SHIFT: (20, 200),
        Kind.DRIFT: (50, 300),
        Kind.VARIANCE: (20, 200),
        Kind.STUCK: (10, 100),
        Kind.FREQUENCY: (100, 350),
        Kind.DROPOUT: (5, 60),
    }
)
# Speed-up of a frequency anomaly. Only speed-ups: with spans of >= 100 readings and cycles of
# <= 200 readings, a 2x speed-up always shows, whereas a slow-down can leave a square wave
# unchanged over the whole span, and a label on an invisible anomaly is wrong ground truth.
FREQUENCY_FACTOR = (2.0, 4.0)


@dataclass(frozen=True)
class AnomalyConfig:
    rate_per_hour: float = 0.0  # expected anomalies per sensor per simulated hour
    kinds: tuple[str, ...] = KIND_NAMES
    magnitude: float = 6.0  # in local sigma (see module doc)
    warmup: float = 0.0  # simulated seconds from the start without anomalies
    slot_samples: int = 400  # one anomaly at most per this many readings of a sensor

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds if k not in KIND_NAMES]
        if unknown or not self.kinds:
            raise ValueError(f"unknown anomaly kinds {unknown}; choose from {', '.join(KIND_NAMES)}")
        for name, value in (("anomaly rate", self.rate_per_hour), ("magnitude", self.magnitude),
                            ("warmup", self.warmup)):
            if not 0 <= value < np.inf:  # NaN fails too
                raise ValueError(f"{name} must be finite and >= 0, got {value}")
        longest = max(DURATION_SAMPLES[Kind[k.upper()]][1] for k in self.kinds)
        if self.slot_samples < longest:
            raise ValueError(f"slot_samples must be >= {longest} (longest anomaly span)")

    @property
    def kind_codes(self) -> np.ndarray:
        return np.array([Kind[k.upper()] for k in self.kinds], dtype=np.int8)

    def max_rate_per_hour(self, period: float) -> float:
        """Highest rate the slot scheme can deliver for a sensor sampled every ``period`` s."""
        return 3600.0 / (self.slot_samples * period)


@dataclass(frozen=True)
class Label:
    sensor: str
    kind: str
    start_ts: float
    end_ts: float
    magnitude: float | None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


@dataclass
class Events:
    """Per-sample view of the schedule: which event (if any) covers each sample."""

    kind: np.ndarray  # int8 Kind, NONE where no event covers the sample
    k0: np.ndarray  # first sample index of the covering event (valid where kind != NONE)
    duration: np.ndarray  # its length in samples
    magnitude: np.ndarray  # signed sigma, variance sigma, or frequency factor; nan if none

    @property
    def active(self) -> np.ndarray:
        return self.kind != Kind.NONE


def lookup(
    cfg: AnomalyConfig, seed: int, s: np.ndarray, k: np.ndarray, period: np.ndarray
) -> Events:
    """The event covering sample (s, k), if any (before churn/warm-up validity checks)."""
    n = len(s)
    events = Events(
        kind=np.zeros(n, np.int8), k0=np.zeros(n, np.int64), duration=np.zeros(n, np.int64),
        magnitude=np.full(n, np.nan),
    )
    if cfg.rate_per_hour <= 0 or n == 0:
        return events
    slot_len = cfg.slot_samples
    slot = k // slot_len
    p = np.minimum(1.0, cfg.rate_per_hour * slot_len * period / 3600.0)
    has = np.nonzero(uniform(seed, Stream.ANOMALY_HAS, s, slot) < p)[0]
    if len(has) == 0:
        return events
    hs, hslot = s[has], slot[has]
    codes = cfg.kind_codes
    kind = codes[integers(seed, Stream.ANOMALY_KIND, len(codes), hs, hslot)]
    table = np.array([(1, 1)] + [DURATION_SAMPLES[Kind(c)] for c in range(1, len(Kind))], np.float64)
    lo, hi = table[kind, 0], table[kind, 1]
    dur = np.rint(lo * (hi / lo) ** uniform(seed, Stream.ANOMALY_DURATION, hs, hslot)).astype(np.int64)
    k0 = hslot * slot_len + integers(seed, Stream.ANOMALY_OFFSET, 1 << 30, hs, hslot) % (slot_len - dur + 1)
    inside = (k[has] >= k0) & (k[has] < k0 + dur)
    idx = has[inside]
    kind, dur, k0, hs, hslot = kind[inside], dur[inside], k0[inside], hs[inside], hslot[inside]
    events.kind[idx] = kind
    events.k0[idx] = k0
    events.duration[idx] = dur
    events.magnitude[idx] = _magnitude(cfg, seed, kind, hs, hslot)
    return events


def _magnitude(cfg: AnomalyConfig, seed: int, kind: np.ndarray, s: np.ndarray, slot: np.ndarray) -> np.ndarray:
    sign = np.where(uniform(seed, Stream.ANOMALY_SIGN, s, slot) < 0.5, -1.0, 1.0)
    factor = np.round(log_uniform(seed, Stream.ANOMALY_FACTOR, *FREQUENCY_FACTOR, s, slot), 3)
    mag = np.full(len(kind), np.nan)
    signed = (kind == Kind.SPIKE) | (kind == Kind.LEVEL_SHIFT) | (kind == Kind.DRIFT)
    mag[signed] = sign[signed] * cfg.magnitude
    mag[kind == Kind.VARIANCE] = cfg.magnitude
    mag[kind == Kind.FREQUENCY] = factor[kind == Kind.FREQUENCY]
    return mag


def speed(events: Events) -> np.ndarray:
    """Time-warp factor per sample: the frequency factor inside frequency spans, else 1."""
    return np.where(events.kind == Kind.FREQUENCY, events.magnitude, 1.0)


def apply_overlays(
    events: Events,
    clean: np.ndarray,
    sigma: np.ndarray,
    held: np.ndarray,
    k: np.ndarray,
    extra_noise: np.ndarray,
) -> np.ndarray:
    """Values with spikes, shifts, drifts, variance and stuck spans applied. ``held`` is the
    value just before each sample's stuck span; ``extra_noise`` standard normals."""
    kind, mag = events.kind, events.magnitude
    out = clean.copy()
    shift = np.isin(kind, (Kind.SPIKE, Kind.LEVEL_SHIFT))
    out[shift] += mag[shift] * sigma[shift]
    drift = kind == Kind.DRIFT
    ramp = (k[drift] - events.k0[drift] + 1) / events.duration[drift]
    out[drift] += ramp * mag[drift] * sigma[drift]
    var = kind == Kind.VARIANCE
    out[var] += mag[var] * sigma[var] * extra_noise[var]
    stuck = kind == Kind.STUCK
    out[stuck] = held[stuck]
    return out


def extra_noise(seed: int, s: np.ndarray, k: np.ndarray) -> np.ndarray:
    return normal(seed, Stream.ANOMALY_NOISE, s, k)


def kind_name(code: int) -> str:
    return Kind(code).name.lower()


def label_magnitude(code: int, value: float) -> float | None:
    return None if code in (Kind.STUCK, Kind.DROPOUT) else float(value)
