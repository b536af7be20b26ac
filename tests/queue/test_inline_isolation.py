"""The same guarantees with EXECUTION_ISOLATION=inline (executions run inside the worker process). A whole
pool SIGKILLed is tests/queue/test_worker_lifecycle.py's case: under the pool, inline runs as supervised."""

from __future__ import annotations

from nodedrop_rq.control import ExecutionControl
from nodedrop_rq.submit import submit_execution
from tests.conftest import holds_for, wait_for
from tests.queue.test_executions import status_of, wait_status
from tests.support import workflows

INLINE = {"EXECUTION_ISOLATION": "inline"}


def test_success_failure_and_retry_inline(start_pool, redis_conn, settings):
    start_pool(concurrency=2, **INLINE)
    fast = settings.with_overrides(retry_intervals=(1,))
    ok = submit_execution(workflows.quick(), {"n": 1}, connection=redis_conn, settings=fast)
    flaky = submit_execution(workflows.failing(), {"succeedOn": 2}, connection=redis_conn, settings=fast)
    wait_status(redis_conn, ok, "succeeded", 20)
    wait_status(redis_conn, flaky, "succeeded", 20)
    state = ExecutionControl(redis_conn, settings).get(flaky)
    assert [a["status"] for a in state["attempts"]] == ["failed", "succeeded"]
    assert state["nodes"]["flaky"]["status"] == "succeeded"


def test_long_inline_execution_is_not_taken_for_abandoned(start_pool, redis_conn, settings):
    # 20 s of work outlives the 15 s heartbeat TTL: only the heartbeat thread keeps it from being rerun.
    start_pool(concurrency=2, **INLINE)
    execution_id = submit_execution(workflows.counted(), {"sleep": 20}, connection=redis_conn, settings=settings)
    wait_status(redis_conn, execution_id, "succeeded", 45)
    assert ExecutionControl(redis_conn, settings).get(execution_id)["attempt"] == 1
    assert int(redis_conn.get("test:runs:default")) == 1


def test_cancel_and_stop_command_inline(start_pool, redis_conn, settings):
    from rq.command import send_stop_job_command

    pool = start_pool(concurrency=1, **INLINE)
    control = ExecutionControl(redis_conn, settings)
    first = submit_execution(workflows.counted(), {"sleep": 2}, connection=redis_conn, settings=settings)
    wait_for(lambda: redis_conn.hget(f"nodedrop:execution:{first}", "currentNode") == b"sleep", 20)
    control.cancel(first)
    wait_status(redis_conn, first, "cancelled", 20)
    second = submit_execution(workflows.counted(), {"sleep": 2}, connection=redis_conn, settings=settings)
    wait_for(lambda: redis_conn.hget(f"nodedrop:execution:{second}", "currentNode") == b"sleep", 20)
    send_stop_job_command(redis_conn, second)  # must not kill the worker's own process group
    wait_status(redis_conn, second, "cancelled", 20)
    holds_for(lambda: pool.process.poll() is None, 0.5, what="the pool to survive the stop command")
    assert status_of(redis_conn, first) == "cancelled"
