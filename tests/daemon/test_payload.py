"""The pure decoder: formats, limits, and every rejection reason."""
from __future__ import annotations

import json
import math

import pytest

from anomalyd.daemon.payload import REASONS, Decoder, Limits

NOW = 1_700_000_000.0


def decode(payload, topic="sensors/s1", **limits):
    raw = payload if isinstance(payload, bytes) else payload.encode()
    return Decoder(Limits(**limits)).decode(topic, raw, NOW)


def test_bare_number_uses_topic_and_arrival_time():
    out = decode(" 21.5 ", "plant/line1/temp3")
    assert (out.sensors, out.ts, out.values, out.rejected) == (["temp3"], [NOW], [21.5], [])


def test_json_object_with_and_without_ts():
    assert decode(json.dumps({"value": 3, "ts": NOW - 5})).ts == [NOW - 5]
    out = decode(json.dumps({"value": -2.5}))
    assert out.ts == [NOW] and out.values == [-2.5]


def test_senml_base_fields_and_relative_time():
    records = [{"bn": "dev.", "bt": NOW - 10, "bv": 100, "n": "a", "v": 1},
               {"n": "a", "t": 2, "v": 2}, {"n": "b", "v": 3},
               {"bn": "other.", "bt": 0, "n": "c", "t": -1, "v": 4}, {"n": "s", "vs": "text"}]
    out = decode(json.dumps(records))
    assert out.sensors == ["dev.a", "dev.a", "dev.b", "other.c"]
    assert out.ts == [NOW - 10, NOW - 8, NOW - 10, NOW - 1]  # bt 0 + t -1: relative to now
    assert out.values == [101, 102, 103, 104]
    assert out.rejected == ["not_numeric"]  # the string value


@pytest.mark.parametrize("payload, reason, limits", [
    ("x" * 100, "oversized", {"max_payload_bytes": 50}),
    (b"\xc3\x28", "invalid_utf8", {}),
    ('{"value": ', "invalid_json", {}),
    ("[1, 2", "invalid_json", {}),
    ("abc", "not_numeric", {}),
    ('{"value": "1"}', "not_numeric", {}),
    ('{"value": null}', "not_numeric", {}),
    ('{"value": true}', "not_numeric", {}),
    ('{"val": 1}', "wrong_shape", {}),
    ("[1, 2]", "wrong_shape", {}),
    ("[]", "wrong_shape", {}),
    ('{"value": 1, "ts": "now"}', "bad_timestamp", {}),
    ('{"value": 1, "ts": 0}', "bad_timestamp", {}),
    ('{"value": 1, "ts": 1e400}', "bad_timestamp", {}),
    (json.dumps({"value": 1, "ts": NOW + 3600}), "future_timestamp", {}),
    ('{"value": 1e300}', "out_of_range", {}),
    ('{"value": 1' + "0" * 400 + "}", "out_of_range", {}),
    (json.dumps([{"n": "a", "v": 1}] * 3), "too_many_readings", {"max_readings_per_message": 2}),
])
def test_rejections(payload, reason, limits):
    out = decode(payload, **limits)
    assert out.sensors == [] and out.rejected == [reason]
    assert reason in REASONS


def test_bad_sensor_ids_from_topic_and_senml():
    assert decode("1", "sensors/has space").rejected == ["bad_sensor_id"]
    assert decode(json.dumps([{"bn": "a/b", "n": "c", "v": 1}])).rejected == ["bad_sensor_id"]
    assert decode("1", "sensors/" + "x" * 200).rejected == ["bad_sensor_id"]


def test_non_finite_values_pass_through_for_the_detector():
    for text in ("nan", "inf", '{"value": NaN}', '{"value": -Infinity}'):
        out = decode(text)
        assert out.rejected == [] and not math.isfinite(out.values[0])


def test_deeply_nested_json_is_rejected_not_raised():
    assert decode("[" * 100_000 + "]" * 100_000, max_payload_bytes=10**6).rejected in (["invalid_json"], ["wrong_shape"])


def _random_senml(rng, known: list[str]) -> list[dict]:
    """A SenML message, usually well-formed, with one of many possible defects."""
    import random

    count = rng.randint(1, 6)
    records = [{"n": rng.choice(known), "t": rng.choice([0, 1.5, -3, 7]), "v": rng.uniform(-50, 50)}
               for _ in range(count)]
    if rng.random() < 0.5:
        records[0].update(bn="plant.", bt=rng.choice([NOW - 100, NOW - 100.5, 0, 5]), bv=rng.choice([0, 1.5, 2]))
    defects = [
        lambda r: r.update(v=rng.choice([True, "7", None, float("nan"), float("inf"), -float("inf"), 10 ** 400,
                                         10 ** 15 + 1, 3, -10 ** 16])),
        lambda r: r.update(t=rng.choice([True, "1", float("nan"), float("inf"), 10 ** 400, NOW * 2, -NOW, 2 ** 28])),
        lambda r: r.update(n=rng.choice(["bad id!", 5, "", "new-sensor-" + str(rng.randint(0, 9))])),
        lambda r: r.pop("n", None), lambda r: r.pop("v", None), lambda r: r.pop("t", None),
        lambda r: r.update(bn="other."), lambda r: r.update(bt=NOW), lambda r: r.update(bv=1.0),
        lambda r: r.update(u="Cel"), lambda r: r.update(vs="text"),
    ]
    for _ in range(rng.choice([0, 0, 1, 2])):
        rng.choice(defects)(rng.choice(records))
    assert isinstance(rng, random.Random)
    return records


def test_senml_bulk_path_matches_the_record_by_record_path():
    """The bulk path for usual messages must give exactly what the general path gives, for
    every message it accepts, and leave every other message to that path."""
    import random

    rng = random.Random(5)
    known = [f"s{i}" for i in range(8)] + [f"plant.s{i}" for i in range(8)]
    bulk, records_only = Decoder(), Decoder()
    records_only._senml_common = lambda *args: False
    for decoder in (bulk, records_only):  # both learn the same valid ids first
        decoder.decode("sensors/senml", json.dumps([{"n": name, "v": 1.0, "t": 0} for name in known]).encode(), NOW)
    taken = []
    bulk_path = bulk._senml_common
    bulk._senml_common = lambda *args: taken.append(bulk_path(*args)) or taken[-1]
    for _ in range(3000):
        message = json.dumps(_random_senml(rng, known)).encode()
        expected = records_only.decode("sensors/senml", message, NOW)
        got = bulk.decode("sensors/senml", message, NOW)
        assert (got.sensors, got.ts, got.rejected) == (expected.sensors, expected.ts, expected.rejected), message
        assert [repr(v) for v in got.values] == [repr(v) for v in expected.values], message
    assert sum(taken) > 1500, sum(taken)  # the well-formed messages went the bulk way


def test_senml_huge_integers_are_refused_without_losing_the_rest_of_the_message():
    records = [{"n": "a", "v": 10 ** 400}, {"n": "b", "t": 10 ** 400, "v": 1.0}, {"n": "c", "v": 2.0},
               {"bn": "d", "bt": 10 ** 400, "n": "x", "t": 0.5, "v": 3.0}]
    out = decode(json.dumps(records))
    assert out.rejected == ["out_of_range", "bad_timestamp", "bad_timestamp"]
    assert (out.sensors, out.values) == (["c"], [2.0])
