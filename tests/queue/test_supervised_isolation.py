"""The default isolation (supervised): executions run in long-lived worker processes, and the supervisor
ends a dead or hung one's attempt at once, keeps the pool at its size and recycles processes."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from redis import Redis

from nodedrop_rq.control import ExecutionControl
from nodedrop_rq.settings import Settings
from nodedrop_rq.submit import submit_execution
from tests.conftest import wait_for
from tests.queue.test_executions import wait_status
from tests.support import workflows

FAST_RETRIES = {"EXECUTION_RETRY_INTERVALS": "1"}
RQ_CLI = str(Path(sys.executable).parent / "rq")


def worker_of(connection: Redis, execution_id: str) -> tuple[str, int]:
    """The name and pid of the worker process running the execution."""
    name = wait_for(lambda: connection.hget(f"rq:job:{execution_id}", "worker_name"), 20).decode()
    return name, int(connection.hget(f"rq:worker:{name}", "pid"))


def running_node(connection: Redis, execution_id: str, node: str) -> None:
    wait_for(lambda: connection.hget(f"nodedrop:execution:{execution_id}", "currentNode") == node.encode(), 20,
             what=f"execution {execution_id} to reach node {node}")


def workers_of(connection: Redis, ids: list[str]) -> set[str]:
    return {connection.hget(f"rq:job:{i}", "worker_name").decode() for i in ids}


def test_a_killed_worker_costs_only_its_attempt(start_pool, redis_conn, settings):
    pool = start_pool(concurrency=2, **FAST_RETRIES)
    execution_id = submit_execution(workflows.counted(), {"sleep": 3}, connection=redis_conn,
                                    settings=settings.with_overrides(retry_intervals=(1,)))
    running_node(redis_conn, execution_id, "sleep")
    name, pid = worker_of(redis_conn, execution_id)
    os.kill(pid, signal.SIGKILL)  # a segfault or the kernel's OOM killer
    wait_status(redis_conn, execution_id, "succeeded", 30)
    state = ExecutionControl(redis_conn, settings).get(execution_id)
    first = state["attempts"][0]
    # "killed" is the supervisor's record; abandoned-job recovery (15 to 30 s later) would say "abandoned".
    assert first["status"] == "failed" and first["error"]["kind"] == "killed", first
    assert "signal 9" in first["error"]["message"]
    assert state["attempt"] == 2 and int(redis_conn.get("test:runs:default")) == 2
    assert f"rq:worker:{name}".encode() not in redis_conn.smembers("rq:workers")  # nor in `rq info`
    wait_for(lambda: redis_conn.scard("rq:workers") == 2, 20, what="the pool to be back at two workers")
    assert pool.process.poll() is None
    assert "died (exit code -9) while running" in pool.output()


def test_an_execution_stuck_in_c_code_is_killed_at_its_timeout(start_pool, redis_conn, settings):
    # SIGALRM (the in-process timeout) cannot interrupt a regex holding the GIL; the supervisor can.
    start_pool(concurrency=1, EXECUTION_JOB_TIMEOUT="2", EXECUTION_TIMEOUT_KILL_GRACE="1", **FAST_RETRIES)
    execution_id = submit_execution(workflows.hanging_once(), connection=redis_conn,
                                    settings=settings.with_overrides(job_timeout=2, retry_intervals=(1,)))
    wait_status(redis_conn, execution_id, "succeeded", 40)
    first = ExecutionControl(redis_conn, settings).get(execution_id)["attempts"][0]
    assert first["error"]["kind"] == "timeout", first
    assert first["error"].get("nodeId") == "hang"


def test_worker_processes_are_recycled_after_max_jobs_and_past_the_memory_ceiling(start_pool, redis_conn,
                                                                                   settings):
    start_pool(concurrency=1, EXECUTION_WORKER_MAX_JOBS="2")
    ids = [submit_execution(workflows.quick(), {"n": n}, connection=redis_conn, settings=settings) for n in range(5)]
    for execution_id in ids:
        wait_status(redis_conn, execution_id, "succeeded", 30)
    assert len(workers_of(redis_conn, ids)) == 3  # 2 + 2 + 1

    redis_conn.flushall()
    pool = start_pool(concurrency=1, EXECUTION_WORKER_MAX_MEMORY_MB="1")  # every process is past 1 MB
    ids = [submit_execution(workflows.quick(), {"n": n}, connection=redis_conn, settings=settings) for n in range(3)]
    for execution_id in ids:
        wait_status(redis_conn, execution_id, "succeeded", 30)
    assert len(workers_of(redis_conn, ids)) == 3
    assert "past EXECUTION_WORKER_MAX_MEMORY_MB=1" in pool.output()


def test_plain_rq_worker_supervises_its_worker_process(start_pool, redis_conn, redis_url, settings: Settings):
    rq_worker = start_pool(args=[RQ_CLI, "worker", "-w", "nodedrop_rq.worker.ExecutionWorker",
                                 "-S", "rq.serializers.JSONSerializer", "--url", redis_url, settings.queue],
                           **FAST_RETRIES)
    execution_id = submit_execution(workflows.counted(), {"sleep": 3}, connection=redis_conn,
                                    settings=settings.with_overrides(retry_intervals=(1,)))
    running_node(redis_conn, execution_id, "sleep")
    _, pid = worker_of(redis_conn, execution_id)
    assert pid != rq_worker.pid  # the execution runs in the supervised child, not in `rq worker` itself
    os.kill(pid, signal.SIGKILL)
    wait_status(redis_conn, execution_id, "succeeded", 30)
    first = ExecutionControl(redis_conn, settings).get(execution_id)["attempts"][0]
    assert first["error"]["kind"] == "killed", first
    assert rq_worker.process.poll() is None
