"""The shipped Prometheus configuration and rules, checked with Debian's promtool: the
config and rules are valid, every alert's unit tests pass, and every alert has both a case
where it fires and one where it stays silent."""
from __future__ import annotations

import subprocess

import yaml

from .helpers import PROMETHEUS_DIR, PROMTOOL, require_tool

RULES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
ALERT_TESTS = PROMETHEUS_DIR / "tests" / "anomalyd-alerts.test.yml"


def promtool(*args: str) -> subprocess.CompletedProcess:
    binary = require_tool(PROMTOOL, "prometheus")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120)


def alert_rules() -> list[dict]:
    rules = []
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules += [rule for rule in group["rules"] if "alert" in rule]
    return rules


def test_config_is_valid():
    result = promtool("check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    # The config loads both rule files (check config follows rule_files).
    assert result.stdout.count("SUCCESS") >= 3, result.stdout


def test_rules_are_valid():
    result = promtool("check", "rules", *map(str, RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_unit_tests_pass():
    result = promtool("test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_and_a_silent_case():
    names = {rule["alert"] for rule in alert_rules()}
    fires, silent = set(), set()
    for case in yaml.safe_load(ALERT_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else silent).add(check["alertname"])
    assert names - fires == set(), "alerts without a test where they fire"
    assert names - silent == set(), "alerts without a test where they stay silent"
    assert (fires | silent) - names == set(), "tests for alerts that do not exist"


def test_required_alerts_exist_with_severity_and_text():
    rules = {rule["alert"]: rule for rule in alert_rules()}
    required = {"AnomalydDown", "AnomalydMqttDisconnected", "AnomalydNoReadings", "AnomalydRejectedReadingsHigh",
                "AnomalydAnomalyRateSpike", "AnomalydCheckpointStale", "AnomalydCheckpointFailing",
                "AnomalydTickLatencyHigh", "AnomalydSensorCapacityNearlyFull"}
    assert required <= rules.keys()
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert {"summary", "description"} <= rule["annotations"].keys(), name
    # The brief's metrics are the ones actually watched.
    text = "\n".join(path.read_text() for path in RULES)
    for metric in ("anomalyd_checkpoint_last_success_timestamp_seconds", "anomalyd_checkpoint_failing",
                   "anomalyd_checkpoint_failures_total", "anomalyd_tick_duration_seconds_bucket",
                   "anomalyd_slot_occupancy_ratio", "anomalyd_mqtt_connected"):
        assert metric in text, metric


def test_rule_metrics_exist_in_the_daemon():
    """Every anomalyd_* metric the rules read is one the daemon exports (a renamed metric
    would leave an alert silently unable to fire)."""
    import re

    from prometheus_client import CollectorRegistry

    from anomalyd.daemon.metrics import Metrics

    registry = CollectorRegistry()
    Metrics(registry)
    exported = {sample.name for family in registry.collect() for sample in family.samples}
    exported |= {family.name for family in registry.collect()}
    text = "\n".join(path.read_text() for path in RULES)
    # Not preceded or followed by ':' : recorded series (level:metric:operations) are not metrics.
    used = set(re.findall(r"(?<![:\w])((?:anomalyd|process)_[a-z_]+)(?![:\w])", text))
    assert "anomalyd_checkpoint_failing" in used
    assert used - exported == set()
