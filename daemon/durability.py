"""Crash-exact state: restore at start-up, the journal while running, periodic checkpoints.

Promise: killing the daemon at any moment loses no reading the broker delivered, and after a
restart every sensor's state is what an uninterrupted run would have. How:
- every decoded message is journaled before it is queued (and before the broker gets its
  acknowledgement), so whatever the broker considers delivered is on disk (kernel);
- the worker knows the journal position of the last reading it has applied; a checkpoint is
  a snapshot of all state tagged with that position;
- restart = the newest valid checkpoint, then the journal from its position through the
  detector again (same code path, scores re-published with ``replayed: true``), then live.

Snapshots are copied between ticks (a short pause) and written by a background thread, so a
slow disk delays the checkpoint, never the scoring.
"""
from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from anomalyd.daemon import checkpoint as ckpt
from anomalyd.daemon import journal as jnl
from anomalyd.daemon.config import StateConfig
from anomalyd.daemon.detector import Detector
from anomalyd.daemon.metrics import Metrics


@dataclass
class RestoreReport:
    outcome: str  # fresh | restored | fallback | model_changed | none_valid
    checkpoint: str = ""
    skipped: int = 0  # invalid checkpoints passed over
    fresh_fields: tuple[str, ...] = ()
    position: jnl.Position = jnl.START


def semantic_settings(detector: Detector) -> dict:
    """Configuration that changes what the stored state means (recorded in checkpoints)."""
    return {"features": detector.artifact.features.to_dict(), "scoring": dataclasses.asdict(detector.scoring),
            "max_gap": detector.settings.max_gap, "units": list(detector.artifact.network.units)}


