"""Signal families: per-sensor parameters and the clean (anomaly-free) signal, vectorised.

Every function here works on flat arrays with one entry per *sample* (``sensor`` holds the
sensor index of each sample), so one call evaluates thousands of sensors at once.

Families and what makes them hard for a detector:
- seasonal:    daily sine with 2nd/3rd harmonics plus a weekly sine (slow, smooth);
- random_walk: Ornstein-Uhlenbeck process (random walk pulled back to its mean);
- cycle:       industrial cycles, sawtooth or duty-cycle square wave (sharp but regular edges);
- regime:      a few levels with their own noise, switching at random times;
- counter:     monotonic counter with noisy increments and rare resets to 0.

Time-dependent parts are computed from the sensor's *relative* time ``tau`` (seconds since
the scenario start), so values do not depend on the absolute ``start_ts``. Durations that
should look alike at any sampling rate (cycle period, OU time constant, regime dwell) are
drawn in units of the sensor's sampling period.

``local_sigma`` is the unpredictable part of one reading (noise, plus the OU innovation or
the counter's increment noise): the unit of anomaly magnitudes, so "6 sigma" means six
times what an ideal one-step predictor would expect to miss by. Regime sensors scale their
noise by 0.5-2.0 per regime; their sigma is that of the noisiest regime, so a label's
magnitude is at least that many sigma of the noise at the time, whatever the regime.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from .hashrng import Stream, integers, log_uniform, normal, uniform

DAY = 86_400.0
WEEK = 7 * DAY


class Family(IntEnum):
    SEASONAL = 0
    RANDOM_WALK = 1
    CYCLE = 2
    REGIME = 3
    COUNTER = 4


FAMILY_NAMES: tuple[str, ...] = tuple(f.name.lower() for f in Family)
STATEFUL = (Family.RANDOM_WALK, Family.COUNTER)
COUNTER_INCREMENT_CV = 0.3  # std/mean of a counter's increments
COUNTER_RESET_PROB = 2e-5  # per sample: about once per 14 h at 1 Hz
MAX_REGIMES = 3


def family_codes(names: tuple[str, ...] | list[str]) -> np.ndarray:
    """Family names -> codes, with a clear error for typos."""
    unknown = [n for n in names if n not in FAMILY_NAMES]
    if unknown or not names:
        raise ValueError(f"unknown signal families {unknown}; choose from {', '.join(FAMILY_NAMES)}")
    return np.array([FAMILY_NAMES.index(n) for n in names], dtype=np.int8)


@dataclass(frozen=True)
class SensorParams:
    """Per-sensor parameters, one array entry per sensor (arrays are not mutated)."""

    family: np.ndarray  # int8 Family code
    period: np.ndarray  # nominal sampling period, s
    phase: np.ndarray  # relative time of sample 0, in [0, period)
    jitter: np.ndarray  # max sampling delay, fraction of the period
    scale: np.ndarray  # amplitude of the signal
    offset: np.ndarray  # level around which it moves
    noise: np.ndarray  # white measurement noise sigma
    shape: np.ndarray  # [n, 7] family-specific shape numbers (see _draw_shape)
    local_sigma: np.ndarray  # unit of anomaly magnitudes (see module doc)

    def __len__(self) -> int:
        return len(self.family)


def draw_params(
    seed: int,
    n: int,
    *,
    period: float = 1.0,
    period_choices: tuple[float, ...] = (),
    jitter: float = 0.1,
    families: tuple[str, ...] = FAMILY_NAMES,
) -> SensorParams:
    """Parameters of sensors 0..n-1; sensor i's depend only on (seed, i), not on n."""
    i = np.arange(n, dtype=np.int64)
    allowed = family_codes(families)
    family = allowed[integers(seed, Stream.FAMILY, len(allowed), i)]
    if period_choices:
        periods = np.asarray(period_choices, dtype=np.float64)[integers(seed, Stream.PERIOD, len(period_choices), i)]
    else:
        periods = np.full(n, float(period))
    # Scales from 1e-3 to 1e6 so one model must cope with any unit.
    scale = log_uniform(seed, Stream.SCALE, 1e-3, 1e6, i)
    sign = np.where(uniform(seed, Stream.OFFSET_SIGN, i) < 0.2, -1.0, 1.0)
    offset = sign * scale * uniform(seed, Stream.OFFSET, i) * 10.0
    noise = scale * log_uniform(seed, Stream.NOISE, 0.005, 0.2, i)
    shape = _draw_shape(seed, i)
    counter_rate = scale * shape[:, 0] / periods  # per second, see _draw_shape
    noise = np.where(family == Family.COUNTER, COUNTER_INCREMENT_CV * counter_rate * periods, noise)
    ou_tau = shape[:, 1] * periods
    ou_innovation = scale * np.sqrt(-np.expm1(-2.0 * periods / ou_tau))
    local_sigma = np.where(family == Family.RANDOM_WALK, np.hypot(noise, ou_innovation), noise)
    local_sigma = np.where(family == Family.REGIME, noise * _loudest_regime(shape), local_sigma)
    return SensorParams(
        family=family.astype(np.int8),
        period=periods,
        phase=periods * uniform(seed, Stream.PHASE, i),
        jitter=jitter * uniform(seed, Stream.JITTER_MAX, i),
        scale=scale,
        offset=offset,
        noise=noise,
        shape=shape,
        local_sigma=local_sigma,
    )


