"""Per-sensor output layer: the shared LSTM's head refitted on each sensor's own history.

The network is shared by every sensor, so its output layer is a compromise over all the signals
it was trained on. Each sensor refits that layer for itself, by ridge regression of its own
next change on its own regressors, shrunk toward the shared layer:

    w = argmin  sum_k lam^k (y_k - w . r_k)^2  +  ridge * |w - w_shared|^2

    r = [h (top LSTM layer), 1, z, sin/cos(k * day phase) for k = 1..3, sin/cos(week phase)]

The shrinkage is relaxed for a sensor whose typical residual is below the residual floor
(``ridge`` times the squared ratio): the penalty competes with squared residuals, so a fixed
one would pin a precisely predictable sensor (a counter, whose increments are a thousandth of
its spread) to the shared layer's guess.

The hidden state and the bias are the shared layer's inputs (their prior is the shared layer);
the standardised value ``z`` and the time-of-day / day-of-week terms start at 0 and let each
sensor learn its own pull toward its level and its own daily and weekly rhythm, which one
network shared by all sensors cannot know. A sensor with little history predicts exactly like
the shared network. Measured on NAB (standard profile, five trained models): the refit is worth
about 2 points over the shared layer, the z and seasonal terms about 1.5 more.

Only sufficient statistics are kept per sensor, float32: the upper triangle of
sum(lam^k r r^T), sum(lam^k r y), the current weights and a few scalars. Folding one pair into
the triangle costs as much memory traffic as the rest of a reading's work together, so pairs
are staged: each prediction keeps its regressors in a small per-sensor ring, the target joins
them when the next reading arrives, and every ``stage`` pairs (or at a refit) a sensor folds its
ring into the statistics with one small matrix product. The result equals folding pair by pair.
For 32 units (D = 42 regressors) and a ring of 8 that is about 5.3 KB per sensor. The linear
systems are solved every ``refit_every`` readings of a sensor, for all due rows of a batch at once.

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


def head_fields(units: int, stage: int = 8) -> dict[str, Field]:
    """Per-row state of the head for a top LSTM layer of ``units`` units.

    ``head_w`` starts as NaN, meaning "the shared layer": the prior is not copied into every
    row until a sensor's first refit.
    """
    dim = head_dim(units)
    return {
        "head_rr": Field((dim * (dim + 1) // 2,), np.float32, 0.0),
        "head_ry": Field((dim,), np.float32, 0.0),
        "head_ring": Field((stage, dim), np.float32, 0.0),  # staged regressors, oldest first
        "head_ring_y": Field((stage,), np.float32, 0.0),  # ... and their targets
        "head_pending": Field((), np.int32, 0),  # staged pairs not yet folded into the statistics
        "head_w": Field((dim,), np.float32, np.nan),
        "head_n": Field((), np.float32, 0.0),  # pairs learnt from (drives the refit schedule)
        "head_res": Field((), np.float32, 0.0),  # typical |residual|, in signal standard deviations
        "head_fit": Field((), np.float64, 0.0),  # the change predicted at the last reading ...
        "head_last": Field((), np.float64, np.nan),  # ... the reading it starts from ...
        "head_scale": Field((), np.float64, 1.0),  # ... and its standardising scale
    }


# Fields only the rows that fold or refit touch (the bulk of the head's memory): they are read
# and written in place in the table, never gathered for a whole batch.
IN_PLACE_FIELDS = ("head_rr", "head_ry", "head_ring", "head_ring_y")

_MIN_RELATIVE_RIDGE = 1e-3  # of the ridge's square root: a ridge of at least 1e-6 x ``ridge``
_ANGLES_PER_DAY = np.arange(1, DAY_HARMONICS + 1) * (2.0 * np.pi / DAY)


def regressors(hidden: np.ndarray, z: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """[h, 1, z, daily harmonics (sin, cos per harmonic), weekly fundamental] per row, float64."""
    rows, units = hidden.shape
    out = np.empty((rows, units + 1 + N_EXTRA))
    out[:, :units] = hidden
    out[:, units] = 1.0
    out[:, units + 1] = z
    angles = np.empty((rows, DAY_HARMONICS + 1))
    angles[:, :DAY_HARMONICS] = np.mod(ts, DAY)[:, None] * _ANGLES_PER_DAY
    angles[:, DAY_HARMONICS] = np.mod(ts, WEEK) * (2.0 * np.pi / WEEK)
    out[:, units + 2::2] = np.sin(angles)
    out[:, units + 3::2] = np.cos(angles)
    return out


class SensorHead:
    """Vectorised learn / predict for the per-sensor heads of one detector.

    ``state`` holds the batch's rows of the light fields (gathered by the caller); ``stats`` is
    the whole table of the in-place fields and ``rows`` the batch's rows in it. Tests pass the
    same dictionary for both, with ``rows = arange(n)``.
    """

    def __init__(self, units: int, shared_kernel: np.ndarray, shared_bias: np.ndarray, window: int,
                 ridge: float, refit_every: int, clip: float, skip: int, residual_window: int = 300,
                 residual_floor: float = 0.02, target_clip: float = 8.0, stage: int = 8) -> None:
        self.units, self.dim, self.stage = units, head_dim(units), stage
        shared = np.concatenate([np.asarray(shared_kernel, np.float64).reshape(-1),
                                 np.asarray(shared_bias, np.float64).reshape(-1)])
        if shared.shape != (units + 1,):
            raise ValueError(f"shared head has {shared.size} weights, expected {units + 1}")
        self.prior = np.concatenate([shared, np.zeros(N_EXTRA)])
        self.forget = 1.0 - 1.0 / window
        self.ridge, self.refit_every, self.clip, self.skip = ridge, refit_every, clip, skip
        self.residual_window, self.residual_floor, self.target_clip = residual_window, residual_floor, target_clip
        self._upper = np.triu_indices(self.dim)  # row-major: row i holds columns i..dim-1
        self._upper_flat = self._upper[0] * self.dim + self._upper[1]

    def fields(self) -> dict[str, Field]:
        return head_fields(self.units, self.stage)

    def weights(self, state: dict[str, np.ndarray]) -> np.ndarray:
        w = state["head_w"].astype(np.float64)
        return np.where(np.isnan(w), self.prior, w)

    def learn(self, state: dict[str, np.ndarray], stats, rows: np.ndarray, values: np.ndarray,
              valid: np.ndarray, seen: np.ndarray) -> None:
        """Stage one (regressors of the previous reading, change to this reading) pair per
        valid row, fold full rings and refit the rows that are due.

        ``valid`` marks rows whose previous reading belongs to the same context (a prediction
        was made from it), ``seen`` the readings the sensor's normaliser had taken before this one.
        """
        learn = valid & (seen > self.skip) & np.isfinite(state["head_last"])
        if not learn.any():
            return
        change = np.where(learn, (values - state["head_last"]) / state["head_scale"], 0.0)
        y = np.clip(change, -self.target_clip, self.target_clip)
        fit = state["head_fit"]
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
        pending = state["head_pending"]
        stats["head_ring_y"][rows[learn], pending[learn]] = target[learn]
        pending = pending + learn
        due = learn & (n % self.refit_every == 0)
        fold = learn & ((pending == self.stage) | due)
        if fold.any():
            self._fold(stats, rows[fold], pending[fold])
            pending[fold] = 0
        state["head_pending"] = pending.astype(np.int32)
        if due.any():
            due_rows = rows[due]
            state["head_w"][due] = self._solve(stats["head_rr"][due_rows], stats["head_ry"][due_rows],
                                               self._ridge(state["head_res"][due]))

    def _fold(self, stats, rows: np.ndarray, staged: np.ndarray) -> None:
        """Fold each row's ``staged`` oldest ring pairs into its forgetting statistics:
        rr <- lam^m rr + sum_k lam^(m-1-k) r_k r_k^T, and likewise ry."""
        ring, ring_y = stats["head_ring"][rows], stats["head_ring_y"][rows]
        age = staged[:, None] - 1 - np.arange(self.stage)
        weight = np.where(age >= 0, self.forget ** np.maximum(age, 0), 0.0).astype(np.float32)
        decay = (self.forget ** staged).astype(np.float32)[:, None]
        gram = np.matmul((ring * weight[:, :, None]).transpose(0, 2, 1), ring)
        # take() and in-place arithmetic: this is the head's heaviest memory traffic.
        packed = np.take(stats["head_rr"], rows, axis=0)
        packed *= decay
        packed += np.take(gram.reshape(len(rows), -1), self._upper_flat, axis=1)
        stats["head_rr"][rows] = packed
        stats["head_ry"][rows] = stats["head_ry"][rows] * decay + np.einsum("rk,rkd->rd", weight * ring_y, ring)

    def _ridge(self, typical: np.ndarray) -> np.ndarray:
        """Shrinkage per row, in proportion to the row's residual variance below the residual
        floor. The penalty weighs |w - w_shared|^2 against squared residuals, so a fixed one
        means less the noisier a sensor is and pins a sensor with tiny residuals to the
        shared layer: a counter's increments are about 1/3000 of its spread over the
        normaliser's window, and the shared layer's wandering guess stayed in its predictions
        as a bias of about 3 increment standard deviations. A small minimum keeps the
        system solvable for a sensor that never changes."""
        relative = np.clip(typical.astype(np.float64) / self.residual_floor, _MIN_RELATIVE_RIDGE, 1.0)
        return self.ridge * relative * relative

    def _solve(self, packed: np.ndarray, ry: np.ndarray, ridge: np.ndarray) -> np.ndarray:
        matrix = np.zeros((len(packed), self.dim, self.dim))
        matrix[:, self._upper[0], self._upper[1]] = packed
        matrix[:, self._upper[1], self._upper[0]] = packed
        matrix += ridge[:, None, None] * np.eye(self.dim)
        rhs = ry.astype(np.float64) + ridge[:, None] * self.prior
        return np.linalg.solve(matrix, rhs[..., None])[..., 0]

    def predict(self, state: dict[str, np.ndarray], stats, rows: np.ndarray, hidden: np.ndarray,
                z: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """Predicted change to the next reading, in standard deviations of the signal.

        The regressors are staged in the ring's next free slot: they become a learnt pair if
        the next reading continues this context, and are overwritten otherwise.
        """
        r = regressors(hidden, z, ts)
        change = np.einsum("ij,ij->i", r, self.weights(state))
        stats["head_ring"][rows, state["head_pending"]] = r
        state["head_fit"] = change
        return change

    def remember(self, state: dict[str, np.ndarray], values: np.ndarray, scale: np.ndarray) -> None:
        """The reading the next learnt change starts from, and its standardising scale."""
        state["head_last"] = values.astype(np.float64)
        state["head_scale"] = scale.astype(np.float64)
