"""Executions on a real redis-server, run by real worker processes."""

from __future__ import annotations

import json
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from rq.job import Job
from rq.registry import FailedJobRegistry

from nodedrop_rq.connection import SERIALIZER
from nodedrop_rq.control import ExecutionControl
from nodedrop_rq.errors import InvalidOperation
from nodedrop_rq.state import parse_iso
from nodedrop_rq.submit import submit_execution
from nodedrop_rq.workflow import WorkflowInvalid
from tests.conftest import EXAMPLES, ROOT, child_env, holds_for, wait_for
from tests.support import workflows


def status_of(redis_conn, execution_id: str) -> str | None:
    raw = redis_conn.hget(f"nodedrop:execution:{execution_id}", "status")
    return raw.decode() if raw else None


def wait_status(redis_conn, execution_id: str, wanted: str | tuple[str, ...], timeout: float) -> None:
    wanted = (wanted,) if isinstance(wanted, str) else wanted
    wait_for(lambda: status_of(redis_conn, execution_id) in wanted, timeout,
             what=lambda: f"{execution_id} to be {wanted} (is {status_of(redis_conn, execution_id)})")


def test_a_workflow_runs_to_succeeded_with_per_node_results(start_pool, redis_conn, settings):
    start_pool(concurrency=2)
    execution_id = submit_execution(workflows.quick(), {"orderId": 7}, connection=redis_conn, settings=settings)
    wait_status(redis_conn, execution_id, "succeeded", 30)
    state = ExecutionControl(redis_conn, settings).get(execution_id)
    assert state["attempt"] == 1 and state["maxAttempts"] == 4
    # NodeDrop's manual trigger item, with the input as its customData (ManualTrigger.node.ts).
    [item] = state["output"]
    assert item["json"]["customData"] == {"orderId": 7} and item["json"]["done"] is True
    assert item["json"]["triggerType"] == "manual"
    assert {n: v["status"] for n, v in state["nodes"].items()} == {"start": "succeeded", "mark": "succeeded"}
    assert all(v["durationMs"] is not None for v in state["nodes"].values())
    assert state["error"] is None
    assert parse_iso(state["createdAt"]) <= parse_iso(state["startedAt"]) <= parse_iso(state["finishedAt"])
    assert 3500 < redis_conn.ttl(f"nodedrop:execution:{execution_id}") <= 3600
    job = Job.fetch(execution_id, connection=redis_conn, serializer=SERIALIZER)
    assert job.get_status() == "finished"
    # The job is stored as JSON, readable by other languages and rq-dashboard --json.
    raw = redis_conn.hget(f"rq:job:{execution_id}", "data")
    assert json.loads(zlib.decompress(raw))[0] == "nodedrop_rq.jobs.run_execution"  # RQ zlib-compresses data


def test_every_example_runs_on_the_pool(start_pool, redis_conn, settings):
    start_pool(concurrency=3)
    ids = {path.name: submit_execution(json.loads(path.read_text()), connection=redis_conn, settings=settings)
           for path in sorted(EXAMPLES.glob("*.json")) if "fail" not in path.name}
    for name, execution_id in ids.items():
        wait_status(redis_conn, execution_id, ("succeeded", "failed"), 60)
        assert status_of(redis_conn, execution_id) == "succeeded", name


def test_state_ttl_is_long_while_running_and_short_after(start_pool, redis_conn, settings):
    start_pool(concurrency=1)
    execution_id = submit_execution(workflows.counted(), {"sleep": 2}, connection=redis_conn, settings=settings)
    wait_status(redis_conn, execution_id, "running", 20)
    assert 86300 < redis_conn.ttl(f"nodedrop:execution:{execution_id}") <= 86400
    wait_status(redis_conn, execution_id, "succeeded", 30)
    assert 3500 < redis_conn.ttl(f"nodedrop:execution:{execution_id}") <= 3600


