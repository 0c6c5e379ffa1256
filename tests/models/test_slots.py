"""Slot table: row lifecycle, capacity, gather/scatter, and batching of pending readings."""
from __future__ import annotations

import numpy as np
import pytest

from anomalyd.models.engine import load_engine
from anomalyd.models.slots import Field, SlotTable, batch_plan

FIELDS = {"h": Field((3,), np.float32), "count": Field((), np.float64, 0.0), "low": Field((), np.float64, np.inf)}


def test_assign_release_and_reuse():
    table = SlotTable(4, FIELDS)
    rows = [table.assign(f"s{i}") for i in range(3)]
    assert rows == [0, 1, 2] and len(table) == 3
    assert table.assign("s1") == 1  # already has a row
    table["count"][1] = 5.0
    table["low"][1] = -2.0
    assert table.release("s1") == 1 and "s1" not in table and table.sensor(1) is None
    assert table.assign("new") == 1  # freed rows are reused before fresh ones
    assert table["count"][1] == 0.0 and table["low"][1] == np.inf  # and start from the initial state
    assert table.high_water == 3
    assert table.release("unknown") is None


def test_refuses_beyond_capacity_and_never_grows():
    table = SlotTable(2, FIELDS)
    assert table.assign("a") == 0 and table.assign("b") == 1
    assert table.assign("c") is None
    assert len(table) == 2 and table["h"].shape[0] == 2
    table.release("a")
    assert table.assign("c") == 0


def test_gather_scatter_round_trip_and_reset_of_chosen_rows():
    table = SlotTable(6, FIELDS)
    for i in range(6):
        table.assign(f"s{i}")
    table["h"][:] = np.arange(18, dtype=np.float32).reshape(6, 3)
    rows = np.array([4, 1, 3])
    gathered = table.gather("h", rows)
    assert np.array_equal(gathered, table["h"][rows])
    table.scatter("h", rows, gathered * 10)
    assert np.array_equal(table["h"][rows], gathered * 10)
    before = table["h"].copy()
    table.reset([1], ["h"])
    assert np.array_equal(table["h"][1], np.zeros(3))
    others = np.array([0, 2, 3, 4, 5])
    assert np.array_equal(table["h"][others], before[others])


def test_restore_rebuilds_map_and_free_list():
    table = SlotTable(8, FIELDS)
    for i in range(5):
        table.assign(f"s{i}")
    table.release("s1")
    table["count"][:5] = [1, 2, 3, 4, 5]
    copy = SlotTable(8, FIELDS)
    copy.restore(dict(table.items()), table.arrays)
    assert dict(copy.items()) == dict(table.items())
    assert np.array_equal(copy["count"][:5], table["count"][:5])
    assert copy.assign("x") == 1  # the hole is free again
    with pytest.raises(ValueError, match="capacity"):
        SlotTable(3, FIELDS).restore(dict(table.items()), table.arrays)


def test_batch_plan_keeps_per_sensor_order_and_batch_limit():
    rows = np.array([5, 3, 5, 9, 5, 3, 1, 2, 4, 6, 7])
    batches = batch_plan(rows, batch_size=3)
    seen = np.concatenate(batches)
    assert sorted(seen.tolist()) == list(range(len(rows)))
    for batch in batches:
        assert len(batch) <= 3 and len(set(rows[batch])) == len(batch)
    position = {index: k for k, batch in enumerate(batches) for index in batch}
    for row in set(rows.tolist()):
        indices = np.flatnonzero(rows == row)
        assert [position[i] for i in indices] == sorted(position[i] for i in indices)
        assert len({position[i] for i in indices}) == len(indices)
    assert batch_plan(np.array([], np.int64), 4) == []


def test_more_sensors_than_batch_equals_one_big_batch(model_artifact):
    n_sensors, batch, steps = 23, 8, 5
    width = 2 * model_artifact.network.state_width
    rng = np.random.default_rng(1)
    x = rng.normal(size=(steps, n_sensors, model_artifact.network.n_features)).astype(np.float32)
    small, big = load_engine(model_artifact, batch), load_engine(model_artifact, n_sensors)
    table_small = np.zeros((n_sensors, width), np.float32)
    table_big = table_small.copy()
    rows = rng.permutation(n_sensors)
    for t in range(steps):
        got = np.zeros(n_sensors, np.float32)
        for indices in batch_plan(rows, batch):
            got[indices] = small.step_rows(table_small, rows[indices], x[t][rows[indices]])
        expected = big.step_rows(table_big, rows, x[t][rows])
        assert np.abs(got - expected).max() <= 1e-5
    assert np.abs(table_small - table_big).max() <= 1e-5
