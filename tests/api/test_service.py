"""`nodedrop-rq serve` as a real process: executions submitted over HTTP run to completion, in
single-server mode (`--workers N`) and API-only mode with a separate pool; cancel, failed review,
requeue, warm shutdown and pool restarts."""

from __future__ import annotations

import os
import signal
import time

from tests.conftest import descendants, holds_for, wait_for
from tests.support import workflows

UNKNOWN = "0" * 32


def test_single_server_mode_runs_a_submitted_workflow(start_service):
    service = start_service(workers=1)
    response = service.submit(workflows.quick(), {"orderId": 7})
    assert response.status_code == 202, response.text
    body = response.json()
    execution_id = body["id"]
    assert body == {"id": execution_id, "status": "queued",
                    "links": {"self": f"/api/executions/{execution_id}",
                              "cancel": f"/api/executions/{execution_id}/cancel"}}
    assert response.headers["location"] == f"/api/executions/{execution_id}"

    final = service.wait_status(execution_id, ("succeeded", "failed"), 30)
    assert final["status"] == "succeeded", final
    assert _custom(final["output"]) == [{"orderId": 7}]
    assert final["attempt"] == 1 and final["workflowName"] == "quick"
    assert {n: v["status"] for n, v in final["nodes"].items()} == {"start": "succeeded", "mark": "succeeded"}

    # Cancelling a finished execution is refused.
    cancel = service.http.post(f"/api/executions/{execution_id}/cancel")
    assert cancel.status_code == 409
    assert cancel.json()["error"] == "conflict" and "succeeded" in cancel.json()["detail"]
    assert service.http.get("/api/health").json()["queue"]["completed"] == 1


def test_api_only_service_never_runs_workflows_a_separate_pool_does(start_service, start_pool):
    service = start_service(workers=0)
    first = service.submit(workflows.quick(), [{"n": 1}, {"n": 2}], idempotencyKey="order-7")
    assert first.status_code == 202, first.text
    execution_id = first.json()["id"]
    again = service.submit(workflows.quick(), [{"n": 1}, {"n": 2}], idempotencyKey="order-7")
    assert again.status_code == 202 and again.json()["id"] == execution_id

    holds_for(lambda: service.http.get(f"/api/executions/{execution_id}").json()["status"] == "queued", 1.0,
              what="an API-only service to leave the execution queued")
    assert service.http.get("/api/health").json()["queue"]["waiting"] == 1
    assert service.children() == []

    start_pool(concurrency=1)
    final = service.wait_status(execution_id, ("succeeded", "failed"), 30)
    assert final["status"] == "succeeded", final
    assert _custom(final["output"]) == [{"n": 1}]  # the first input item is the trigger's custom data
    assert final["idempotencyKey"] == "order-7"
    # The same key after completion still names the first execution, with its current status.
    replay = service.submit(workflows.quick(), {"n": 3}, idempotencyKey="order-7")
    assert replay.json()["id"] == execution_id and replay.json()["status"] == "succeeded"


def test_cancel_a_queued_execution_then_conflict(start_service, redis_conn):
    service = start_service(workers=0)
    execution_id = service.submit(workflows.quick()).json()["id"]
    cancel = service.http.post(f"/api/executions/{execution_id}/cancel")
    assert cancel.status_code == 200, cancel.text
    assert cancel.json()["status"] == "cancelled" and cancel.json()["id"] == execution_id
    assert redis_conn.llen("rq:queue:executions") == 0
    assert service.http.get(f"/api/executions/{execution_id}").json()["status"] == "cancelled"
    again = service.http.post(f"/api/executions/{execution_id}/cancel")
    assert again.status_code == 409 and again.json()["error"] == "conflict"


