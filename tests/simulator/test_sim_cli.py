"""CLI option handling: clear errors at start-up, broker URL parsing, rate arithmetic."""

from __future__ import annotations

import argparse
import time

import pytest

from anomalyd.simulator import cli
from anomalyd.simulator.publisher import BrokerAddress
from support import free_port


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_broker_url_parsing():
    assert BrokerAddress.parse("mqtt://u%40x:p%3Aw@broker.local:1884") == BrokerAddress("broker.local", 1884, "u@x", "p:w")
    assert BrokerAddress.parse("127.0.0.1") == BrokerAddress("127.0.0.1", 1883)
    with pytest.raises(ValueError):
        BrokerAddress.parse("http://x:1")


def test_rate_sets_the_sampling_period():
    config = cli.fleet_config(parse("--sensors", "1000", "--rate", "10000", "--missing", "0.2", "--start-ts", "0"))
    assert config.period == pytest.approx(1000 / (10000 * 0.8))
    config = cli.fleet_config(parse("--sensors", "10", "--hz", "4", "--start-ts", "0"))
    assert config.period == 0.25 and config.start_ts == 0.0
    with pytest.raises(SystemExit):  # argparse: mutually exclusive
        parse("--rate", "5", "--hz", "1")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--anomaly-kinds", "spike,wobble"], "unknown anomaly kinds ['wobble']"),
        (["--families", "sine"], "unknown signal families"),
        (["--sensors", "100001"], "n_sensors must be in 1..100000"),
        (["--jitter", "1.5"], "jitter"),
        (["--id-prefix", "plant1/"], "--id-prefix must match"),
        (["--replay", "/nonexistent/dir"], "replay path not found"),
        (["--time-scale", "0"], "--time-scale must be > 0"),
        (["--time-scale", "nan"], "--time-scale must be > 0"),
        (["--rate", "nan"], "--rate and --hz must be finite and > 0"),
        (["--hz", "inf"], "--rate and --hz must be finite and > 0"),
        (["--duration", "nan"], "--duration must be > 0"),
        (["--magnitude", "nan"], "magnitude must be finite and >= 0, got nan"),
        (["--anomaly-rate", "inf"], "anomaly rate must be finite and >= 0, got inf"),
        (["--start-ts", "nan"], "start_ts must be a finite number"),
        (["--max-inflight", "0"], "--max-inflight and --senml-batch must be >= 1"),
        (["--senml-batch", "0"], "--max-inflight and --senml-batch must be >= 1"),
        (["--topic-template", "plain/topic"], "--topic-template: topic template must contain {sensor_id}"),
        (["--topic-template", "s/{sensor_id}/#"], "must not contain MQTT wildcards"),
        (["--senml-topic", "senml/+"], "--senml-topic must be a topic name"),
        (["--labels-topic", "labels/#"], "--labels-topic must be a topic name"),
        (["--labels", "/nonexistent/dir/labels.jsonl"], "cannot write --labels"),
    ],
)
def test_bad_options_fail_fast_with_a_clear_message(capsys, argv, message):
    assert cli.main(["--broker", f"mqtt://127.0.0.1:{free_port()}", *argv]) == 2
    assert message in capsys.readouterr().err


def test_unreachable_broker_is_an_error_not_a_hang(capsys):
    assert cli.main(["--broker", f"mqtt://127.0.0.1:{free_port()}", "--duration", "1"]) == 1
    assert "cannot reach MQTT broker" in capsys.readouterr().err


def test_fast_runs_end_now_so_no_reading_is_stamped_in_the_future():
    config = cli.fleet_config(parse("--fast", "--duration", "86400"))
    assert abs(time.time() - 86400 - config.start_ts) < 60
    config = cli.fleet_config(parse("--duration", "86400"))  # paced in real time: starts now
    assert abs(time.time() - config.start_ts) < 60
