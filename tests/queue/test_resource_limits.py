"""Executions that allocate too much memory fail cleanly; the worker goes on."""

from __future__ import annotations

import pytest

from nodedrop_rq.control import ExecutionControl
from nodedrop_rq.submit import submit_execution
from tests.queue.test_executions import wait_status
from tests.support import workflows


@pytest.mark.parametrize("isolation", ["fork", "supervised"])
def test_memory_hog_fails_with_a_clear_error_and_the_worker_survives(start_pool, redis_conn, settings, isolation):
    pool = start_pool(concurrency=1, EXECUTION_MEMORY_LIMIT_MB="300", EXECUTION_ISOLATION=isolation)
    one_try = settings.with_overrides(retry_intervals=(0,))
    hog = workflows.chain("hog", workflows.start(), workflows.function("hog", "hog_memory"))
    execution_id = submit_execution(hog, {"megabytes": 600}, connection=redis_conn, settings=one_try)
    wait_status(redis_conn, execution_id, "failed", 60)
    error = ExecutionControl(redis_conn, settings).get(execution_id)["error"]
    assert error["nodeId"] == "hog"
    assert "out of memory" in error["message"]
    after = submit_execution(workflows.quick(), connection=redis_conn, settings=settings)
    wait_status(redis_conn, after, "succeeded", 30)
    assert pool.process.poll() is None
