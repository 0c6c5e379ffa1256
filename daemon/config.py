"""Configuration: YAML into frozen dataclasses, validated at start-up.

Every key has a documented default, so an empty file (or none) is a valid configuration.
Unknown keys, wrong types and impossible values are errors that name the key and the line;
the daemon fails fast at start-up instead of on the first message. Command-line flags are
applied on top with ``with_overrides``.
"""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml

from anomalyd.daemon.scoring import ScoringSettings


class ConfigError(Exception):
    """A configuration problem, with the key path and line where known."""


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never printed or logged

    @classmethod
    def parse(cls, url: str) -> "BrokerAddress":
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"broker must look like mqtt://[user:pass@]host:port or mqtts://..., got {url!r}")
        try:
            port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        except ValueError as exc:
            raise ValueError(f"bad port in broker address: {exc}") from None
        return cls(parts.hostname, port, parts.scheme == "mqtts",
                   unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None)

    def redacted(self) -> str:
        user = f"{self.username}:***@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


@dataclass(frozen=True)
class MqttConfig:
    broker: str = "mqtt://127.0.0.1:1883"
    client_id: str = "anomalyd"
    username: str | None = None
    password_file: str | None = None  # first line is the password
    password_env: str = "ANOMALYD_MQTT_PASSWORD"  # read when no password_file is set
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_insecure: bool = False  # skip hostname verification (test setups only)
    keepalive: int = 30
    topics: tuple[str, ...] = ("sensors/+",)
    qos: int = 1
    sensor_pattern: str = r"^(?:.*/)?(?P<sensor>[^/]+)$"  # applied to the topic; default: last level
    score_topic: str = "anomalyd/scores/{sensor}"
    score_qos: int = 1
    batch_scores: bool = False  # one JSON array per tick on batch_topic instead of one message per score
    batch_topic: str = "anomalyd/scores"
    status_topic: str = "anomalyd/status"
    control_topic: str = "anomalyd/control/reset/+"
    max_queued_messages: int = 50_000  # outgoing messages held by the client before back-pressure
    max_inflight_messages: int = 1000
    reconnect_min_delay: float = 1.0
    reconnect_max_delay: float = 60.0


@dataclass(frozen=True)
class InputConfig:
    max_payload_bytes: int = 65_536
    max_readings_per_message: int = 10_000
    sensor_id_pattern: str = r"^[A-Za-z0-9_.:-]{1,128}$"
    min_value: float = -1e15
    max_value: float = 1e15
    max_future_seconds: float = 300.0
    queue_limit: int = 500_000  # readings waiting for the worker; beyond it intake waits


@dataclass(frozen=True)
class DetectorConfig:
    model: str | None = None  # artifact directory; null = the model shipped with the package
    backend: str = "litert"
    batch_size: int = 1024
    max_sensors: int = 100_000
    max_gap: float = 86_400.0
    idle_timeout: float = 7 * 86_400.0
    tick_interval: float = 0.025  # seconds a reading may wait for companions before a tick


@dataclass(frozen=True)
class MetricsConfig:
    address: str = "127.0.0.1:9808"
    top_k: int = 20  # per-sensor score gauge for the k highest-scoring sensors
    sensors: tuple[str, ...] = ()  # ... and for these sensors always


@dataclass(frozen=True)
class StateConfig:
    directory: str = "state"
    checkpoint_interval: float = 60.0
    keep: int = 3
    journal_fsync_interval: float = 1.0  # seconds between group fsyncs of the journal
    checkpoint_write_rate: float = 0.0  # bytes/s a checkpoint may write (0: as fast as the disk)


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "INFO"
    format: str = "text"  # or json


@dataclass(frozen=True)
class Config:
    mqtt: MqttConfig = MqttConfig()
    input: InputConfig = InputConfig()
    detector: DetectorConfig = DetectorConfig()
    scoring: ScoringSettings = ScoringSettings()
    metrics: MetricsConfig = MetricsConfig()
    state: StateConfig = StateConfig()
    logging: LoggingConfig = LoggingConfig()
    shutdown_timeout: float = 30.0

    def broker(self) -> BrokerAddress:
        return BrokerAddress.parse(self.mqtt.broker)


# -- loading --------------------------------------------------------------------------------

