"""Pub/sub events, a killed work horse and RQ's stop command."""

from __future__ import annotations

import json
import os
import signal
import time

from rq.command import send_stop_job_command

from nodedrop_rq.control import ExecutionControl
from nodedrop_rq.submit import submit_execution
from tests.conftest import wait_for
from tests.queue.test_executions import wait_status
from tests.support import workflows
from tests.support.processes import descendants


def test_node_and_execution_events_are_published(start_pool, redis_conn, settings):
    pubsub = redis_conn.pubsub()
    pubsub.subscribe("execution-events")
    wait_for(lambda: pubsub.get_message(timeout=0.1), 5)  # the subscribe confirmation
    start_pool(concurrency=1)
    execution_id = submit_execution(workflows.quick(), connection=redis_conn, settings=settings)
    wait_status(redis_conn, execution_id, "succeeded", 30)
    events = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (not events or events[-1]["type"] != "completed"):
        message = pubsub.get_message(timeout=0.2)
        if message and message["type"] == "message":
            events.append(json.loads(message["data"]))
    mine = [e for e in events if e["executionId"] == execution_id]
    assert [(e["type"], e.get("nodeId")) for e in mine] == [
        ("started", None),
        ("node-started", "start"), ("node-completed", "start"),
        ("node-started", "mark"), ("node-completed", "mark"),
        ("completed", None),
    ]
    assert all(e["attempt"] == 1 and e["timestamp"] for e in mine)
    assert mine[2]["outputCount"] == 1 and mine[2]["durationMs"] >= 0


def _running_horse(worker_pid: int) -> int:
    """RQ's work horse leads its own process group (os.setpgrp); the scheduler child does not."""
    for pid in descendants(worker_pid):
        try:
            if os.getpgid(pid) == pid:
                return pid
        except ProcessLookupError:
            continue
    raise AssertionError(f"no work horse under worker {worker_pid}")


def test_killed_work_horse_fails_the_attempt_and_is_retried(start_pool, redis_conn, settings):
    pool = start_pool(concurrency=1, EXECUTION_ISOLATION="fork")
    execution_id = submit_execution(workflows.counted(), {"sleep": 3}, connection=redis_conn, settings=settings)
    wait_for(lambda: redis_conn.hget(f"nodedrop:execution:{execution_id}", "currentNode") == b"sleep", 20)
    worker_name = ExecutionControl(redis_conn, settings).get(execution_id)["attempts"][0]["worker"]
    worker_pid = int(redis_conn.hget(f"rq:worker:{worker_name}", "pid"))
    os.kill(_running_horse(worker_pid), signal.SIGKILL)  # what the kernel's OOM killer does
    wait_status(redis_conn, execution_id, "succeeded", 30)
    state = ExecutionControl(redis_conn, settings).get(execution_id)
    assert state["attempt"] == 2
    assert state["attempts"][0]["error"]["kind"] == "killed"
    assert "signal 9" in state["attempts"][0]["error"]["message"]
    assert pool.process.poll() is None


def test_rq_stop_command_cancels_the_running_execution(start_pool, redis_conn, settings):
    # RQ kills the work horse; supervised, the stop becomes a cancel at the next node boundary
    # (tests/queue/test_inline_isolation.py).
    start_pool(concurrency=1, EXECUTION_ISOLATION="fork")
    execution_id = submit_execution(workflows.counted(), {"sleep": 5}, connection=redis_conn, settings=settings)
    wait_for(lambda: redis_conn.hget(f"nodedrop:execution:{execution_id}", "currentNode") == b"sleep", 20)
    send_stop_job_command(redis_conn, execution_id)
    wait_status(redis_conn, execution_id, "cancelled", 20)
    state = ExecutionControl(redis_conn, settings).get(execution_id)
    assert state["error"]["kind"] == "cancelled"
    assert state["attempt"] == 1
