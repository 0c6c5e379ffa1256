"""Checkpoint files: atomic writes, verification, fallback, retention, throttling."""
from __future__ import annotations

import numpy as np
import pytest

from anomalyd.daemon import checkpoint
from anomalyd.daemon.journal import Position


def snapshot(n: int = 5, seed: int = 0) -> checkpoint.Snapshot:
    rng = np.random.default_rng(seed)
    arrays = {"h": rng.normal(size=(n, 4)).astype(np.float32), "count": np.arange(n, dtype=np.float64),
              "ring": rng.normal(size=(n, 3)).astype(np.float32)}
    rows = {f"s{i}": i for i in range(n) if i != 2}  # row 2 is free
    return checkpoint.Snapshot(rows, arrays, "f" * 64, {"k": 1}, Position(3, 99))


def test_write_then_read_gives_the_same_state(tmp_path):
    path, size = checkpoint.CheckpointWriter(tmp_path).write(snapshot())
    assert path.stat().st_size == size and not list(tmp_path.glob(".*.tmp"))
    loaded = checkpoint.read(path)
    original = snapshot()
    assert loaded.rows == original.rows and loaded.position == Position(3, 99) and loaded.fingerprint == "f" * 64
    for name, array in original.arrays.items():
        assert np.array_equal(loaded.arrays[name], array) and loaded.arrays[name].dtype == array.dtype


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty"])
def test_damaged_files_are_detected_and_the_previous_one_is_used(tmp_path, damage):
    writer = checkpoint.CheckpointWriter(tmp_path)
    older, _ = writer.write(snapshot(seed=1))
    newer, _ = writer.write(snapshot(seed=2))
    data = newer.read_bytes()
    if damage == "truncate":
        newer.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        newer.write_bytes(data[:100] + bytes([data[100] ^ 0x01]) + data[101:])
    else:
        newer.write_bytes(b"")
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.read(newer)
    skipped = []
    loaded = checkpoint.newest_valid(tmp_path, lambda path, error: skipped.append(path))
    assert loaded.path == older and skipped == [newer]
    assert checkpoint.describe(newer)["valid"] is False and checkpoint.describe(older)["valid"] is True


def test_keeps_only_the_newest_k(tmp_path):
    writer = checkpoint.CheckpointWriter(tmp_path, keep=2)
    paths = [writer.write(snapshot(seed=i))[0] for i in range(4)]
    assert [p for _, p in checkpoint.list_checkpoints(tmp_path)] == [paths[3], paths[2]]
    assert checkpoint.CheckpointWriter(tmp_path, keep=2).write(snapshot())[0].name.endswith("000000000005.ckpt")


def test_write_rate_spreads_the_write_over_time(tmp_path):
    clock = {"now": 0.0}
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        clock["now"] += seconds

    big = snapshot(n=200_000)  # about 12 MB
    writer = checkpoint.CheckpointWriter(tmp_path, write_rate=4e6, clock=lambda: clock["now"], sleep=sleep)
    _, size = writer.write(big)
    assert sum(slept) == pytest.approx(size / 4e6, rel=0.15)


def test_an_unwritable_target_raises_and_leaves_no_temp_file(tmp_path):
    blocker = tmp_path / "state"
    blocker.write_text("a file where the directory should be")
    with pytest.raises(OSError):
        checkpoint.CheckpointWriter(blocker).write(snapshot())