def test_unknown_ids_are_404_json(start_service):
    service = start_service(workers=0)
    for method, path in (("GET", f"/api/executions/{UNKNOWN}"), ("POST", f"/api/executions/{UNKNOWN}/cancel"),
                         ("POST", f"/api/executions/{UNKNOWN}/requeue"), ("GET", "/api/executions/nope")):
        response = service.http.request(method, path)
        assert response.status_code == 404, (method, path, response.text)
        assert response.headers["content-type"] == "application/json"
        assert response.json()["error"] == "execution not found"
    # Routes that do not exist answer JSON too.
    missing = service.http.get("/api/nothing-here")
    assert missing.status_code == 404 and missing.json() == {"error": "not found"}
    wrong_method = service.http.delete("/api/health")
    assert wrong_method.status_code == 405 and wrong_method.json() == {"error": "method not allowed"}


def test_failed_executions_are_listed_and_requeued(start_service, start_pool):
    fast_retry = {"EXECUTION_RETRY_INTERVALS": "1"}
    service = start_service(workers=0, **fast_retry)
    start_pool(concurrency=1, **fast_retry)
    # Attempts 1 and 2 fail (1 retry), attempt 3 - the first after the requeue - succeeds.
    execution_id = service.submit(workflows.failing(), {"succeedOn": 3}).json()["id"]
    failed = service.wait_status(execution_id, ("failed", "succeeded"), 30)
    assert failed["status"] == "failed" and failed["attempt"] == 2 and failed["maxAttempts"] == 2

    listed = service.http.get("/api/executions/failed", params={"limit": 10})
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["total"] == 1 and body["queue"] == "executions" and body["limit"] == 10 and body["offset"] == 0
    [item] = body["executions"]
    assert item["id"] == execution_id and item["workflowName"] == "failing"
    assert item["error"]["nodeId"] == "flaky" and "planned failure" in item["error"]["message"]
    assert service.http.get("/api/executions/failed", params={"offset": 1}).json()["executions"] == []
    assert service.http.get("/api/executions/failed", params={"queue": "other"}).json()["total"] == 0
    bad = service.http.get("/api/executions/failed", params={"limit": 0})
    assert bad.status_code == 422 and bad.json()["problems"][0]["path"] == "query.limit"

    requeued = service.http.post(f"/api/executions/{execution_id}/requeue")
    assert requeued.status_code == 202, requeued.text
    # The answer is the state read after the requeue: the idle worker may have started it already.
    assert requeued.json()["status"] in ("queued", "running", "succeeded") and requeued.json()["requeues"] == 1
    final = service.wait_status(execution_id, ("succeeded", "failed"), 30)
    assert final["status"] == "succeeded" and final["attempt"] == 3
    assert service.http.get("/api/executions/failed").json()["total"] == 0
    again = service.http.post(f"/api/executions/{execution_id}/requeue")
    assert again.status_code == 409 and "is not failed" in again.json()["detail"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_sigterm_lets_the_running_execution_finish_and_exits_0(start_service, redis_conn):
    service = start_service(workers=1)
    execution_id = service.submit(workflows.counted(), {"sleep": 2}).json()["id"]
    service.wait_status(execution_id, "running", 20)
    family = descendants(service.pid)
    assert family, "single-server mode runs a worker pool below the service"

    started = time.monotonic()
    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(30) == 0, service.output()
    assert time.monotonic() - started < 30
    # Warm shutdown: the execution that was running finished rather than being killed.
    assert redis_conn.hget(f"nodedrop:execution:{execution_id}", "status") == b"succeeded"
    wait_for(lambda: not any(_alive(pid) for pid in family), 10, what="the worker pool's processes to exit")
    assert "stopping worker pool" in service.output()


def test_a_dead_worker_pool_is_restarted(start_service):
    service = start_service(workers=1)
    [pool] = wait_for(service.children, 10, what="the worker pool to start")
    for pid in [pool, *descendants(pool)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    replacement = wait_for(lambda: [p for p in service.children() if p != pool and _alive(p)], 15,
                           what="a new worker pool")
    assert replacement
    execution_id = service.submit(workflows.quick()).json()["id"]
    assert service.wait_status(execution_id, ("succeeded", "failed"), 30)["status"] == "succeeded"
    assert "restarting" in service.output()


def _custom(output: list[dict]) -> list:
    """The input each output item carries: NodeDrop's manual trigger passes it on as customData."""
    assert all(item["json"]["done"] is True for item in output), output
    return [item["json"]["customData"] for item in output]
