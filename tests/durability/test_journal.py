"""The journal: round trip, torn tails, rotation and trimming."""
from __future__ import annotations

import numpy as np

from anomalyd.daemon import journal


def test_round_trip_across_segments_and_resets(tmp_path):
    log = journal.Journal(tmp_path)
    first = log.append(["a", "b"], [1.0, 2.0], [10.0, 20.0], 100.0)
    log.rotate()
    log.append([], [], [], 101.0, reset="a")
    log.append(["c"], [3.0], [30.0], 102.0)
    log.close()
    records = list(journal.replay(tmp_path))
    assert [r.sensors for r in records] == [["a", "b"], [], ["c"]]
    assert records[1].reset == "a" and records[0].reset is None
    assert records[0].ts.tolist() == [1.0, 2.0] and records[2].values.tolist() == [30.0]
    assert records[0].arrival == 100.0 and records[0].position == first
    later = list(journal.replay(tmp_path, first))
    assert [r.sensors for r in later] == [[], ["c"]]


def test_torn_tail_ends_replay_of_that_segment_only(tmp_path):
    log = journal.Journal(tmp_path)
    log.append(["a"], [1.0], [1.0], 1.0)
    end = log.append(["a"], [2.0], [2.0], 2.0)
    log.close()
    path = journal.segment_path(tmp_path, end.segment)
    path.write_bytes(path.read_bytes()[:-3])  # a crash in the middle of the last write
    newer = journal.Journal(tmp_path)  # a restarted process writes a new segment
    newer.append(["b"], [3.0], [3.0], 3.0)
    newer.close()
    assert [r.ts.tolist() for r in journal.replay(tmp_path)] == [[1.0], [3.0]]
    flipped = bytearray(path.read_bytes())
    flipped[20] ^= 0xFF
    path.write_bytes(bytes(flipped))
    assert [r.ts.tolist() for r in journal.replay(tmp_path)] == [[3.0]]


def test_replay_stops_before_the_running_segment_and_trim_frees_old_ones(tmp_path):
    old = journal.Journal(tmp_path)
    old.append(["a"], [1.0], [1.0], 1.0)
    old.close()
    current = journal.Journal(tmp_path)
    current.append(["live"], [2.0], [2.0], 2.0)
    assert [r.sensors for r in journal.replay(tmp_path, before_segment=current.first_segment)] == [["a"]]
    keep = current.rotate()
    freed = current.trim(keep)
    assert freed > 0 and journal.segments(tmp_path) == [keep.segment]
    current.close()


def test_many_readings_in_one_record(tmp_path):
    log = journal.Journal(tmp_path)
    sensors = [f"s{i}" for i in range(5000)]
    values = np.random.default_rng(0).normal(size=5000)
    log.append(sensors, list(np.arange(5000.0)), list(values), 7.0)
    log.close()
    (record,) = journal.replay(tmp_path)
    assert record.sensors == sensors and np.array_equal(record.values, values)
