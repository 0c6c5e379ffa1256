"""Decoding MQTT messages into readings: a pure function of (topic, payload, arrival time).

Accepted payloads:
- a bare number (``21.5``): the sensor is named by the topic, ts = arrival time;
- JSON ``{"value": 21.5, "ts": 1700000000.1}`` (``ts`` optional: arrival time);
- SenML (RFC 8428) JSON arrays: many sensors and readings per message, sensor id = base
  name + name, ts = base time + time (a relative time, below 2**28 as RFC 8428 says, counts
  from the arrival time), value = base value + value.

Nothing here raises on bad input: every problem becomes a counted rejection with a reason.
Non-finite values pass as readings (NaN): the detector refuses them and restarts the sensor.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

REASONS = ("oversized", "invalid_utf8", "invalid_json", "not_numeric", "wrong_shape", "bad_sensor_id",
           "bad_timestamp", "future_timestamp", "out_of_range", "too_many_readings",
           "non_finite", "duplicate", "out_of_order", "capacity")
_SENML_RELATIVE_LIMIT = 2 ** 28  # RFC 8428 4.5.3: smaller times are relative to "now"


@dataclass(frozen=True)
class Limits:
    max_payload_bytes: int = 65_536
    max_readings_per_message: int = 10_000
    sensor_id_pattern: str = r"^[A-Za-z0-9_.:-]{1,128}$"
    topic_pattern: str = r"^(?:.*/)?(?P<sensor>[^/]+)$"
    min_value: float = -1e15
    max_value: float = 1e15
    max_future_seconds: float = 300.0


@dataclass
class Decoded:
    sensors: list[str] = field(default_factory=list)
    ts: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # one reason per refused reading/message


class Decoder:
    """Holds the compiled patterns; ``decode`` is safe to call from the network thread."""

    def __init__(self, limits: Limits = Limits()) -> None:
        self.limits = limits
        self._sensor_ok = re.compile(limits.sensor_id_pattern).fullmatch
        self._topic = re.compile(limits.topic_pattern).match
        self._valid_ids: set[str] = set()

    def decode(self, topic: str, payload: bytes, now: float) -> Decoded:
        out = Decoded()
        if len(payload) > self.limits.max_payload_bytes:
            out.rejected.append("oversized")
            return out
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            out.rejected.append("invalid_utf8")
            return out
        stripped = text.strip()
        if stripped.startswith("["):
            self._senml(stripped, now, out)
        elif stripped.startswith("{"):
            self._json_object(topic, stripped, now, out)
        else:
            self._bare(topic, stripped, now, out)
        return out

    # -- formats ------------------------------------------------------------------------
    def _bare(self, topic: str, text: str, now: float, out: Decoded) -> None:
        try:
            value = float(text)
        except ValueError:
            out.rejected.append("not_numeric")
            return
        self._add(out, self._sensor_from_topic(topic), now, value, now)

    def _json_object(self, topic: str, text: str, now: float, out: Decoded) -> None:
        document = _load_json(text, out)
        if document is None:
            return
        if not isinstance(document, dict) or "value" not in document:
            out.rejected.append("wrong_shape")
            return
        self._add(out, self._sensor_from_topic(topic), document.get("ts", now), document["value"], now)

    def _senml(self, text: str, now: float, out: Decoded) -> None:
        records = _load_json(text, out)
        if records is None:
            return
        if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
            out.rejected.append("wrong_shape")
            return
        if len(records) > self.limits.max_readings_per_message:
            out.rejected.append("too_many_readings")
            return
        if not self._senml_common(records, now, out):
            self._senml_records(records, now, out)

    def _senml_common(self, records: list[dict], now: float, out: Decoded) -> bool:
        """The usual message in bulk: base fields on the first record only, every record with
        a string ``n``, a number ``v`` and optionally a number ``t``, known valid sensor ids,
        every reading acceptable. False (nothing added) hands the message to the record-by-
        record path, which gives the same result for these and names what is wrong otherwise.
        Per reading this is a few list comprehensions instead of a dozen function calls."""
        first = records[0]
        base_name, base_time, base_value = first.get("bn", ""), first.get("bt", 0.0), first.get("bv", 0.0)
        if type(base_name) is not str or not (_is_number(base_time) and _is_number(base_value)):
            return False
        rest = records[1:]
        if any("bn" in r or "bt" in r or "bv" in r for r in rest):
            return False
        try:
            names = [base_name + r["n"] for r in records]
            raw_values = [r["v"] for r in records]
            raw_times = [r.get("t", 0.0) for r in records]
        except (KeyError, TypeError):  # no n or v, or a non-string n
            return False
        if not (_NUMBER_TYPES.issuperset(map(type, raw_values)) and _NUMBER_TYPES.issuperset(map(type, raw_times))
                and self._valid_ids.issuperset(names)):
            return False
        try:
            values = [float(v + base_value) for v in raw_values]
            times = [float(base_time + t) for t in raw_times]
        except OverflowError:
            return False
        times = [now + ts if abs(ts) < _SENML_RELATIVE_LIMIT else ts for ts in times]
        low, high, latest = self.limits.min_value, self.limits.max_value, now + self.limits.max_future_seconds
        # Comparisons fail for NaN: a NaN or infinite time, or an infinite value, takes the
        # record path (NaN values pass here, as readings, as they do there).
        if not (all(0 < ts <= latest for ts in times) and all(low <= v <= high for v in values if v == v)):
            return False
        out.sensors += names
        out.ts += times
        out.values += values
        return True

    def _senml_records(self, records: list[dict], now: float, out: Decoded) -> None:
        base_name, base_time, base_value, base_ok = "", 0.0, 0.0, True
        for record in records:
            if "bn" in record or "bt" in record or "bv" in record:  # checked when they change
                base_name = record.get("bn", base_name)
                base_time = record.get("bt", base_time)
                base_value = record.get("bv", base_value)
                base_ok = type(base_name) is str and _is_number(base_time) and _is_number(base_value)
            if not base_ok:
                out.rejected.append("wrong_shape")
                continue
            if "v" not in record:
                if not ({"n", "t", "vs", "vb", "vd", "s"} & record.keys()):
                    continue  # a record that only sets base fields
                out.rejected.append("not_numeric")  # string/bool/data values are not readings
                continue
            name = record.get("n", "")
            when = record.get("t", 0.0)
            if not isinstance(name, str) or not _is_number(when):
                out.rejected.append("wrong_shape")
                continue
            ts = _offset(when, base_time)
            if abs(ts) < _SENML_RELATIVE_LIMIT:
                ts = now + ts
            value = record["v"]
            self._add(out, base_name + name, ts, _offset(value, base_value) if _is_number(value) else value, now)

    # -- checks -----------------------------------------------------------------------------
    def _sensor_from_topic(self, topic: str) -> str | None:
        match = self._topic(topic)
        return match.group("sensor") if match else None

    def _id_ok(self, sensor: str) -> bool:
        """The allowed pattern, and printable: ids become topic levels, log text and journal
        lines. Valid ids are remembered (a bounded set): the check runs per reading."""
        if sensor in self._valid_ids:
            return True
        if not (self._sensor_ok(sensor) and sensor.isprintable()):
            return False
        if len(self._valid_ids) >= _VALID_IDS_KEPT:
            self._valid_ids.clear()
        self._valid_ids.add(sensor)
        return True

    def _add(self, out: Decoded, sensor: str | None, ts, value, now: float) -> None:
        if sensor is None or not self._id_ok(sensor):
            out.rejected.append("bad_sensor_id")
        elif not _is_number(value):
            out.rejected.append("not_numeric")
        elif not _is_number(ts):
            out.rejected.append("bad_timestamp")
        elif isinstance(value, int) and not self.limits.min_value <= value <= self.limits.max_value:
            out.rejected.append("out_of_range")  # also catches integers too large for a float
        else:
            ts, value = _as_float(ts), _as_float(value)
            reason = self._problem(ts, value, now)
            if reason:
                out.rejected.append(reason)
            else:
                out.sensors.append(sensor)
                out.ts.append(ts)
                out.values.append(value)

    def _problem(self, ts: float, value: float, now: float) -> str | None:
        if not math.isfinite(ts) or ts <= 0:
            return "bad_timestamp"
        if ts > now + self.limits.max_future_seconds:
            return "future_timestamp"
        if math.isfinite(value) and not self.limits.min_value <= value <= self.limits.max_value:
            return "out_of_range"
        return None


_NUMBER_TYPES = frozenset((int, float))
_VALID_IDS_KEPT = 200_000


def _is_number(value) -> bool:
    """An int or float, not a bool (JSON decoding yields exact types, so no subclasses)."""
    return type(value) in _NUMBER_TYPES


def _offset(number, base):
    """number + base (SenML's base time or value). A huge JSON integer added to a float
    overflows: it stays as it is, and is refused downstream (out of range / bad timestamp)
    instead of raising out of the decoder."""
    try:
        return number + base
    except OverflowError:
        return number if type(number) is int else base


def _as_float(number) -> float:
    """Huge JSON integers overflow a float: as timestamps they become infinite (then refused)."""
    try:
        return float(number)
    except OverflowError:
        return math.inf if number > 0 else -math.inf


def _load_json(text: str, out: Decoded):
    try:
        # Python's json accepts NaN and Infinity literals: they become non-finite readings.
        return json.loads(text)
    except (ValueError, RecursionError):
        out.rejected.append("invalid_json")
        return None