def regime_noise_multiplier(shape: np.ndarray, r: np.ndarray | int) -> np.ndarray:
    """How much regime ``r`` scales a regime sensor's noise (0.5..2.0); ``shape`` its row(s)."""
    return 0.5 + 1.5 * np.mod(shape[..., 6] + 0.381966 * r, 1.0)


def _loudest_regime(shape: np.ndarray) -> np.ndarray:
    """The noise multiplier of each sensor's noisiest regime (two or three regimes)."""
    multipliers = np.stack([regime_noise_multiplier(shape, r) for r in range(MAX_REGIMES)], axis=1)
    multipliers[:, 2] = np.where(shape[:, 3] < 0.5, multipliers[:, 2], 0.0)  # only two regimes
    return multipliers.max(axis=1)


def _draw_shape(seed: int, i: np.ndarray) -> np.ndarray:
    """Seven shape numbers per sensor (mostly uniform [0, 1) draws), read per family:

    seasonal:    col 2, 3 = 2nd/3rd harmonic amplitude, 4 = weekly amplitude, 5, 6 = phases
    random_walk: col 1 = OU time constant in periods (20..2000)
    cycle:       col 2 = cycle length, 3 = sawtooth or square, 4 = duty, 5 = phase
    regime:      col 2 = dwell, 3 = two or three regimes, 4 = levels, 5 = phase, 6 = noise
    counter:     col 0 = mean increment per reading / scale (0.01..1)
    Columns 0 and 1 feed the derived noise / local sigma for every sensor, vectorised.
    """
    shape = np.empty((len(i), 7))
    shape[:, 0] = log_uniform(seed, Stream.SHAPE_A, 0.01, 1.0, i)
    shape[:, 1] = log_uniform(seed, Stream.SHAPE_B, 20.0, 2000.0, i)
    for col, stream in enumerate((Stream.SHAPE_C, Stream.SHAPE_D, Stream.SHAPE_E, Stream.SHAPE_F, Stream.SHAPE_G), 2):
        shape[:, col] = uniform(seed, stream, i)
    return shape


# --- stateless families ----------------------------------------------------------------


