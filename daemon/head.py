"""Per-sensor output layer: the shared LSTM's head refitted on each sensor's own history.

The network is shared by every sensor, so its output layer is a compromise over all the signals
it was trained on. Each sensor refits that layer for itself, by ridge regression of its own
next change on its own regressors, shrunk toward the shared layer:

    w = argmin  sum_k lam^k (y_k - w . r_k)^2  +  ridge * |w - w_shared|^2

    r = [h (top LSTM layer), 1, z, sin/cos(k * day phase) for k = 1..3, sin/cos(week phase)]

The hidden state and the bias are the shared layer's inputs (their prior is the shared layer);
the standardised value ``z`` and the time-of-day / day-of-week terms start at 0 and let each
sensor learn its own pull toward its level and its own daily and weekly rhythm, which one
network shared by all sensors cannot know. A sensor with little history predicts exactly like
the shared network. Measured on NAB (standard profile, five trained models): the refit is worth
about 2 points over the shared layer, the z and seasonal terms about 1.5 more.

Only sufficient statistics are kept per sensor, float32: the upper triangle of
sum(lam^k r r^T), sum(lam^k r y), the current weights and a few scalars; for 32 units
(D = 42 regressors) that is about 3.9 KB per sensor. The linear systems are solved every
``refit_every`` readings of a sensor, for all due rows of a batch at once.

Targets are robust: a change that misses the current fit by more than ``clip`` typical
residuals is clipped to that distance, so an anomaly barely moves the head that is meant to
expose it. The first ``skip`` readings after a reset (while the normaliser settles) are not
learnt from.
"""
from __future__ import annotations

import numpy as np

from anomalyd.models.slots import Field

DAY = 86_400.0
WEEK = 7 * DAY
DAY_HARMONICS = 3
N_EXTRA = 1 + 2 * DAY_HARMONICS + 2  # z, daily harmonics, weekly fundamental


def head_dim(units: int) -> int:
    return units + 1 + N_EXTRA


