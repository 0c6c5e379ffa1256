"""Configuration: defaults, validation messages naming key and line, CLI exit codes."""
from __future__ import annotations

import subprocess
import sys

import pytest

from anomalyd.daemon.config import BrokerAddress, Config, ConfigError, load, parse, schema_rows, with_overrides


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "anomalyd.daemon.cli", *args], capture_output=True, text=True,
                          timeout=120)


def test_empty_and_missing_file_mean_defaults():
    assert parse("") == Config() and load(None) == Config()
    assert Config().mqtt.broker == "mqtt://127.0.0.1:1883" and Config().metrics.address == "127.0.0.1:9808"


@pytest.mark.parametrize("text, fragment", [
    ("mqtt:\n  brokr: mqtt://x:1\n", "line 2: mqtt.brokr: unknown key"),
    ("detector:\n  batch_size: many\n", "line 2: detector.batch_size: expected int, got str"),
    ("scoring:\n  threshold: [1]\n", "line 2: scoring.threshold: expected float"),
    ("mqtt:\n  topics: sensors/+\n", "mqtt.topics: expected a list"),
    ("mqtt: [1\n", "malformed YAML at line 2"),
    ("detector:\n  batch_size: 0\n", "detector.batch_size: must be positive"),
    ("scoring:\n  step_readings: 0\n", "scoring.step_readings: must be positive"),
    ("scoring:\n  trend_window: 0\n", "scoring.trend_window: must be positive"),
    ("scoring:\n  typical_spread_cap: 0\n", "scoring.typical_spread_cap: must be positive"),
    ("scoring:\n  trend_margin: -1\n", "scoring.trend_margin: must be >= 0"),
    ("scoring:\n  jump_tolerance: -1\n", "scoring.jump_tolerance: must be >= 0"),
    ("scoring:\n  jump_refine: 1.5\n", "scoring.jump_refine: must be between 0 and 1"),
    ("scoring:\n  smooth_level_gain: 2\n", "scoring.smooth_level_gain: must be between 0 and 1"),
    ("scoring:\n  smooth_slope_gain: -0.1\n", "scoring.smooth_slope_gain: must be between 0 and 1"),
    ("scoring:\n  smooth_margin: -1\n", "scoring.smooth_margin: must be between 0 and 1"),
    ("scoring:\n  smooth_margin: .inf\n", "scoring.smooth_margin: must be between 0 and 1"),
    ("scoring:\n  smooth_level_gain: .nan\n", "scoring.smooth_level_gain: must be between 0 and 1"),
    ("scoring:\n  jump_min: 0\n", "scoring.jump_min: must be positive"),
    ("scoring:\n  spatial_noise_range: -1\n", "scoring.spatial_noise_range: must be >= 0"),
    ("scoring:\n  spike_flat_min: 0\n", "scoring.spike_flat_min: must be positive"),
    ("scoring:\n  spike_record_bypass: -1\n", "scoring.spike_record_bypass: must be >= 0"),
    ("scoring:\n  gap_factor: -2\n", "scoring.gap_factor: must be >= 0"),
    ("scoring:\n  miss_min: -1\n", "scoring.miss_min: must be >= 0"),
    ("scoring:\n  miss_fast_window: -1\n", "scoring.miss_fast_window: must be >= 0"),
    ("scoring:\n  miss_tail_rate_max: 0\n", "scoring.miss_tail_rate_max: must be positive"),
    ("scoring:\n  likelihood_var_floor: 0.0\n", "scoring.likelihood_var_floor: must be between 0 and 0.25"),
    ("scoring:\n  likelihood_settled_var_floor: .nan\n", "scoring.likelihood_settled_var_floor: must be between"),
    ("scoring:\n  likelihood_settled_var_floor: .inf\n", "scoring.likelihood_settled_var_floor: must be between"),
    ("scoring:\n  likelihood_settled_var_floor: 0.0001\n", "must be at least scoring.likelihood_var_floor"),
    ("scoring:\n  likelihood_mean_floor: .nan\n", "scoring.likelihood_mean_floor: must be between 0 and 1"),
    ("scoring:\n  stuck_readings: 1\n", "scoring.stuck_readings: 1 would call every reading a flatline"),
    ("mqtt:\n  broker: http://x\n", "mqtt.broker: broker must look like"),
    ("mqtt:\n  sensor_pattern: '(['\n", "mqtt.sensor_pattern"),
    ("metrics:\n  address: nowhere\n", "metrics.address"),
    ("- 1\n", "must be a mapping"),
])
def test_errors_name_the_key_and_line(text, fragment):
    with pytest.raises(ConfigError, match=None) as info:
        parse(text, "cfg.yaml")
    assert fragment in str(info.value)


def test_overrides_and_broker_url():
    config = with_overrides(Config(), broker="mqtts://u:p%40ss@host:8884", state_dir="/tmp/s", log_level=None)
    broker = config.broker()
    assert (broker.host, broker.port, broker.tls, broker.username, broker.password) == ("host", 8884, True, "u", "p@ss")
    assert "p@ss" not in broker.redacted() and "p@ss" not in repr(broker)
    assert config.state.directory == "/tmp/s"
    assert BrokerAddress.parse("mqtt://h").port == 1883


def test_schema_lists_every_key():
    keys = {row[0] for row in schema_rows()}
    assert {"mqtt.broker", "scoring.threshold", "detector.max_gap", "state.keep", "shutdown_timeout"} <= keys


@pytest.mark.parametrize("content, fragment", [
    ("bogus: 1\n", "bogus: unknown key"),
    ("detector:\n  max_sensors: lots\n", "line 2: detector.max_sensors"),
    ("mqtt:\n  qos: [\n", "malformed YAML"),
])
def test_cli_check_and_run_exit_2_on_bad_config(tmp_path, content, fragment):
    path = tmp_path / "c.yaml"
    path.write_text(content)
    for args in (("config", "check", str(path)), ("run", "--config", str(path))):
        result = cli(*args)
        assert result.returncode == 2 and fragment in result.stderr, result.stderr


def test_cli_missing_file_and_valid_file(tmp_path):
    missing = cli("config", "check", str(tmp_path / "absent.yaml"))
    assert missing.returncode == 2 and "cannot read config file" in missing.stderr
    good = tmp_path / "good.yaml"
    good.write_text("scoring:\n  threshold: 0.7\nmqtt:\n  topics: [a/+, b/#]\n")
    assert cli("config", "check", str(good)).returncode == 0
    assert load(good).mqtt.topics == ("a/+", "b/#")
