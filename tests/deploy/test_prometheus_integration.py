"""A real Prometheus scrapes two real exporter replicas while workers run a workload; every PromQL
expression of the dashboard and the alert rules must evaluate, the dashboard's must return data, and each
must give the same numbers as when only one replica is counted (a second replica must not double them)."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import time

import httpx
import pytest
import yaml

from nodedrop_rq.embedded_redis import free_port
from nodedrop_rq.submit import submit_execution
from tests.conftest import ROOT, child_env, wait_for
from tests.deploy.test_k8s_manifests import autoscaler_queries
from tests.queue.test_executions import wait_status
from tests.support import workflows

PROMETHEUS = shutil.which("prometheus")
DEPLOY = ROOT / "deploy"


REPLICAS = 2
# Expressions that are about one exporter (its own scrape time, which replica runs which build) rather than
# the global numbers every replica reports alike.
PER_REPLICA = ("nodedrop_exporter_scrape_duration_seconds", "by (instance")


@pytest.fixture
def exporter_and_prometheus(redis_url, tmp_path):
    exporter_ports, prometheus_port = [free_port() for _ in range(REPLICAS)], free_port()
    exporters = [subprocess.Popen(
        [sys.executable, "-m", "exporter", "--host", "127.0.0.1", "--port", str(port)],
        env=child_env(redis_url), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for port in exporter_ports]
    targets = [f"127.0.0.1:{port}" for port in exporter_ports]
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(DEPLOY / "prometheus" / "alerts.yml")],
        "scrape_configs": [{"job_name": "nodedrop", "static_configs": [{"targets": targets}]}],
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
    yield base, targets
    for process in (prometheus, *exporters):
        process.terminate()
        process.wait(15)


def query(base: str, expr: str, at: float | None = None) -> list:
    params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
    body = httpx.get(f"{base}/api/v1/query", params=params, timeout=10).json()
    assert body["status"] == "success", (expr, body)
    return body["data"]["result"]


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus is not installed (.ci/run installs it)")
def test_dashboard_and_alert_expressions_on_a_real_workload(exporter_and_prometheus, start_pool, redis_conn,
                                                             settings):
    base, targets = exporter_and_prometheus
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
    # Both replicas scraped after the workload ended, so they report the same global numbers.
    wait_for(lambda: query(base, f'count(nodedrop_executions_completed_total{{queue="executions"}} >= 10) == {REPLICAS}'
                                 f' and count(nodedrop_queue_active{{queue="executions"}} == 0) == {REPLICAS}'),
             20, what="the second half of the workload to be scraped by every replica")

    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "nodedrop.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$queue", ".*")
            assert query(base, expr), f"no data for panel {panel['title']!r}: {expr}"
            assert_replicas_not_added_up(base, expr, targets)

    # What the autoscalers ask (KEDA's trigger, prometheus-adapter's rule for the HPA): one value, the one a
    # single exporter replica gives, and a whole number of worker containers.
    for overlay, expr in autoscaler_queries().items():
        rows = query(base, expr)
        assert len(rows) == 1, (overlay, expr, rows)
        assert float(rows[0]["value"][1]).is_integer(), (overlay, rows)
        assert_replicas_not_added_up(base, expr, targets)

    rules = [r for g in yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
             for r in g["rules"]]
    for rule in rules:
        query(base, rule["expr"])  # evaluates without error
        # The condition's left-hand side has data for this workload.
        left = re.split(r"\s(?:>|==|<)\s", rule["expr"].strip())[0]
        if "nodedrop_redis_up" not in left and "up{" not in left:
            assert query(base, left), f"no data for {rule['alert']}: {left}"
            assert_replicas_not_added_up(base, left, targets)

    groups = httpx.get(f"{base}/api/v1/rules", timeout=10).json()["data"]["groups"]
    assert all(rule["health"] == "ok" for group in groups for rule in group["rules"])
    failed = "max(rate(nodedrop_executions_failed_total[1m]))"
    ratio = query(base, f"{failed} / (max(rate(nodedrop_executions_completed_total[1m])) + {failed})")
    assert 0 < float(ratio[0]["value"][1]) < 1


def only_instance(expr: str, instance: str) -> str:
    """``expr`` with every nodedrop_ selector restricted to one scrape target."""
    def restrict(match: re.Match[str]) -> str:
        return f'{match.group(1)}{{instance="{instance}"' + ("," if match.group(2) else "}")
    return re.sub(r"\b(nodedrop_[a-z_]+)(\{)?", restrict, expr)


def assert_replicas_not_added_up(base: str, expr: str, instances: list[str]) -> None:
    if any(marker in expr for marker in PER_REPLICA):
        return
    # One evaluation time for the three queries, two scrape intervals back: a scrape landing between them
    # would move rate()'s extrapolation and compare different moments.
    at = time.time() - 2
    every = {_key(row): float(row["value"][1]) for row in query(base, expr, at)}
    each = [{_key(row): float(row["value"][1]) for row in query(base, only_instance(expr, instance), at)}
            for instance in instances]
    # A replica scraped only once in the window has no rate() yet; the others must give the same keys.
    assert all(one.keys() <= every.keys() for one in each) and set().union(*each) == every.keys(), (expr, every,
                                                                                                  each)
    for key, value in every.items():
        # A sum over the replicas would be the sum of their values; the expression must give what one replica
        # gives (the largest of them: the replicas' rate() windows start a scrape apart, so one of them may not
        # have seen the last increase yet).
        # (A replica whose window saw no increase gives 0/0 = NaN for a ratio; it says nothing either way.)
        seen = [abs(one[key]) for one in each if key in one and not math.isnan(one[key])]
        if not seen:
            continue
        largest = max(seen)
        assert abs(value) <= largest * 1.2 + 1e-9, (expr, key, value, [one.get(key) for one in each])


def _key(row: dict) -> tuple:
    return tuple(sorted(row["metric"].items()))
