"""Payload formats the daemon accepts, and the messages they make out of a batch (pure).

Exactly as emitted (values and timestamps use Python's shortest round-trip float repr, so a
decoder gets back the very float the generator produced):

- number: topic ``sensors/<sensor_id>``, payload ``21.5`` (ASCII; the daemon stamps the
  arrival time).
- json:   topic ``sensors/<sensor_id>``, payload ``{"value": 21.5, "ts": 1700000000.123}``.
- senml:  topic ``sensors/senml`` (configurable), RFC 8428 pack of up to K readings of any
  sensors in time order, e.g.
  ``[{"bn":"plant1.","bt":1700000000,"n":"s00007","t":0.123,"v":21.5},{"n":"s00008","t":0.5,"v":3.2}]``
  sensor id = bn + n, ts = bt + t. ``bt`` is the integer second at or below the pack's first
  reading; ``t`` is omitted when 0; ``bn`` is present only when the id prefix is non-empty.
  The prefix is the id's shared start (``--id-prefix``), so bn must itself match
  ``[A-Za-z0-9_.-]+``: use ``plant1.`` rather than ``plant1/``.
"""

from __future__ import annotations

import math
from typing import Iterator, Sequence

FORMATS = ("number", "json", "senml")
DEFAULT_TOPIC_TEMPLATE = "sensors/{sensor_id}"
DEFAULT_SENML_TOPIC = "sensors/senml"

Message = tuple[str, bytes, int]  # topic, payload, readings carried


def encode_number(value: float) -> bytes:
    return repr(value).encode()


def encode_json(value: float, ts: float) -> bytes:
    return f'{{"value": {value!r}, "ts": {ts!r}}}'.encode()


def encode_senml(names: Sequence[str], ts: Sequence[float], values: Sequence[float], base_name: str = "") -> bytes:
    """One SenML pack; ``names`` are the ids without ``base_name``."""
    bt = math.floor(min(ts))
    base = (f'"bn":"{base_name}",' if base_name else "") + f'"bt":{bt},'
    records = []
    for name, t, v in zip(names, ts, values):
        rel = round(t - bt, 3)
        t_part = f',"t":{rel!r}' if rel else ""
        records.append(f'{{{base}"n":"{name}"{t_part},"v":{v!r}}}')
        base = ""  # bn/bt only in the first record; they apply to the whole pack
    return ("[" + ",".join(records) + "]").encode()


def topic_for(template: str, sensor_id: str) -> str:
    return template.format(sensor_id=sensor_id)


def validate_topic_template(template: str) -> None:
    if "{sensor_id}" not in template:
        raise ValueError("topic template must contain {sensor_id}")
    if not is_topic_name(template):
        raise ValueError("topic template must not contain MQTT wildcards")


def is_topic_name(topic: str) -> bool:
    """A topic one may publish to: not a filter (no + or # wildcard)."""
    return not any(c in topic for c in "#+")


class Encoder:
    """Turns readings (sensor index, ts, value arrays) into MQTT messages.

    Topics are built once per sensor: the per-reading work is a lookup, a float repr and a
    small f-string, which is what lets one Python thread publish >10k messages/s.
    SenML packs are accumulated across ticks until ``senml_batch`` readings are pending;
    ``flush()`` emits a partial pack (the caller does that on a timer and at the end).
    """

    def __init__(
        self,
        fmt: str,
        sensor_ids: Sequence[str],
        *,
        topic_template: str = DEFAULT_TOPIC_TEMPLATE,
        senml_topic: str = DEFAULT_SENML_TOPIC,
        senml_batch: int = 100,
        base_name: str = "",
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
        if senml_batch < 1:
            raise ValueError("senml batch must be >= 1")
        validate_topic_template(topic_template)
        if base_name and not all(s.startswith(base_name) for s in sensor_ids):
            raise ValueError("every sensor id must start with the SenML base name")
        self.fmt = fmt
        self.senml_topic = senml_topic
        self.senml_batch = senml_batch
        self.base_name = base_name
        self._topics = [topic_for(topic_template, s) for s in sensor_ids] if fmt != "senml" else []
        self._names = [s[len(base_name):] for s in sensor_ids] if fmt == "senml" else []
        self._pending: tuple[list[str], list[float], list[float]] = ([], [], [])

    @property
    def pending(self) -> int:
        return len(self._pending[0])

    def messages(self, sensor: Sequence[int], ts: Sequence[float], value: Sequence[float]) -> Iterator[Message]:
        """Messages for these readings (inputs may be numpy arrays)."""
        sensor_l, ts_l, value_l = _as_lists(sensor, ts, value)
        if self.fmt == "number":
            topics = self._topics
            for i, v in zip(sensor_l, value_l):
                yield topics[i], repr(v).encode(), 1
        elif self.fmt == "json":
            topics = self._topics
            for i, t, v in zip(sensor_l, ts_l, value_l):
                yield topics[i], f'{{"value": {v!r}, "ts": {t!r}}}'.encode(), 1
        else:
            yield from self._senml(sensor_l, ts_l, value_l)

    def flush(self) -> Iterator[Message]:
        """The pending partial SenML pack, if any."""
        names, ts, values = self._pending
        if names:
            self._pending = ([], [], [])
            yield self.senml_topic, encode_senml(names, ts, values, self.base_name), len(names)

    def _senml(self, sensor: list[int], ts: list[float], value: list[float]) -> Iterator[Message]:
        names, p_ts, p_values = self._pending
        names.extend(self._names[i] for i in sensor)
        p_ts.extend(ts)
        p_values.extend(value)
        k = self.senml_batch
        full = len(names) // k * k
        for start in range(0, full, k):
            stop = start + k
            payload = encode_senml(names[start:stop], p_ts[start:stop], p_values[start:stop], self.base_name)
            yield self.senml_topic, payload, k
        self._pending = (names[full:], p_ts[full:], p_values[full:])


def _as_lists(*arrays) -> list[list]:
    # .tolist() turns numpy scalars into Python floats/ints in C, so repr() is the shortest
    # round-trip form and the loops above touch no numpy objects.
    return [a.tolist() if hasattr(a, "tolist") else list(a) for a in arrays]
