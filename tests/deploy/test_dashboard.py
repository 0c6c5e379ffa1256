"""The Grafana dashboard: structure (ids, datasource, variables) and, end to end, every
panel's query evaluated by a real Prometheus scraping a real daemon fed by the simulator."""
from __future__ import annotations

import json
import math
import re
import warnings

import pytest
import yaml

from support import wait_until

from .helpers import DEPLOY, Prometheus, start_daemon, start_simulator

GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "anomalyd.json"
BUILTIN_VARIABLES = {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms",
                     "__from", "__to", "__all", "__dashboard", "__org", "__user", "__name", "__timeFilter"}
# How the test stands in for Grafana: the variables become concrete values. Grafana makes
# $__rate_interval at least 4 scrape intervals; the test's Prometheus scrapes every second.
SUBSTITUTIONS = {"$__rate_interval": "10s", "$__interval": "1s", "$__range": "1h", "$instance": ".*"}
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def query_panels(board: dict) -> list[dict]:
    panels = []
    for panel in board["panels"]:
        panels += [panel, *panel.get("panels", [])]  # collapsed rows hold their panels
    return [p for p in panels if p.get("targets")]


def expressions(board: dict) -> list[tuple[str, str]]:
    """(panel title / refId, expr) of every query."""
    return [(f"{p['title']} / {t['refId']}", t["expr"]) for p in query_panels(board) for t in p["targets"]]


def concrete(expr: str) -> str:
    for variable, value in SUBSTITUTIONS.items():
        expr = expr.replace(variable, value)
    return expr


# -- structure -------------------------------------------------------------------------------------

def test_panel_ids_unique_and_layout_valid():
    board = dashboard()
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    assert board["uid"] and board["title"]
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        refs = [t["refId"] for t in panel.get("targets", [])]
        assert len(refs) == len(set(refs)), f"duplicate refId in {panel['title']}"


def test_datasource_uid_matches_provisioning():
    provisioned = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "anomalyd.yaml").read_text())
    uids = {source["uid"] for source in provisioned["datasources"]}
    board = dashboard()
    used = set()
    for panel in query_panels(board):
        used.add(panel["datasource"]["uid"])
        used |= {t["datasource"]["uid"] for t in panel["targets"]}
    used |= {v["datasource"]["uid"] for v in board["templating"]["list"] if "datasource" in v}
    assert used and used <= uids, f"dashboard uses {used}, provisioning defines {uids}"
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "anomalyd.yaml").read_text())
    assert provider["providers"][0]["options"]["path"]


def test_no_dangling_template_variables():
    board = dashboard()
    defined = {v["name"] for v in board["templating"]["list"]}
    texts = [expr for _, expr in expressions(board)]
    texts += [p.get("title", "") for p in board["panels"]]
    texts += [t.get("legendFormat", "") for p in query_panels(board) for t in p["targets"]]
    used = {next(filter(None, m.groups())) for text in texts for m in VARIABLE.finditer(text)}
    assert used - defined - BUILTIN_VARIABLES == set()
    assert defined <= used, "template variables that no query uses"
    # every variable the test substitutes is one the dashboard really has (or a builtin)
    assert {k.lstrip("$") for k in SUBSTITUTIONS} <= defined | BUILTIN_VARIABLES


def test_dashboard_covers_the_operational_questions():
    """The panels the operations issue asks for are there, by the metric they read."""
    text = " ".join(expr for _, expr in expressions(dashboard()))
    for needle in ("anomalyd_readings_received_total", "anomalyd_anomalies_total", "anomalyd_active_sensors",
                   "anomalyd_slot_occupancy_ratio", "instance_quantile:anomalyd_tick_duration_seconds",
                   "instance_quantile:anomalyd_reading_to_publish_seconds", "anomalyd_readings_rejected_total",
                   "anomalyd_resets_total", "anomalyd_checkpoint_last_success_timestamp_seconds",
                   "anomalyd_checkpoint_duration_seconds_bucket", "anomalyd_mqtt_connected",
                   "anomalyd_sensor_score", "process_cpu_seconds_total", "process_resident_memory_bytes"):
        assert needle in text, needle


# -- end to end ------------------------------------------------------------------------------------

def test_every_panel_query_returns_data(tmp_path, mosquitto):
    """Daemon + simulator + Prometheus (with the shipped rules); then every panel's expr through
    /api/v1/query must parse and return data. Checkpoint panels may be empty only while the
    daemon has written no checkpoint at all (reported as a warning)."""
    daemon, metrics_url = start_daemon(tmp_path, mosquitto.url)
    target = metrics_url.split("/")[2]
    prometheus = Prometheus(tmp_path, target)
    simulator = start_simulator(tmp_path, mosquitto.url, "--sensors", "50", "--hz", "5", "--anomaly-rate", "3600",
                                "--warmup", "0", "--magnitude", "8")
    try:
        queries = [(name, concrete(expr)) for name, expr in expressions(dashboard())]
        readings_panel = dict(expressions(dashboard()))["Readings per second / A"]

        def no_checkpoint_yet() -> bool:
            answer = prometheus.query("max(anomalyd_checkpoint_duration_seconds_count)")
            result = answer.get("data", {}).get("result", [])
            return not result or float(result[0]["value"][1]) == 0

        def missing() -> list[str]:
            assert daemon.alive(), f"daemon died:\n{daemon.log()[-3000:]}"
            assert simulator.alive(), f"simulator died:\n{simulator.log()[-3000:]}"
            gaps = []
            for name, expr in queries:
                answer = prometheus.query(expr)
                assert answer["status"] == "success", f"{name}: {expr}\n{answer.get('error')}"
                values = [float(sample["value"][1]) for sample in answer["data"]["result"]]
                if not any(math.isfinite(v) for v in values):
                    gaps.append(name)
            return gaps

        def value(expr: str) -> float:
            result = prometheus.query(expr)["data"]["result"]
            return float(result[0]["value"][1]) if result else math.nan

        def settled() -> bool:
            gaps = missing()
            only_checkpoints = all("heckpoint" in name for name in gaps) and no_checkpoint_yet()
            # 50 sensors x 5 Hz = 250 readings/s, measured as the "Readings per second" panel does.
            return (value("sum(anomalyd_anomalies_total)") > 0
                    and value(concrete(readings_panel)) > 125
                    and value("sum(anomalyd_active_sensors)") == 50
                    and (not gaps or only_checkpoints))

        wait_until(settled, 90, 0.5, message=lambda: f"every panel to return data; still empty: {missing()}")
        gaps = missing()
        if gaps:
            warnings.warn(f"the daemon wrote no checkpoint during the test, so these panels had no values: {gaps}")

        # The numbers mean what the panels say.
        assert value("max(anomalyd_mqtt_connected)") == 1
        assert 0 < value('max(instance_quantile:anomalyd_reading_to_publish_seconds:rate1m{quantile="0.99"})') < 30
        assert 0 < value('max(instance_quantile:anomalyd_tick_duration_seconds:rate1m{quantile="0.99"})') < 2.5
        assert value("max(anomalyd_slot_occupancy_ratio)") == pytest.approx(50 / 1000)
        top = prometheus.query(concrete(next(e for n, e in expressions(dashboard()) if n.startswith("Top anomalous"))))
        assert 0 < len(top["data"]["result"]) <= 10
    finally:
        simulator.stop(10)
        prometheus.stop()
        assert daemon.stop() == 0, daemon.log()[-3000:]
