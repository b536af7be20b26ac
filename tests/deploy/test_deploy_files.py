"""The deployment files, proven by the real tools available here (no Docker engine runs on this machine)."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys

import pytest
import yaml

from tests.conftest import ROOT, child_env

DEPLOY = ROOT / "deploy"
EXPORTED = {
    "nodedrop_queue_waiting", "nodedrop_queue_active", "nodedrop_queue_completed", "nodedrop_queue_failed",
    "nodedrop_queue_scheduled", "nodedrop_queue_oldest_waiting_age_seconds", "nodedrop_executions_completed_total",
    "nodedrop_executions_failed_total", "nodedrop_executions_retried_total", "nodedrop_executions_cancelled_total",
    "nodedrop_execution_duration_seconds_bucket", "nodedrop_execution_duration_seconds_sum",
    "nodedrop_execution_duration_seconds_count", "nodedrop_workers", "nodedrop_worker_capacity",
    "nodedrop_worker_pools", "nodedrop_worker_utilization_ratio", "nodedrop_workers_desired", "nodedrop_redis_up",
    "nodedrop_redis_memory_used_bytes", "nodedrop_exporter_scrape_duration_seconds", "nodedrop_schedules",
    "nodedrop_schedule_lag_seconds", "nodedrop_build_info", "nodedrop_workers_desired_by_depth",
    "nodedrop_queue_wait_seconds_bucket", "nodedrop_queue_wait_seconds_sum", "nodedrop_queue_wait_seconds_count",
    "nodedrop_queue_wait_target_seconds",
    "nodedrop_redis_maxmemory_bytes", "nodedrop_redis_memory_per_execution_bytes", "nodedrop_executions_retained",
}
COMPOSE = shutil.which("docker-compose")
PROMTOOL = shutil.which("promtool")


def compose_config(*files: str) -> dict:
    args = [COMPOSE]
    for name in files:
        args += ["-f", name]
    done = subprocess.run([*args, "config"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


@pytest.mark.skipif(COMPOSE is None, reason="docker-compose is not installed (.ci/run installs it)")
def test_compose_files_alone_and_combined():
    base = compose_config("docker-compose.yml")
    compose_config("docker-compose.workers.yml")
    combined = compose_config("docker-compose.yml", "docker-compose.workers.yml")

    redis = " ".join(map(str, base["services"]["redis"]["command"]))
    assert "--maxmemory-policy noeviction" in redis and "--appendonly yes" in redis
    assert "--workers 5" in _command(base["services"]["nodedrop"])
    assert {"redis", "nodedrop", "nodedrop-scheduler", "nodedrop-exporter", "prometheus", "grafana"} <= set(
        base["services"])
    assert _command(base["services"]["nodedrop-scheduler"]) == "nodedrop-rq scheduler"

    worker = combined["services"]["nodedrop-worker"]
    assert "ports" not in worker and "container_name" not in worker
    assert _command(worker) == "nodedrop-rq worker"
    # The pool's health port, unpublished (any number of containers), and the health check asks it.
    assert worker["environment"]["NODEDROP_WORKER_HEALTH_PORT"] == "9728"
    assert worker["healthcheck"]["test"][-1] == "worker-http"
    assert _seconds(worker["stop_grace_period"]) > int(worker["environment"]["EXECUTION_JOB_TIMEOUT"])
    assert "--workers 0" in _command(combined["services"]["nodedrop"])
    for service in combined["services"].values():
        assert "container_name" not in service


def _command(service: dict) -> str:
    command = service["command"]
    return command if isinstance(command, str) else " ".join(command)


def test_compose_environments_agree():
    """YAML anchors do not cross files: the worker's settings must match the main service's."""
    base = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    workers = yaml.safe_load((ROOT / "docker-compose.workers.yml").read_text())
    assert base["x-nodedrop-environment"] == workers["x-nodedrop-environment"]


def _seconds(value: str | int) -> int:
    match = re.fullmatch(r"(\d+)(s|m)?", str(value))
    assert match, value
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (.ci/run installs prometheus)")
def test_prometheus_config_rules_and_rule_unit_tests():
    prometheus = DEPLOY / "prometheus"
    for args in (["check", "config", "prometheus.yml"], ["check", "rules", "alerts.yml"],
                 ["test", "rules", "alerts.test.yml"]):
        done = subprocess.run([PROMTOOL, *args], cwd=prometheus, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_summary_and_a_runbook():
    rules = [rule for group in yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
             for rule in group["rules"]]
    names = {rule["alert"] for rule in rules}
    assert names == {"NodedropRedisDown", "NodedropNoLiveWorkers", "NodedropBacklogGrowing",
                     "NodedropOldestWaitingTooOld", "NodedropFailureRatioHigh", "NodedropWorkersSaturated",
                     "NodedropRedisMemoryHigh"}
    for rule in rules:
        assert rule["annotations"]["summary"] and rule["annotations"]["runbook"]
        assert _metric_names(rule["expr"]) <= EXPORTED | {"up"}


def test_alert_rule_tests_use_scrape_labels_and_cover_every_alert():
    """promtool tests on bare series pass rules that never fire on real ones (a join of series with and
    without job/instance matches nothing): every input series must carry the labels a scrape adds, and
    every alert must be shown both firing and staying quiet."""
    alerts = {rule["alert"] for group in yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
              for rule in group["rules"]}
    tests = yaml.safe_load((DEPLOY / "prometheus" / "alerts.test.yml").read_text())["tests"]
    fired, quiet = set(), set()
    for case in tests:
        for series in case["input_series"]:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', series["series"]))
            assert labels.get("job") == "nodedrop" and labels.get("instance"), series["series"]
        for check in case["alert_rule_test"]:
            (fired if check["exp_alerts"] else quiet).add(check["alertname"])
            for alert in check["exp_alerts"]:
                # An alert may keep job/instance (it names the exporter) but never carries half of them.
                assert ("job" in alert["exp_labels"]) == ("instance" in alert["exp_labels"])
    assert fired == alerts and quiet == alerts


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(nodedrop_[a-z_]+|up)\b(?=\s*[{\[)]|\s*$|\s*[=<>])", expr))


def test_grafana_dashboard_uses_exported_metrics_and_a_datasource_variable():
    text = (DEPLOY / "grafana" / "dashboards" / "nodedrop.json").read_text()
    assert "__inputs" not in text and "${DS_" not in text
    dashboard = json.loads(text)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    # A datasource variable: imported into another Grafana, the panels use its Prometheus (the default one
    # until the user picks another), not a uid that only the provisioned Grafana has.
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert not variables["datasource"].get("current")
    selected = {"type": "prometheus", "uid": "${datasource}"}
    assert variables["queue"]["datasource"] == selected
    used = set()
    for panel in dashboard["panels"]:
        assert panel["datasource"] == selected, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == selected, panel["title"]
            used |= set(re.findall(r"nodedrop_[a-z_]+", target["expr"]))
    assert used <= EXPORTED, used - EXPORTED
    assert {"nodedrop_queue_waiting", "nodedrop_executions_completed_total", "nodedrop_workers_desired",
            "nodedrop_workers_desired_by_depth", "nodedrop_queue_wait_seconds_bucket",
            "nodedrop_queue_wait_target_seconds",
            "nodedrop_worker_pools", "nodedrop_execution_duration_seconds_bucket", "nodedrop_redis_up",
            "nodedrop_worker_utilization_ratio", "nodedrop_build_info"} <= used
    provider = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "nodedrop.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"


def _is_ratio(expr: str) -> bool:
    return "_ratio" in expr or " / " in expr


def test_grafana_ratios_never_share_an_axis_with_counts():
    """A 0-1 ratio drawn on the axis of counts in the hundreds is a flat line at the bottom."""
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "nodedrop.json").read_text())
    ratio_panels = 0
    for panel in dashboard["panels"]:
        ratios = {_is_ratio(target["expr"]) for target in panel["targets"]}
        assert len(ratios) == 1, f"{panel['title']!r} mixes ratios and counts"
        defaults = panel["fieldConfig"]["defaults"]
        if ratios == {True}:
            ratio_panels += 1
            assert (defaults.get("unit"), defaults.get("min"), defaults.get("max")) == ("percentunit", 0, 1), \
                panel["title"]
        else:
            assert defaults.get("unit") != "percentunit", panel["title"]
    assert ratio_panels == 2  # failure ratio, worker utilisation


def test_dashboard_and_alerts_do_not_add_up_exporter_replicas():
    """Each exporter replica reports the same global numbers: an aggregation across them must be max (or
    min), never sum, before anything else. tests/deploy/test_prometheus_integration.py checks the numbers
    with two real replicas; this catches it without Prometheus."""
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "nodedrop.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [r["expr"] for g in yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
              for r in g["rules"]]
    for expr in exprs:
        # sum directly over a metric (or a rate of one) would count every replica.
        assert not re.search(r"sum(\s+by\s*\([^)]*\))?\s*\(\s*(rate\(|deriv\()?nodedrop_", expr), expr


def test_exported_metric_list_matches_a_real_scrape(redis_url):
    """EXPORTED above (used to check alerts and the dashboard) is what the exporter really publishes."""
    from prometheus_client.parser import text_string_to_metric_families

    from exporter.server import build_app
    from nodedrop_rq.connection import redis_from_settings
    from nodedrop_rq.settings import Settings

    settings = Settings(redis_url=redis_url)
    app = build_app(redis_from_settings(settings, socket_timeout=2), settings)
    body = b"".join(app({"PATH_INFO": "/metrics", "REQUEST_METHOD": "GET", "QUERY_STRING": ""},
                        lambda *args: None)).decode()
    names = {s.name for f in text_string_to_metric_families(body) for s in f.samples if not s.name.endswith("_created")}
    assert names == EXPORTED


def test_dockerfile_is_slim_non_root_and_health_checked():
    text = (DEPLOY / "Dockerfile").read_text()
    final = text[text.rindex("\nFROM "):]
    assert re.search(r"^USER (?!root|0)\S+", final, re.M)
    assert "HEALTHCHECK" in final and "STOPSIGNAL SIGTERM" in final
    assert not re.search(r"build-essential|gcc|python3-dev", final)
    assert "COPY --from=builder /opt/venv /opt/venv" in final


def test_healthcheck_script_modes(redis_url, start_pool):
    script = [sys.executable, str(DEPLOY / "healthcheck.py")]
    unhealthy = subprocess.run([*script, "worker"], env=child_env(redis_url), capture_output=True, text=True,
                               timeout=30)
    assert unhealthy.returncode == 1 and f"no worker on {socket.gethostname()}" in unhealthy.stdout
    start_pool(concurrency=1)
    from tests.conftest import wait_for

    def healthy() -> bool:
        done = subprocess.run([*script, "worker"], env=child_env(redis_url), capture_output=True, text=True,
                              timeout=30)
        return done.returncode == 0
    wait_for(healthy, 20, interval=0.5, what="the worker health check to pass")
    bad = subprocess.run([*script, "nonsense"], env=child_env(redis_url), capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2
