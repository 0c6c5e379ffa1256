"""Payload encoders (pure): the exact bytes on the wire, and the sensor-id rules."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from anomalyd.simulator.fleet import sensor_ids
from anomalyd.simulator.payloads import Encoder, encode_json, encode_number, encode_senml
from anomalyd.simulator.replay import sanitize_sensor_id

ID_RE = re.compile(r"[A-Za-z0-9_.-]+")


def test_number_and_json_exact_bytes():
    assert encode_number(21.5) == b"21.5"
    assert encode_number(-0.001234) == b"-0.001234"
    assert encode_json(21.5, 1700000000.123) == b'{"value": 21.5, "ts": 1700000000.123}'


def test_senml_exact_bytes_and_decoding():
    payload = encode_senml(["temp7", "temp7", "temp8"], [1700000000.0, 1700000001.0, 1700000001.25],
                           [21.5, 21.6, 3.2], base_name="plant1.")
    assert payload == (b'[{"bn":"plant1.","bt":1700000000,"n":"temp7","v":21.5},'
                       b'{"n":"temp7","t":1.0,"v":21.6},{"n":"temp8","t":1.25,"v":3.2}]')
    records = json.loads(payload)
    bn, bt = records[0]["bn"], records[0]["bt"]
    decoded = [(bn + r["n"], bt + r.get("t", 0), r["v"]) for r in records]
    assert decoded[2] == ("plant1.temp8", 1700000001.25, 3.2)


def test_encoder_batches_senml_across_calls_and_flushes_the_rest():
    ids = sensor_ids(3, "p1.")
    enc = Encoder("senml", ids, senml_batch=4, base_name="p1.")
    first = list(enc.messages(np.array([0, 1, 2]), np.array([1.0, 1.1, 1.2]), np.array([1.0, 2.0, 3.0])))
    assert first == [] and enc.pending == 3
    second = list(enc.messages([0, 1], [2.0, 2.1], [4.0, 5.0]))
    assert [(t, n) for t, _, n in second] == [("sensors/senml", 4)]
    rest = list(enc.flush())
    assert [n for _, _, n in rest] == [1] and enc.pending == 0
    names = [r["n"] for r in json.loads(second[0][1])]
    assert names == ["s00000", "s00001", "s00002", "s00000"]


def test_encoder_topics_and_float_round_trip():
    enc = Encoder("json", ["s00000", "s00001"], topic_template="plant/{sensor_id}/value")
    values = np.array([0.1 + 0.2, 1e-300, 123456789.123456789])
    msgs = list(enc.messages(np.array([1, 0, 1]), np.array([1.5, 2.5, 3.5]), values))
    assert [m[0] for m in msgs] == ["plant/s00001/value", "plant/s00000/value", "plant/s00001/value"]
    assert [json.loads(m[1])["value"] for m in msgs] == values.tolist()  # bit-exact


def test_encoder_rejects_bad_options():
    with pytest.raises(ValueError):
        Encoder("xml", ["s1"])
    with pytest.raises(ValueError):
        Encoder("json", ["s1"], topic_template="sensors/+")
    with pytest.raises(ValueError):
        Encoder("senml", ["a.s1", "b.s2"], base_name="a.")


def test_sensor_ids_and_sanitising():
    ids = sensor_ids(100_000)
    assert ids[0] == "s00000" and ids[-1] == "s99999"
    assert all(ID_RE.fullmatch(i) for i in ids[:10] + ids[-10:])
    assert sanitize_sensor_id("machine temp (°C)#3") == "machine_temp___C__3"
    assert ID_RE.fullmatch(sanitize_sensor_id("a/b c")) and sanitize_sensor_id("") == "sensor"