def load(path: str | Path | None) -> Config:
    """The configuration in ``path`` (None: all defaults), validated."""
    if path is None:
        return validate(Config())
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    return parse(text, str(path))


def parse(text: str, source: str = "<config>") -> Config:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{source}: malformed YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if node is None:
        return validate(Config())
    return validate(_build(Config, node, source, ""))


def _build(cls, node: yaml.Node, source: str, path: str):
    if not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"{source}: line {node.start_mark.line + 1}: {path or 'the file'} must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values = {}
    for key_node, value_node in node.value:
        key = key_node.value
        where = f"{source}: line {key_node.start_mark.line + 1}: {path}{key}"
        if key not in fields:
            raise ConfigError(f"{where}: unknown key (known: {', '.join(sorted(fields))})")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            values[key] = _build(hint, value_node, source, f"{path}{key}.")
        else:
            values[key] = _convert(hint, yaml.SafeLoader(""), value_node, where)
    return cls(**values)


def _convert(hint, loader: yaml.SafeLoader, node: yaml.Node, where: str):
    value = loader.construct_object(node, deep=True)
    return coerce(hint, value, where)


def coerce(hint, value, where: str):
    """Check ``value`` against a type hint; ints are accepted where floats are expected."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        hint = next(option for option in options if option is not type(None))
        origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {_kind(value)}")
        item = typing.get_args(hint)[0]
        return tuple(coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and (type(value) is not hint):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {_kind(value)} {value!r}")
    return value


def _kind(value) -> str:
    return "null" if value is None else type(value).__name__


# -- validation of values -------------------------------------------------------------------

def validate(config: Config) -> Config:
    """Semantic checks beyond types; raises ConfigError naming the key."""
    _check(lambda: config.broker(), "mqtt.broker")
    _positive(config, "detector.batch_size", "detector.max_sensors", "detector.tick_interval",
              "detector.max_gap", "detector.idle_timeout", "input.max_payload_bytes",
              "input.max_readings_per_message", "input.queue_limit", "mqtt.max_queued_messages",
              "mqtt.max_inflight_messages", "mqtt.keepalive", "state.checkpoint_interval", "state.keep",
              "state.journal_fsync_interval",
              "shutdown_timeout", "scoring.short_window", "scoring.error_window", "scoring.likelihood_window",
              "scoring.step_readings", "scoring.trend_window", "scoring.floor_spread",
              "scoring.typical_spread_cap", "scoring.jump_min", "scoring.spike_flat_min", "scoring.miss_tail",
              "scoring.miss_tail_rate_max")
    for key in ("mqtt.qos", "mqtt.score_qos"):
        if _get(config, key) not in (0, 1, 2):
            raise ConfigError(f"{key}: must be 0, 1 or 2")
    if not config.mqtt.topics:
        raise ConfigError("mqtt.topics: at least one topic filter is needed")
    pattern = _check(lambda: re.compile(config.mqtt.sensor_pattern), "mqtt.sensor_pattern")
    if "sensor" not in pattern.groupindex:
        raise ConfigError("mqtt.sensor_pattern: needs a named group (?P<sensor>...)")
    _check(lambda: re.compile(config.input.sensor_id_pattern), "input.sensor_id_pattern")
    if not config.mqtt.control_topic.endswith("/+") or "+" in config.mqtt.control_topic[:-1] \
            or "#" in config.mqtt.control_topic:
        raise ConfigError("mqtt.control_topic: must be a topic prefix followed by /+ (the sensor id)")
    if "{sensor}" not in config.mqtt.score_topic:
        raise ConfigError("mqtt.score_topic: must contain {sensor}")
    if config.detector.backend not in ("litert", "tf", "xla", "last_value"):
        raise ConfigError("detector.backend: one of litert, tf, xla, last_value")
    if not 0.0 <= config.scoring.threshold <= 1.0:
        raise ConfigError("scoring.threshold: must be between 0 and 1")
    if config.scoring.warmup < 0 or config.scoring.squash_high <= config.scoring.squash_low:
        raise ConfigError("scoring: warmup must be >= 0 and squash_high > squash_low")
    # 0 turns each of these off (the trend fallback, known jumps, the flat-sensor rules, the
    # record bypass, the silence, flatline and calibrated miss rules, the fast yardstick).
    _non_negative(config, "scoring.trend_margin", "scoring.jump_tolerance", "scoring.jump_hold",
                  "scoring.spatial_noise_range", "scoring.spatial_noise_error", "scoring.spike_record_bypass",
                  "scoring.gap_factor", "scoring.stuck_readings", "scoring.miss_min",
                  "scoring.miss_fast_window")
    if config.scoring.stuck_readings == 1:
        raise ConfigError("scoring.stuck_readings: 1 would call every reading a flatline; use 2 or more (0: off)")
    _check_likelihood_floors(config.scoring)
    for key in ("scoring.jump_refine", "scoring.smooth_level_gain", "scoring.smooth_slope_gain",
                "scoring.smooth_margin"):
        if not 0.0 <= _get(config, key) <= 1.0:
            raise ConfigError(f"{key}: must be between 0 and 1")
    if config.logging.level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError("logging.level: one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    if config.logging.format not in ("text", "json"):
        raise ConfigError("logging.format: text or json")
    _check(lambda: parse_address(config.metrics.address), "metrics.address")
    if config.input.min_value >= config.input.max_value:
        raise ConfigError("input.min_value: must be below input.max_value")
    return config


def _check_likelihood_floors(scoring) -> None:
    """The likelihood's floors: a mean in (0, 1) and variances in (0, 0.25), the largest a mean of
    values in [0, 1] can have; the settled variance floor at least the one before it."""
    if not 0.0 < scoring.likelihood_mean_floor < 1.0:
        raise ConfigError("scoring.likelihood_mean_floor: must be between 0 and 1 (exclusive)")
    for key in ("likelihood_var_floor", "likelihood_settled_var_floor"):
        if not 0.0 < getattr(scoring, key) < 0.25:
            raise ConfigError(f"scoring.{key}: must be between 0 and 0.25 (exclusive)")
    if scoring.likelihood_settled_var_floor < scoring.likelihood_var_floor:
        raise ConfigError("scoring.likelihood_settled_var_floor: must be at least scoring.likelihood_var_floor")


def _get(config, key: str):
    for part in key.split("."):
        config = getattr(config, part)
    return config


def _positive(config: Config, *keys: str) -> None:
    for key in keys:
        if not _get(config, key) > 0:
            raise ConfigError(f"{key}: must be positive")


def _non_negative(config: Config, *keys: str) -> None:
    for key in keys:
        if not _get(config, key) >= 0:
            raise ConfigError(f"{key}: must be >= 0 (0 turns it off)")


def _check(thunk, key: str):
    try:
        return thunk()
    except (ValueError, re.error) as exc:
        raise ConfigError(f"{key}: {exc}") from None


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 as ``[::1]:PORT``) for the metrics endpoint."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def with_overrides(config: Config, **flags) -> Config:
    """Apply command-line flags (None = not given) on top of the file's values."""
    mapping = {"broker": ("mqtt", "broker"), "state_dir": ("state", "directory"),
               "metrics_addr": ("metrics", "address"), "log_level": ("logging", "level"),
               "log_format": ("logging", "format")}
    for flag, value in flags.items():
        if value is None:
            continue
        section, key = mapping[flag]
        config = dataclasses.replace(config, **{section: dataclasses.replace(getattr(config, section), **{key: value})})
    return validate(config)


def resolve_password(mqtt: MqttConfig, broker: BrokerAddress, environ: dict) -> str | None:
    """Password from the file, else the environment, else the broker URL."""
    if mqtt.password_file:
        try:
            return Path(mqtt.password_file).read_text().splitlines()[0]
        except (OSError, IndexError) as exc:
            raise ConfigError(f"mqtt.password_file: cannot read a password from {mqtt.password_file}: {exc}") from None
    return environ.get(mqtt.password_env) or broker.password


def schema_rows(cls=Config, prefix: str = "") -> list[tuple[str, str, str]]:
    """(key, type, default) for every key: the README's configuration reference is checked
    against this."""
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            rows.extend(schema_rows(hint, f"{prefix}{f.name}."))
        else:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            rows.append((f"{prefix}{f.name}", _type_name(hint), repr(default)))
    return rows


def _type_name(hint) -> str:
    text = str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")
    return text.replace(" | ", " or ")
