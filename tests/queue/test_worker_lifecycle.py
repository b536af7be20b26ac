"""Worker pools dying and shutting down while executions run."""

from __future__ import annotations

from datetime import datetime, timezone

from nodedrop_rq.control import ExecutionControl
from nodedrop_rq.submit import submit_execution
from tests.conftest import wait_for
from tests.queue.test_executions import status_of, wait_status
from tests.support import workflows


def runs(redis_conn, tag: str = "default") -> int:
    return int(redis_conn.get(f"test:runs:{tag}") or 0)


def test_sigkilled_pool_execution_finishes_on_another_pool_within_30_s(start_pool, redis_conn, settings):
    doomed = start_pool(concurrency=1)
    execution_id = submit_execution(workflows.counted(), {"sleep": 4}, connection=redis_conn, settings=settings)
    wait_for(lambda: redis_conn.hget(f"nodedrop:execution:{execution_id}", "currentNode") == b"sleep", 20)
    survivor = start_pool(concurrency=1)
    wait_for(lambda: len(redis_conn.smembers("rq:workers")) >= 2, 15, what="second pool to register")
    doomed.kill_all()
    killed_at = datetime.now(timezone.utc)
    # Waits well past the promise, so that the assertions below (not this wait) decide whether it was kept.
    wait_status(redis_conn, execution_id, "succeeded", 90)
    state = ExecutionControl(redis_conn, settings).get(execution_id)
    assert state["attempt"] == 2
    assert state["attempts"][0]["status"] == "failed"
    assert state["attempts"][0]["error"]["kind"] == "abandoned"
    # The promise: the rerun starts within 30 s of the kill, plus the 2 s retry interval.
    rerun_started = datetime.fromisoformat(state["attempts"][1]["startedAt"].replace("Z", "+00:00"))
    assert 0 < (rerun_started - killed_at).total_seconds() < 30 + 2, (killed_at, rerun_started)
    assert runs(redis_conn) == 2  # the side effect ran once per attempt, no more
    assert survivor.process.poll() is None


def test_sigterm_lets_the_running_execution_finish_and_exits_0(start_pool, redis_conn, settings):
    pool = start_pool(concurrency=2)
    execution_id = submit_execution(workflows.counted(), {"sleep": 3}, connection=redis_conn, settings=settings)
    wait_for(lambda: redis_conn.hget(f"nodedrop:execution:{execution_id}", "currentNode") == b"sleep", 20)
    assert pool.terminate(timeout=30) == 0, pool.output()
    assert status_of(redis_conn, execution_id) == "succeeded"
    assert runs(redis_conn) == 1


def test_a_crashed_worker_process_is_replaced(start_pool, redis_conn, settings):
    import os
    import signal

    from tests.support.processes import descendants

    pool = start_pool(concurrency=2)
    wait_for(lambda: len(descendants(pool.pid)) >= 2, 15, what="workers")
    registered = wait_for(lambda: len(redis_conn.smembers("rq:workers")) == 2 and redis_conn.smembers("rq:workers"),
                          15, what="workers to register")
    pool.remember_groups()  # so teardown also ends the killed worker's orphaned scheduler
    victim = descendants(pool.pid)[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: victim not in descendants(pool.pid) and len(descendants(pool.pid)) >= 2, 15,
             what="a replacement worker")
    # The supervisor unregisters the dead worker: two entries again, one of them new.
    wait_for(lambda: len(redis_conn.smembers("rq:workers")) == 2 and redis_conn.smembers("rq:workers") != registered,
             20, what="the replacement to register")
    execution_id = submit_execution(workflows.quick(), connection=redis_conn, settings=settings)
    wait_status(redis_conn, execution_id, "succeeded", 40)