def head_fields(units: int) -> dict[str, Field]:
    """Per-row state of the head for a top LSTM layer of ``units`` units.

    ``head_w`` starts as NaN, meaning "the shared layer": the prior is not copied into every
    row until a sensor's first refit.
    """
    dim = head_dim(units)
    return {
        "head_rr": Field((dim * (dim + 1) // 2,), np.float32, 0.0),
        "head_ry": Field((dim,), np.float32, 0.0),
        "head_w": Field((dim,), np.float32, np.nan),
        "head_n": Field((), np.float32, 0.0),  # pairs learnt from (drives the refit schedule)
        "head_res": Field((), np.float32, 0.0),  # typical |residual|, in signal standard deviations
        "head_last": Field((), np.float64, np.nan),  # the reading the next target starts from ...
        "head_scale": Field((), np.float64, 1.0),  # ... its standardising scale ...
        "head_z": Field((), np.float32, 0.0),  # ... its standardised value ...
        "head_ts": Field((), np.float64, 0.0),  # ... and its timestamp
    }


def regressors(hidden: np.ndarray, z: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """[h, 1, z, daily harmonics, weekly fundamental] per row, float64."""
    day = 2.0 * np.pi * np.mod(ts, DAY) / DAY
    week = 2.0 * np.pi * np.mod(ts, WEEK) / WEEK
    columns = [np.asarray(hidden, np.float64), np.ones((len(z), 1)), np.asarray(z, np.float64)[:, None]]
    for k in range(1, DAY_HARMONICS + 1):
        columns += [np.sin(k * day)[:, None], np.cos(k * day)[:, None]]
    columns += [np.sin(week)[:, None], np.cos(week)[:, None]]
    return np.concatenate(columns, axis=1)


class SensorHead:
    """Vectorised learn / predict for the per-sensor heads of one detector."""

    def __init__(self, units: int, shared_kernel: np.ndarray, shared_bias: np.ndarray, window: int,
                 ridge: float, refit_every: int, clip: float, skip: int, residual_window: int = 300,
                 residual_floor: float = 0.02, target_clip: float = 8.0) -> None:
        self.units, self.dim = units, head_dim(units)
        shared = np.concatenate([np.asarray(shared_kernel, np.float64).reshape(-1),
                                 np.asarray(shared_bias, np.float64).reshape(-1)])
        if shared.shape != (units + 1,):
            raise ValueError(f"shared head has {shared.size} weights, expected {units + 1}")
        self.prior = np.concatenate([shared, np.zeros(N_EXTRA)])
        self.forget = 1.0 - 1.0 / window
        self.ridge, self.refit_every, self.clip, self.skip = ridge, refit_every, clip, skip
        self.residual_window, self.residual_floor, self.target_clip = residual_window, residual_floor, target_clip
        self._upper = np.triu_indices(self.dim)  # row-major: row i holds columns i..dim-1
        self._offsets = np.r_[0, np.cumsum(np.arange(self.dim, 0, -1))]

    def fields(self) -> dict[str, Field]:
        return head_fields(self.units)

    def weights(self, state: dict[str, np.ndarray]) -> np.ndarray:
        w = state["head_w"].astype(np.float64)
        return np.where(np.isnan(w), self.prior, w)

    def learn(self, state: dict[str, np.ndarray], hidden: np.ndarray, values: np.ndarray,
              valid: np.ndarray, seen: np.ndarray) -> None:
        """Fold in one (previous regressors, change to this reading) pair per valid row.

        ``hidden`` is each row's top-layer state from its previous reading, ``valid`` marks rows
        whose previous reading belongs to the same context (a prediction was made from it),
        ``seen`` the readings the sensor's normaliser had taken before this one. Every row of
        the batch is computed and the invalid ones are masked out: whole-array arithmetic is
        several times faster than gathering the valid rows' statistics.
        """
        learn = valid & (seen > self.skip) & np.isfinite(state["head_last"])
        if not learn.any():
            return
        r = regressors(hidden, state["head_z"], state["head_ts"])
        change = np.where(learn, (values - state["head_last"]) / state["head_scale"], 0.0)
        y = np.clip(change, -self.target_clip, self.target_clip)
        fit = np.einsum("ij,ij->i", r, self.weights(state))
        residual = y - fit
        n = state["head_n"].astype(np.float64) + learn
        typical = state["head_res"].astype(np.float64)
        first = n <= 1.0
        limit = self.clip * np.maximum(typical, self.residual_floor)
        target = np.where(first, y, fit + np.clip(residual, -limit, limit))
        # The typical residual learns with outliers capped at 6 of itself, like the scorer's.
        capped = np.where(first, np.abs(residual),
                          np.minimum(np.abs(residual), 6.0 * np.maximum(typical, self.residual_floor)))
        state["head_res"] = np.where(learn, typical + (capped - typical) / np.minimum(np.maximum(n, 1.0),
                                                                                     self.residual_window),
                                     typical).astype(np.float32)
        state["head_n"] = n.astype(np.float32)
        r32 = r.astype(np.float32)
        update = r32 * target.astype(np.float32)[:, None]
        if learn.all():
            forget = np.float32(self.forget)
        else:
            forget = np.where(learn, self.forget, 1.0).astype(np.float32)[:, None]
            r32 *= np.sqrt(learn.astype(np.float32))[:, None]  # rows that do not learn add nothing
            update *= learn[:, None]
        packed = state["head_rr"]
        packed *= forget
        # The upper triangle of r r^T, one row of the triangle (a contiguous slice) at a time.
        for i, (start, stop) in enumerate(zip(self._offsets[:-1], self._offsets[1:])):
            packed[:, start:stop] += r32[:, i:i + 1] * r32[:, i:]
        state["head_ry"] *= forget
        state["head_ry"] += update
        due = np.flatnonzero(learn & (n % self.refit_every == 0))
        if len(due):
            state["head_w"][due] = self._solve(state["head_rr"][due], state["head_ry"][due])

    def _solve(self, packed: np.ndarray, ry: np.ndarray) -> np.ndarray:
        matrix = np.zeros((len(packed), self.dim, self.dim))
        matrix[:, self._upper[0], self._upper[1]] = packed
        matrix[:, self._upper[1], self._upper[0]] = packed
        matrix += self.ridge * np.eye(self.dim)
        rhs = ry.astype(np.float64) + self.ridge * self.prior
        return np.linalg.solve(matrix, rhs[..., None])[..., 0]

    def predict(self, state: dict[str, np.ndarray], hidden: np.ndarray, z: np.ndarray,
                ts: np.ndarray) -> np.ndarray:
        """Predicted change to the next reading, in standard deviations of the signal."""
        return np.einsum("ij,ij->i", regressors(hidden, z, ts), self.weights(state))

    def remember(self, state: dict[str, np.ndarray], values: np.ndarray, scale: np.ndarray,
                 z: np.ndarray, ts: np.ndarray) -> None:
        """The reading the next learnt change starts from, with its scale and regressors."""
        state["head_last"] = values.astype(np.float64)
        state["head_scale"] = scale.astype(np.float64)
        state["head_z"] = z.astype(np.float32)
        state["head_ts"] = ts.astype(np.float64)