def test_failing_execution_is_retried_after_2_4_8_s_then_failed_and_requeued(start_pool, redis_conn, settings):
    start_pool(concurrency=2)
    execution_id = submit_execution(workflows.failing(), {"succeedOn": 5}, connection=redis_conn,
                                    settings=settings)
    wait_status(redis_conn, execution_id, "retrying", 20)
    state = ExecutionControl(redis_conn, settings).get(execution_id)
    assert state["nextRetryAt"]
    assert state["error"]["nodeId"] == "flaky"
    wait_status(redis_conn, execution_id, "failed", 60)
    state = ExecutionControl(redis_conn, settings).get(execution_id)
    attempts = state["attempts"]
    assert [a["attempt"] for a in attempts] == [1, 2, 3, 4]
    assert all(a["status"] == "failed" for a in attempts)
    gaps = [(parse_iso(b["startedAt"]) - parse_iso(a["finishedAt"])).total_seconds()
            for a, b in zip(attempts, attempts[1:], strict=False)]
    assert len(gaps) == 3
    for gap, interval in zip(gaps, (2, 4, 8), strict=True):
        # RQ's scheduler polls once a second; allow for that and a loaded machine.
        assert interval - 0.1 <= gap <= interval + 3.5, gaps
    assert state["error"]["nodeId"] == "flaky"
    assert "planned failure on attempt 4" in state["error"]["message"]
    assert execution_id in FailedJobRegistry("executions", connection=redis_conn).get_job_ids(cleanup=False)
    assert state["finishedAt"] and not state["nextRetryAt"]

    # Manual review: requeue from the CLI; attempt 5 succeeds.
    done = subprocess.run([sys.executable, "-m", "nodedrop_rq", "failed", "requeue", execution_id],
                          env=child_env(settings.redis_url), cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    wait_status(redis_conn, execution_id, "succeeded", 30)
    state = ExecutionControl(redis_conn, settings).get(execution_id)
    assert state["attempt"] == 5 and state["requeues"] == 1 and state["maxAttempts"] == 8
    assert execution_id not in FailedJobRegistry("executions", connection=redis_conn).get_job_ids(cleanup=False)
    counters = {k.decode(): v.decode() for k, v in redis_conn.hgetall("nodedrop:counters:executions").items()}
    assert counters["retried"] == "3" and counters["failed"] == "1" and counters["completed"] == "1"


def test_invalid_workflow_is_refused_and_writes_nothing(redis_conn, settings):
    bad = workflows.quick()
    bad["nodes"].append({"id": "start", "type": "no-such-node", "name": "x", "parameters": {}})
    with pytest.raises(WorkflowInvalid) as info:
        submit_execution(bad, connection=redis_conn, settings=settings)
    messages = " ".join(p.message for p in info.value.problems)
    assert "no-such-node" in messages
    assert len(info.value.problems) >= 2  # duplicate id and unknown type, reported together
    assert redis_conn.dbsize() == 0


def test_oversized_submission_is_refused_before_redis(redis_conn, settings):
    small = settings.with_overrides(max_document_bytes=2048)
    with pytest.raises(WorkflowInvalid) as info:
        submit_execution(workflows.quick(), {"blob": "x" * 5000}, connection=redis_conn, settings=small)
    assert "WORKFLOW_MAX_DOCUMENT_BYTES" in str(info.value)
    assert redis_conn.dbsize() == 0


def test_idempotency_key_returns_the_same_execution(redis_conn, settings):
    first = submit_execution(workflows.quick(), idempotency_key="order-1", connection=redis_conn, settings=settings)
    second = submit_execution(workflows.quick(), idempotency_key="order-1", connection=redis_conn, settings=settings)
    third = submit_execution(workflows.quick(), idempotency_key="order-2", connection=redis_conn, settings=settings)
    assert first == second != third
    assert redis_conn.llen("rq:queue:executions") == 2


def test_cancel_queued_then_refuse_cancelling_again(redis_conn, settings):
    control = ExecutionControl(redis_conn, settings)
    execution_id = submit_execution(workflows.quick(), connection=redis_conn, settings=settings)
    assert control.cancel(execution_id)["status"] == "cancelled"
    assert redis_conn.llen("rq:queue:executions") == 0
    assert 3500 < redis_conn.ttl(f"nodedrop:execution:{execution_id}") <= 3600
    with pytest.raises(InvalidOperation):
        control.cancel(execution_id)


def test_cancel_running_stops_at_the_next_node(start_pool, redis_conn, settings):
    start_pool(concurrency=1)
    control = ExecutionControl(redis_conn, settings)
    execution_id = submit_execution(workflows.counted(), {"sleep": 2}, connection=redis_conn, settings=settings)
    wait_for(lambda: redis_conn.hget(f"nodedrop:execution:{execution_id}", "currentNode") == b"sleep", 20)
    assert control.cancel(execution_id)["status"] == "running"
    wait_status(redis_conn, execution_id, "cancelled", 20)
    state = control.get(execution_id)
    assert state["nodes"]["sleep"]["status"] == "succeeded"
    assert "mark" not in state["nodes"] or state["nodes"]["mark"]["status"] != "succeeded"


def test_cancel_while_retrying(start_pool, redis_conn, settings):
    start_pool(concurrency=1)
    control = ExecutionControl(redis_conn, settings)
    execution_id = submit_execution(workflows.failing(), connection=redis_conn, settings=settings)
    wait_status(redis_conn, execution_id, "retrying", 20)
    assert control.cancel(execution_id)["status"] == "cancelled"
    # Past the 2 s retry: it must not run again.
    holds_for(lambda: status_of(redis_conn, execution_id) == "cancelled", 3, what="the cancel to hold")
    assert control.get(execution_id)["attempt"] == 1


def test_job_timeout_fails_the_attempt_with_a_clear_error(start_pool, redis_conn, settings):
    start_pool(concurrency=1)
    short = settings.with_overrides(job_timeout=1, retry_intervals=(1,))
    execution_id = submit_execution(workflows.counted(), {"sleep": 5}, connection=redis_conn, settings=short)
    wait_status(redis_conn, execution_id, "failed", 40)
    state = ExecutionControl(redis_conn, settings).get(execution_id)
    assert state["error"]["kind"] == "timeout"
    assert "timed out after 1 s" in state["error"]["message"]
    assert state["error"]["nodeId"] == "sleep"
    assert state["attempt"] == 2


def test_plain_rq_worker_runs_an_execution(start_pool, redis_conn, settings):
    execution_id = submit_execution(workflows.quick(), connection=redis_conn, settings=settings)
    rq_cli = str(Path(sys.executable).parent / "rq")
    pool = start_pool(args=[rq_cli, "worker", "-w", "nodedrop_rq.worker.ExecutionWorker", "--with-scheduler",
                            "-S", "rq.serializers.JSONSerializer", "--url", settings.redis_url, "--burst",
                            "executions"])
    assert pool.process.wait(60) == 0, pool.output()
    assert status_of(redis_conn, execution_id) == "succeeded"


def test_deeply_nested_input_is_refused_with_a_limit_error(redis_conn, settings):
    deep: dict = {}
    cursor = deep
    for _ in range(5000):
        cursor["a"] = {}
        cursor = cursor["a"]
    with pytest.raises(WorkflowInvalid) as info:
        submit_execution(workflows.quick(), deep, connection=redis_conn, settings=settings)
    assert "WORKFLOW_MAX_DEPTH" in str(info.value) and info.value.problems[0].path == "input"
    with pytest.raises(WorkflowInvalid) as info:
        submit_execution(workflows.quick(), [{"x": i} for i in range(20_000)], connection=redis_conn,
                         settings=settings)
    assert "limit is 10000" in str(info.value)
    assert redis_conn.dbsize() == 0


def test_top_level_submit_execution(redis_conn, settings):
    import nodedrop_rq

    execution_id = nodedrop_rq.submit_execution(workflows.quick(), connection=redis_conn, settings=settings)
    assert status_of(redis_conn, execution_id) == "queued"