def seasonal(p: SensorParams, s: np.ndarray, tau: np.ndarray) -> np.ndarray:
    sh = p.shape[s]
    x = 2.0 * np.pi * tau / DAY
    phase1, phase2 = 2.0 * np.pi * sh[:, 5], 2.0 * np.pi * sh[:, 6]
    daily = np.sin(x + phase1) + 0.5 * sh[:, 2] * np.sin(2 * x + phase2) + 0.25 * sh[:, 3] * np.sin(3 * x + phase1)
    weekly = 0.5 * sh[:, 4] * np.sin(2.0 * np.pi * tau / WEEK + phase2)
    return p.offset[s] + p.scale[s] * (daily + weekly)


def cycle(p: SensorParams, s: np.ndarray, tau: np.ndarray) -> np.ndarray:
    sh = p.shape[s]
    length = p.period[s] * (20.0 + 180.0 * sh[:, 2])  # 20..200 readings per cycle
    duty = np.where(sh[:, 3] < 0.5, 0.0, 0.2 + 0.6 * sh[:, 4])  # half sawtooth, half square
    frac = np.mod(tau / length + sh[:, 5], 1.0)
    wave = np.where(duty == 0.0, 2.0 * frac - 1.0, np.where(frac < duty, 1.0, -1.0))
    return p.offset[s] + p.scale[s] * wave


def regime_index(p: SensorParams, s: np.ndarray, tau: np.ndarray, speed: np.ndarray, seed: int) -> np.ndarray:
    """Which regime a sensor is in: a hash of its dwell bucket, so no state is needed.
    Sped up (frequency anomaly) it flaps: a new draw every 8 warped periods, i.e. every
    2-4 readings instead of every 100-3000."""
    sh = p.shape[s]
    flap = speed > 1.0
    dwell = np.where(flap, 8.0 * p.period[s], p.period[s] * (100.0 + 2900.0 * sh[:, 2]))
    bucket = np.floor(tau / dwell + sh[:, 5]).astype(np.int64)
    count = 2 + (sh[:, 3] < 0.5)  # 2 or 3 regimes
    return integers(seed, Stream.REGIME, 1 << 20, s, bucket, flap) % count


def regime_level(p: SensorParams, s: np.ndarray, r: np.ndarray) -> np.ndarray:
    """The level of regime ``r``: distinct per regime, derived from the sensor's shape."""
    level_u = np.mod(p.shape[s, 4] + 0.618034 * r, 1.0)
    return p.offset[s] + p.scale[s] * (4.0 * level_u - 2.0)


def regime(p: SensorParams, s: np.ndarray, tau: np.ndarray, speed: np.ndarray, z: np.ndarray, seed: int) -> np.ndarray:
    """Level and noise depend on the regime; returns the value including its noise."""
    r = regime_index(p, s, tau, speed, seed)
    return regime_level(p, s, r) + p.noise[s] * regime_noise_multiplier(p.shape[s], r) * z


# --- stateful families: x[k] = a[k] * x[k-1] + e[k] ------------------------------------


