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
    "nodedrop_schedule_lag_seconds",
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
                     "NodedropOldestWaitingTooOld", "NodedropFailureRatioHigh", "NodedropWorkersSaturated"}
    for rule in rules:
        assert rule["annotations"]["summary"] and rule["annotations"]["runbook"]
        assert _metric_names(rule["expr"]) <= EXPORTED | {"up"}


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(nodedrop_[a-z_]+|up)\b(?=\s*[{\[)]|\s*$|\s*[=<>])", expr))


def test_grafana_dashboard_uses_exported_metrics_and_a_fixed_datasource():
    text = (DEPLOY / "grafana" / "dashboards" / "nodedrop.json").read_text()
    assert "__inputs" not in text and "${DS_" not in text
    dashboard = json.loads(text)
    provisioned = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = provisioned["datasources"][0]["uid"]
    used = set()
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == uid, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid
            used |= set(re.findall(r"nodedrop_[a-z_]+", target["expr"]))
    assert used <= EXPORTED, used - EXPORTED
    assert {"nodedrop_queue_waiting", "nodedrop_executions_completed_total", "nodedrop_workers_desired",
            "nodedrop_worker_pools", "nodedrop_execution_duration_seconds_bucket", "nodedrop_redis_up"} <= used
    provider = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "nodedrop.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"


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


def test_kubernetes_manifests():
    documents = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            documents[(doc["kind"], doc["metadata"]["name"])] = doc
    worker = documents[("Deployment", "nodedrop-worker")]["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in worker["containers"][0].get("env", [])}
    assert worker["terminationGracePeriodSeconds"] > int(env["EXECUTION_JOB_TIMEOUT"])
    assert worker["containers"][0]["args"] == ["nodedrop-rq", "worker"]
    scaled = documents[("ScaledObject", "nodedrop-worker")]["spec"]
    query = scaled["triggers"][0]["metadata"]["query"]
    assert "nodedrop_queue_waiting" in query and "nodedrop_queue_active" in query
    config = documents[("ConfigMap", "nodedrop-config")]["data"]
    assert scaled["triggers"][0]["metadata"]["threshold"] == config["EXECUTION_WORKER_CONCURRENCY"]
    assert config["EXECUTION_JOB_TIMEOUT"] == env["EXECUTION_JOB_TIMEOUT"]
    hpa = documents[("HorizontalPodAutoscaler", "nodedrop-worker")]["spec"]
    assert hpa["metrics"][0]["external"]["metric"]["name"] == "nodedrop_workers_desired"
    assert "--workers" in documents[("Deployment", "nodedrop-api")]["spec"]["template"]["spec"]["containers"][0]["args"]


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
