"""The detection core: sensor slots, ordering, resets, one batched step and scoring per tick.

Pure computation with no I/O and no threads: the daemon's worker thread, journal replay, the
offline evaluation and the benchmarks all call ``Detector.process`` with the readings of one
tick, so they share exactly one code path. Per tick, readings are mapped to slot rows, sorted
into timestamp order per sensor, checked (duplicates, out-of-order, non-finite, capacity), and
stepped in rounds: the k-th pending reading of every sensor goes in round k, each round in
engine batches of at most B rows.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from anomalyd.daemon.head import IN_PLACE_FIELDS, SensorHead
from anomalyd.daemon.scoring import ScoringSettings, score, scorer_fields
from anomalyd.models.artifact import Artifact
from anomalyd.models.engine import LastValueEngine, StepEngine, load_engine
from anomalyd.models.features import NORM_FIELDS, norm_std, observe
from anomalyd.models.slots import Field, SlotTable, batch_plan

# Fields that survive a state reset: they guard ordering and idleness, not the model.
_KEEP_ON_RESET = ("seen_ts", "seen_at")
# What a gap longer than max_gap resets: the network's memory and the prediction made before
# the gap describe a past too old to continue from; the sensor's learnt scale, typical error
# and score history still hold, so it needs no new warm-up.
CONTEXT_FIELDS = ("state", "prediction")


@dataclass(frozen=True)
class DetectorSettings:
    capacity: int = 100_000
    batch_size: int = 1024
    backend: str = "litert"
    max_gap: float = 3600.0  # seconds between readings beyond which a sensor starts afresh


@dataclass
class TickResult:
    """Scored readings in processing order, plus what was refused and reset."""

    index: np.ndarray  # position of each scored reading in the tick's input
    sensors: list[str]
    ts: np.ndarray
    values: np.ndarray
    # What each reading was judged against: the model's prediction (made at the previous
    # reading) or the scorer's trend fallback; NaN after a reset.
    prediction: np.ndarray
    score: np.ndarray
    anomaly: np.ndarray
    warmup: np.ndarray
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (input index, reason)
    resets: Counter = field(default_factory=Counter)  # reason -> count

    def __len__(self) -> int:
        return len(self.index)


class Detector:
    def __init__(self, artifact: Artifact, settings: DetectorSettings = DetectorSettings(),
                 scoring: ScoringSettings = ScoringSettings(), engine: StepEngine | None = None) -> None:
        self.artifact = artifact
        self.settings = settings
        self.scoring = scoring
        self.threshold = scoring.threshold
        self.engine = engine or load_engine(artifact, settings.batch_size, settings.backend)
        width = self.engine.state_width
        # The network's h and c of every layer, packed in one row (see models.engine).
        fields = {"state": Field((2 * width,), np.float32),
                  "seen_ts": Field((), np.float64, -np.inf), "seen_at": Field((), np.float64, 0.0)}
        fields.update({name: Field(shape, dtype, init) for name, (shape, dtype, init) in NORM_FIELDS.items()})
        fields.update(scorer_fields(scoring))
        self.head = _sensor_head(artifact, scoring, self.engine)
        if self.head is not None:
            fields.update(self.head.fields())
            # The head reads the top layer's h: the last units of the h half of the packed state.
            self._head_inputs = slice(width - self.head.units, width)
        self.table = SlotTable(settings.capacity, fields)
        # A model change invalidates what was learnt on the old model's hidden states.
        self._model_fields = CONTEXT_FIELDS + tuple(self.head.fields() if self.head is not None else ())
        # Fields gathered for a batch and written back; the rest are updated in place by row.
        self._row_state = [name for name in fields if name not in ("state", *_KEEP_ON_RESET, *IN_PLACE_FIELDS)]
        self._reset_fields = [name for name in fields if name not in _KEEP_ON_RESET]

    # -- sensor lifecycle ---------------------------------------------------------------
    def reset_sensor(self, sensor_id: str) -> bool:
        """Start a sensor afresh (its ordering guard is kept); False if it has no slot."""
        row = self.table.row(sensor_id)
        if row is None:
            return False
        self.table.reset([row], self._reset_fields)
        return True

    def evict_idle(self, now: float, idle_timeout: float) -> list[str]:
        """Release sensors with no reading for ``idle_timeout`` seconds of arrival time."""
        rows = self.table.active_rows()
        idle = rows[self.table["seen_at"][rows] < now - idle_timeout]
        sensors = [self.table.sensor(int(row)) for row in idle]
        for sensor_id in sensors:
            self.table.release(sensor_id)
        return sensors

    # -- one tick -------------------------------------------------------------------------
    def process(self, sensors: Sequence[str], ts: np.ndarray, values: np.ndarray,
                now: float | None = None) -> TickResult:
        """Score one tick's readings; ``now`` is the arrival time used for idle eviction."""
        ts = np.asarray(ts, np.float64)
        values = np.asarray(values, np.float64)
        rejected: list[tuple[int, str]] = []
        resets: Counter = Counter()
        rows = self._rows_for(sensors, values, rejected, resets)
        accepted = np.flatnonzero(rows >= 0)
        accepted = self._in_order(accepted, rows, ts, rejected)
        if now is not None:
            self.table["seen_at"][rows[accepted]] = now
        out = _empty_outputs(len(accepted))
        position = 0
        for batch in batch_plan(rows[accepted], self.engine.batch_size):
            chosen = accepted[batch]
            # Time since each sensor's previous reading (NaN for its first): for the gap reset
            # and the scorer's silence rule alike.
            elapsed = ts[chosen] - self.table["last_ts"][rows[chosen]]
            resets["gap"] += self._reset_gaps(rows[chosen], elapsed)
            scored = self._step(rows[chosen], ts[chosen], values[chosen], elapsed)
            for name, array in zip(("index", "ts", "values", "prediction", "score", "anomaly", "warmup"),
                                   (chosen, ts[chosen], values[chosen], *scored)):
                out[name][position:position + len(chosen)] = array
            position += len(chosen)
        if resets["gap"] == 0:
            del resets["gap"]
        return TickResult(sensors=[sensors[i] for i in out["index"]], rejected=rejected, resets=resets, **out)

    def _rows_for(self, sensors: Sequence[str], values: np.ndarray, rejected: list, resets: Counter) -> np.ndarray:
        """Slot row per reading (-1: refused). New sensors get a row; a non-finite value is
        refused and starts its sensor afresh."""
        found = self.table.rows_of(sensors)
        finite = np.isfinite(values)
        if None not in found and finite.all():  # the usual tick: known sensors, finite values
            return np.array(found, np.int64)
        rows = np.empty(len(sensors), np.int64)
        table = self.table
        for index, sensor_id in enumerate(sensors):
            row = table.row(sensor_id)
            if not finite[index]:
                rejected.append((index, "non_finite"))
                if row is not None:
                    table.reset([row], self._reset_fields)
                    resets["non_finite"] += 1
                row = -1
            elif row is None:
                row = table.assign(sensor_id)
                if row is None:
                    rejected.append((index, "capacity"))
                    row = -1
                else:
                    resets["new"] += 1
            rows[index] = row
        return rows

    def _in_order(self, accepted: np.ndarray, rows: np.ndarray, ts: np.ndarray, rejected: list) -> np.ndarray:
        """Accepted readings sorted by (sensor, timestamp); drop duplicates and stale ones."""
        order = accepted[np.lexsort((ts[accepted], rows[accepted]))]
        sorted_rows, sorted_ts = rows[order], ts[order]
        first = np.r_[True, sorted_rows[1:] != sorted_rows[:-1]] if len(order) else np.zeros(0, bool)
        # Newest timestamp this sensor had before each reading: its guard, or the reading
        # before it in this tick (sorted, so the guard only grows).
        previous = np.maximum(self.table["seen_ts"][sorted_rows],
                              np.where(first, -np.inf, np.r_[-np.inf, sorted_ts[:-1]]))
        duplicate = sorted_ts == previous
        stale = sorted_ts < previous
        for index in order[duplicate]:
            rejected.append((int(index), "duplicate"))
        for index in order[stale]:
            rejected.append((int(index), "out_of_order"))
        keep = order[~(duplicate | stale)]
        if len(keep):
            # The newest timestamp per sensor becomes its ordering guard.
            np.maximum.at(self.table["seen_ts"], rows[keep], ts[keep])
        return keep

    def _reset_gaps(self, rows: np.ndarray, elapsed: np.ndarray) -> int:
        stale = rows[elapsed > self.settings.max_gap]
        if len(stale):
            self.table.reset(stale, CONTEXT_FIELDS)
        return len(stale)

    def reset_context(self, sensor_ids: list[str]) -> int:
        """Drop the network state, pending prediction and per-sensor head of these sensors
        (used when the model changes); their normalisers and scorer statistics are kept."""
        rows = [row for row in map(self.table.row, sensor_ids) if row is not None]
        self.table.reset(rows, self._model_fields)
        return len(rows)

    def set_predictions(self, sensor_ids: Sequence[str], predictions: np.ndarray) -> None:
        """Judge these sensors' next readings against ``predictions`` instead of the model's
        (offline evaluation with a reference predictor). Sensors without a pending prediction
        (unknown, new or reset) and NaN entries are left as they are."""
        found = self.table.rows_of(sensor_ids)
        known = np.array([row is not None for row in found], bool)
        rows = np.array([row for row in found if row is not None], np.int64)
        given = np.asarray(predictions, np.float64)[known]
        pending = self.table["prediction"][rows]
        self.table["prediction"][rows] = np.where(np.isfinite(pending) & np.isfinite(given), given, pending)

    # -- state transfer (checkpoints) ---------------------------------------------------
    def snapshot_arrays(self) -> tuple[dict[str, int], dict[str, np.ndarray]]:
        """Copies of the sensor map and of every field's used rows (cheap enough between ticks)."""
        high_water = self.table.high_water
        return dict(self.table.items()), {name: array[:high_water].copy() for name, array in self.table.arrays.items()}

    def load_state(self, rows: dict[str, int], arrays: dict[str, np.ndarray], same_model: bool) -> list[str]:
        """Replace all sensor state from a checkpoint; returns the fields that had to start
        fresh (absent or of another shape, e.g. after a settings change).

        Rows are compacted, so a checkpoint moves to a machine with another capacity; sensors
        beyond this capacity are dropped. With another model the network's state and
        predictions mean nothing and are reset; normalisers and scorer statistics are kept.
        """
        order = sorted(rows.items(), key=lambda item: item[1])[:self.table.capacity]
        old_rows = np.array([row for _, row in order], np.int64)
        fresh, compact = [], {}
        for name, spec in self.table.fields.items():
            stored = arrays.get(name)
            if stored is None or stored.shape[1:] != spec.shape or stored.dtype != np.dtype(spec.dtype):
                fresh.append(name)
                compact[name] = np.full((len(order), *spec.shape), spec.initial, spec.dtype)
            else:
                compact[name] = stored[old_rows]
        self.table.restore({sensor: row for row, (sensor, _) in enumerate(order)}, compact)
        if not same_model:
            self.table.reset(np.arange(len(order)), self._model_fields)
        return fresh

    def _step(self, rows: np.ndarray, ts: np.ndarray, values: np.ndarray, elapsed: np.ndarray):
        """Score and step one batch of distinct rows (``elapsed``: seconds since each one's previous
        reading); returns per-reading output arrays."""
        table, spec, head = self.table, self.artifact.features, self.head
        state = {name: table[name][rows] for name in self._row_state}
        previous_prediction = state["prediction"].copy()
        mean_before = state["norm_mean"].copy()
        std_before = norm_std(spec, state["norm_mean"], state["norm_var"])
        scores, anomaly, warmup = score(self.scoring, state, values, std_before, mean_before, self.threshold,
                                        elapsed)
        judged = state["prediction"].copy()  # the model's, or the scorer's trend fallback
        if head is not None:
            # The change from the sensor's previous reading, learnt against the regressors
            # the head staged when it predicted it.
            head.learn(state, table, rows, values, np.isfinite(previous_prediction), state["norm_count"])
        x = observe(spec, state, ts, values)
        z_next = self.engine.step_rows(table["state"], rows, x)
        # The network predicts a change from its (clipped) input; applying that change to the
        # actual value keeps predictions right for values beyond the clip.
        std_after = norm_std(spec, state["norm_mean"], state["norm_var"])
        if head is not None:
            change = head.predict(state, table, rows, table["state"][rows, self._head_inputs], x[:, 0], ts)
            head.remember(state, values, std_after)
        else:
            change = z_next.astype(np.float64) - x[:, 0]
        state["prediction"] = values + std_after * change
        for name in self._row_state:
            table[name][rows] = state[name]
        return judged, scores, anomaly, warmup


def _sensor_head(artifact: Artifact, scoring: ScoringSettings, engine) -> SensorHead | None:
    """The per-sensor output layer, for a network engine (the last-value baseline has none)."""
    if not scoring.head or isinstance(engine, LastValueEngine):
        return None
    kernel, bias = artifact.head_weights()
    return SensorHead(artifact.network.units[-1], kernel, bias, window=scoring.head_window,
                      ridge=scoring.head_ridge, refit_every=scoring.head_refit_every,
                      clip=scoring.head_clip, skip=scoring.head_skip)


def _empty_outputs(n: int) -> dict[str, np.ndarray]:
    return {"index": np.empty(n, np.int64), "ts": np.empty(n), "values": np.empty(n),
            "prediction": np.empty(n), "score": np.empty(n), "anomaly": np.empty(n, bool),
            "warmup": np.empty(n, bool)}