def ou_coefficients(
    p: SensorParams, s: np.ndarray, speed: np.ndarray, innovation: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Exact OU discretisation on the nominal grid; ``speed`` > 1 runs the process faster
    (frequency anomaly)."""
    tau = p.shape[s, 1] * p.period[s]
    a = np.exp(-speed * p.period[s] / tau)
    return a, p.scale[s] * np.sqrt(-np.expm1(-2.0 * speed * p.period[s] / tau)) * innovation


def counter_mean_increment(p: SensorParams, s: np.ndarray) -> np.ndarray:
    """A counter's mean increment per reading at normal speed."""
    return p.scale[s] * p.shape[s, 0]


def counter_coefficients(
    p: SensorParams, s: np.ndarray, speed: np.ndarray, z: np.ndarray, reset_u: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Increment = mean * (1 + cv * z), never negative; a reset zeroes the count first."""
    mean = counter_mean_increment(p, s) * speed
    increment = np.maximum(mean * (1.0 + COUNTER_INCREMENT_CV * z), 0.0)
    keep = (reset_u >= COUNTER_RESET_PROB).astype(np.float64)
    return keep, increment


def initial_state(p: SensorParams, seed: int) -> np.ndarray:
    """State before sample 0: OU deviation from the stationary law, counter start value."""
    i = np.arange(len(p))
    ou0 = p.scale * normal(seed, Stream.SAMPLE_INNOVATION, i, -1)
    counter0 = p.scale * 1000.0 * uniform(seed, Stream.SAMPLE_RESET, i, -1)
    return np.where(p.family == Family.COUNTER, counter0, ou0)


def linear_recurrence(
    a: np.ndarray, e: np.ndarray, starts: np.ndarray, sizes: np.ndarray, x0: np.ndarray
) -> np.ndarray:
    """x[j] = a[j] * x[j-1] + e[j] within each group [starts, starts+sizes), x[start-1] = x0.

    Vectorised across groups, one round per position: cheap when many sensors share a tick
    (the live case); long single-sensor runs are cut into chunks by the caller.
    """
    x = np.zeros_like(e)
    prev = x0.astype(np.float64, copy=True)
    active = np.arange(len(starts))
    for j in range(int(sizes.max(initial=0))):
        active = active[sizes[active] > j]
        pos = starts[active] + j
        prev[active] = a[pos] * prev[active] + e[pos]
        x[pos] = prev[active]
    return x


def clean_values(
    p: SensorParams,
    seed: int,
    s: np.ndarray,
    k: np.ndarray,
    tau: np.ndarray,
    speed: np.ndarray,
    groups: tuple[np.ndarray, np.ndarray, np.ndarray],
    state: np.ndarray,
) -> np.ndarray:
    """Anomaly-free value of every sample (including noise). Samples are grouped by sensor
    in increasing k; ``groups`` = (group sensor, start, size). ``state`` (per sensor) is
    read and updated in place for the stateful families."""
    fam = p.family[s]
    z = normal(seed, Stream.SAMPLE_NOISE, s, k)
    out = np.empty(len(s))
    for code, fn in ((Family.SEASONAL, seasonal), (Family.CYCLE, cycle)):
        m = fam == code
        if m.any():
            out[m] = fn(p, s[m], tau[m]) + p.noise[s[m]] * z[m]
    m = fam == Family.REGIME
    if m.any():
        out[m] = regime(p, s[m], tau[m], speed[m], z[m], seed)
    stateful = (fam == Family.RANDOM_WALK) | (fam == Family.COUNTER)
    if stateful.any():
        out[stateful] = _stateful_values(p, seed, s, k, z, speed, groups, state, stateful)
    return out


def _stateful_values(p, seed, s, k, z, speed, groups, state, mask) -> np.ndarray:
    """Values of the random-walk and counter samples (``mask``), advancing their state.
    Coefficients are laid out over the whole batch so group positions stay valid; the
    other positions are never read."""
    g_sensor, g_start, g_size = groups
    ms, mk, mspeed = s[mask], k[mask], speed[mask]
    is_counter = p.family[ms] == Family.COUNTER
    innovation = normal(seed, Stream.SAMPLE_INNOVATION, ms, mk)
    a_ou, e_ou = ou_coefficients(p, ms, mspeed, innovation)
    a_c, e_c = counter_coefficients(p, ms, mspeed, innovation, uniform(seed, Stream.SAMPLE_RESET, ms, mk))
    a, e = np.zeros(len(s)), np.zeros(len(s))
    a[mask] = np.where(is_counter, a_c, a_ou)
    e[mask] = np.where(is_counter, e_c, e_ou)
    g_mask = (p.family[g_sensor] == Family.RANDOM_WALK) | (p.family[g_sensor] == Family.COUNTER)
    gs, st, sz = g_sensor[g_mask], g_start[g_mask], g_size[g_mask]
    x = linear_recurrence(a, e, st, sz, state[gs])
    state[gs] = x[st + sz - 1]
    xm = x[mask]
    return np.where(is_counter, xm, p.offset[ms] + xm + p.noise[ms] * z[mask])
