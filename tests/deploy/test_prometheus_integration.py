"""A real Prometheus scrapes a real exporter while workers run a workload; every PromQL expression of the
dashboard and the alert rules must evaluate, and the dashboard's must return data."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import httpx
import pytest
import yaml

from nodedrop_rq.embedded_redis import free_port
from nodedrop_rq.submit import submit_execution
from tests.conftest import ROOT, child_env, wait_for
from tests.queue.test_executions import wait_status
from tests.support import workflows

PROMETHEUS = shutil.which("prometheus")
DEPLOY = ROOT / "deploy"


@pytest.fixture
def exporter_and_prometheus(redis_url, tmp_path):
    exporter_port, prometheus_port = free_port(), free_port()
    exporter = subprocess.Popen(
        [sys.executable, "-m", "exporter", "--host", "127.0.0.1", "--port", str(exporter_port)],
        env=child_env(redis_url), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(DEPLOY / "prometheus" / "alerts.yml")],
        "scrape_configs": [{"job_name": "nodedrop", "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]}],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    prometheus = subprocess.Popen(
        [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prometheus_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{prometheus_port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{base}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, 30, what="prometheus to be ready")
    yield base
    for process in (prometheus, exporter):
        process.terminate()
        process.wait(15)


def query(base: str, expr: str) -> list:
    body = httpx.get(f"{base}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", (expr, body)
    return body["data"]["result"]


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus is not installed (.ci/run installs it)")
def test_dashboard_and_alert_expressions_on_a_real_workload(exporter_and_prometheus, start_pool, redis_conn,
                                                             settings):
    base = exporter_and_prometheus
    fast = settings.with_overrides(retry_intervals=(0,))
    start_pool(concurrency=2, EXECUTION_RETRY_INTERVALS="0")
    ids = [submit_execution(workflows.quick(), connection=redis_conn, settings=fast) for _ in range(5)]
    ids.append(submit_execution(workflows.failing(), connection=redis_conn, settings=fast))
    for execution_id in ids:
        wait_status(redis_conn, execution_id, ("succeeded", "failed"), 30)
    # More of the workload after the first scrapes, so rate() sees increases.
    wait_for(lambda: query(base, "nodedrop_redis_up"), 20, what="a first scrape")
    ids = [submit_execution(workflows.quick(), connection=redis_conn, settings=fast) for _ in range(5)]
    ids.append(submit_execution(workflows.failing(), connection=redis_conn, settings=fast))
    for execution_id in ids:
        wait_status(redis_conn, execution_id, ("succeeded", "failed"), 30)
    wait_for(lambda: query(base, 'nodedrop_executions_completed_total{queue="executions"} >= 10'), 20,
             what="the second half of the workload to be scraped")

    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "nodedrop.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$queue", ".*")
            assert query(base, expr), f"no data for panel {panel['title']!r}: {expr}"

    rules = [r for g in yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
             for r in g["rules"]]
    for rule in rules:
        query(base, rule["expr"])  # evaluates without error
        # The condition's left-hand side has data for this workload.
        left = re.split(r"\s(?:>|==|<)\s", rule["expr"].strip())[0]
        if "nodedrop_redis_up" not in left and "up{" not in left:
            assert query(base, left), f"no data for {rule['alert']}: {left}"

    groups = httpx.get(f"{base}/api/v1/rules", timeout=10).json()["data"]["groups"]
    assert all(rule["health"] == "ok" for group in groups for rule in group["rules"])
    failed = "sum(rate(nodedrop_executions_failed_total[1m]))"
    ratio = query(base, f"{failed} / (sum(rate(nodedrop_executions_completed_total[1m])) + {failed})")
    assert 0 < float(ratio[0]["value"][1]) < 1