class StateKeeper:
    def __init__(self, config: StateConfig, metrics: Metrics, log: logging.Logger,
                 write_rate: float = 0.0) -> None:
        self.config, self.metrics, self.log = config, metrics, log
        self.directory = Path(config.directory)
        self.journal: jnl.Journal | None = None
        self.writer = ckpt.CheckpointWriter(self.directory, config.keep, write_rate)
        self._snapshots: queue.Queue = queue.Queue(maxsize=1)
        self._idle = threading.Event()
        self._idle.set()
        self._last_checkpoint = time.monotonic()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.journal_failures = 0
        metrics.checkpoint_interval.set(config.checkpoint_interval)

    @property
    def writing(self) -> bool:
        """True while a checkpoint write is in progress."""
        return not self._idle.is_set()

    # -- start-up ------------------------------------------------------------------------
    def restore(self, detector: Detector) -> RestoreReport:
        """Load the newest valid checkpoint into the detector (or start fresh, loudly)."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.log.error("cannot create the state directory %s (%s): starting with empty state", self.directory, exc)
        skipped = []

        def invalid(path: Path, error: ckpt.CheckpointError) -> None:
            skipped.append(path)
            self.log.error("checkpoint %s is not usable, falling back to an older one: %s", path.name, error)

        loaded = ckpt.newest_valid(self.directory, invalid)
        report = self._apply(detector, loaded, len(skipped))
        self.metrics.restore.info({"outcome": report.outcome, "checkpoint": report.checkpoint,
                                   "skipped": str(report.skipped)})
        if skipped:
            self.metrics.checkpoint_invalid.inc(len(skipped))
        return report

    def _apply(self, detector: Detector, loaded: ckpt.Loaded | None, skipped: int) -> RestoreReport:
        if loaded is None:
            if skipped:
                self.log.error("no valid checkpoint in %s: starting with empty state", self.directory)
                return RestoreReport("none_valid", skipped=skipped)
            self.log.info("no checkpoint in %s: starting with empty state", self.directory)
            return RestoreReport("fresh")
        same_model = loaded.fingerprint == detector.artifact.fingerprint
        fresh = detector.load_state(loaded.rows, loaded.arrays, same_model)
        if not same_model:
            self.log.warning("checkpoint %s was made with model %s, running %s: network state of %d sensors "
                             "reset, normalisers and scorer statistics kept", loaded.path.name,
                             loaded.fingerprint[:12], detector.artifact.short_fingerprint, len(loaded.rows))
            self.metrics.resets.labels("model_change").inc(len(detector.table))
        if fresh:
            self.log.warning("state fields started fresh (settings changed): %s", ", ".join(fresh))
        outcome = "model_changed" if not same_model else ("fallback" if skipped else "restored")
        self.log.info("restored %d sensors from %s (%s)", len(detector.table), loaded.path.name, outcome)
        return RestoreReport(outcome, loaded.path.name, skipped, tuple(fresh), loaded.position)

    def start(self) -> None:
        """Start this process's journal segment, the group-fsync and the writer threads."""
        self._start_thread(self._write_loop, "anomalyd-checkpoint")
        try:
            self.journal = jnl.Journal(self.directory, self.config.journal_fsync_interval)
        except OSError as exc:
            self.log.error("cannot open the journal in %s (%s): readings are not journaled", self.directory, exc)
            self.metrics.journal_failures.inc()
            return
        self._start_thread(self._sync_loop, "anomalyd-journal-sync")

    def replay_records(self, start: jnl.Position) -> Iterator[jnl.Record]:
        """Journal records written before this process started, from ``start`` on."""
        before = self.journal.first_segment if self.journal else None
        try:
            yield from jnl.replay(self.directory, start, before)
        except OSError as exc:
            self.log.error("journal replay stopped early: %s", exc)

    # -- network thread ------------------------------------------------------------------
    def append(self, sensors: list[str], ts: list[float], values: list[float], arrival: float,
               reset: str | None = None) -> jnl.Position | None:
        if self.journal is None:
            return None
        try:
            return self.journal.append(sensors, ts, values, arrival, reset)
        except OSError as exc:
            self.journal_failures += 1
            self.metrics.journal_failures.inc()
            if self.journal_failures == 1 or self.journal_failures % 10_000 == 0:
                self.log.error("journal write failed (%s); scoring continues without durability", exc)
            return None

    # -- worker thread -------------------------------------------------------------------
    def maybe_checkpoint(self, detector: Detector, position: jnl.Position) -> bool:
        """Take a snapshot when the interval has passed and the last write finished."""
        if time.monotonic() - self._last_checkpoint < self.config.checkpoint_interval or not self._idle.is_set():
            return False
        self._submit(self._snapshot(detector, position))
        return True

    def _snapshot(self, detector: Detector, position: jnl.Position) -> ckpt.Snapshot:
        rows, arrays = detector.snapshot_arrays()
        if self.journal is not None:
            try:
                self.journal.rotate()
            except OSError as exc:
                self.log.error("journal rotation failed: %s", exc)
        return ckpt.Snapshot(rows, arrays, detector.artifact.fingerprint, semantic_settings(detector), position)

    def _submit(self, snapshot: ckpt.Snapshot) -> None:
        self._last_checkpoint = time.monotonic()
        self._idle.clear()
        self._snapshots.put(snapshot)

    def final_checkpoint(self, detector: Detector, position: jnl.Position, timeout: float) -> bool:
        """At clean shutdown: wait for a write in progress, then write one last checkpoint."""
        if not self._idle.wait(timeout):
            self.log.error("a checkpoint write is still running; the final checkpoint is skipped")
            return False
        return self._write(self._snapshot(detector, position))

    # -- background threads ------------------------------------------------------------------
    def _write_loop(self) -> None:
        while not self._stop.is_set():
            try:
                snapshot = self._snapshots.get(timeout=0.2)
            except queue.Empty:
                continue
            self._write(snapshot)

    def _write(self, snapshot: ckpt.Snapshot) -> bool:
        started = time.monotonic()
        try:
            path, size = self.writer.write(snapshot)
        except OSError as exc:
            self.metrics.checkpoint_failures.inc()
            self.metrics.checkpoint_failing.set(1)
            self.log.error("checkpoint failed: %s (scoring continues)", exc)
            self._idle.set()
            return False
        self.metrics.checkpoint_duration.observe(time.monotonic() - started)
        self.metrics.checkpoint_bytes.set(size)
        self.metrics.checkpoint_last.set(time.time())
        self.metrics.checkpoint_failing.set(0)
        if self.journal is not None:
            self.journal.trim(snapshot.position)
        self._update_journal_size()
        self.log.debug("checkpoint %s: %d sensors, %d bytes", path.name, len(snapshot.rows), size)
        self._idle.set()
        return True

    def _sync_loop(self) -> None:
        while not self._stop.wait(self.config.journal_fsync_interval):
            try:
                self.journal.sync()
            except OSError as exc:
                self.metrics.journal_failures.inc()
                self.log.error("journal fsync failed: %s", exc)
            self._update_journal_size()

    def _update_journal_size(self) -> None:
        try:
            self.metrics.journal_bytes.set(self.journal.size() if self.journal else 0)
        except OSError:
            pass

    def _start_thread(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        if self.journal is not None:
            try:
                self.journal.close()
            except OSError as exc:
                self.log.error("closing the journal failed: %s", exc)
