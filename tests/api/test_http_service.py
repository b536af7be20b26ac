"""The real HTTP service as a subprocess on a free port, against the test redis-server."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import httpx
import pytest

from nodedrop_rq.embedded_redis import free_port
from tests.conftest import EXAMPLES, ROOT, child_env, wait_for
from tests.support import workflows


@pytest.fixture
def start_service(redis_url, tmp_path):
    processes = []

    def start(*, workers: int = 0, url: str | None = None, **env: str) -> str:
        port = free_port()
        log = tmp_path / f"serve-{port}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "nodedrop_rq", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--workers", str(workers)],
            env=child_env(url or redis_url, **env), cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        processes.append(process)
        base = f"http://127.0.0.1:{port}"

        def listening() -> bool:
            try:
                httpx.get(base + "/api/health", timeout=2)
                return True
            except httpx.HTTPError:
                return False

        wait_for(listening, 30, what="the service to listen")
        start.last = process  # type: ignore[attr-defined]
        return base

    yield start
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def poll(base: str, execution_id: str, wanted: set[str], timeout: float = 30, headers=None) -> dict:
    def done():
        state = httpx.get(f"{base}/api/executions/{execution_id}", headers=headers, timeout=5).json()
        return state if state.get("status") in wanted else None

    return wait_for(done, timeout, interval=0.2, what=f"{execution_id} in {wanted}")


def test_single_server_mode_runs_executions_without_a_separate_worker(start_service):
    base = start_service(workers=1)
    document = json.loads((EXAMPLES / "order-routing.json").read_text())
    response = httpx.post(f"{base}/api/executions", json={"workflow": document, "input": {"amount": 250}})
    assert response.status_code == 202
    execution_id = response.json()["id"]
    assert response.headers["location"] == f"/api/executions/{execution_id}"
    state = poll(base, execution_id, {"succeeded", "failed"})
    assert state["status"] == "succeeded"
    assert state["output"][0]["json"]["lane"] == "priority"


def test_api_only_with_a_separate_pool_and_idempotency(start_service, start_pool):
    base = start_service(workers=0)
    start_pool(concurrency=1)
    body = {"workflow": workflows.quick(), "input": {"n": 1}, "idempotencyKey": "k-1"}
    first = httpx.post(f"{base}/api/executions", json=body).json()["id"]
    second = httpx.post(f"{base}/api/executions", json=body).json()["id"]
    assert first == second
    assert _custom(poll(base, first, {"succeeded"})["output"]) == [{"n": 1}]


def test_bad_bodies_get_clear_codes_and_write_nothing(start_service, redis_conn):
    base = start_service(NODEDROP_MAX_BODY_BYTES="4096")
    url = f"{base}/api/executions"
    cases = [
        (httpx.post(url, content=b"x" * 5000, headers={"content-type": "application/json"}), 413),
        (httpx.post(url, content=b'{"workflow": {}}', headers={"content-type": "text/plain"}), 415),
        (httpx.post(url, content=b"{nope", headers={"content-type": "application/json"}), 400),
        (httpx.post(url, json=[1, 2]), 400),
        (httpx.post(url, json={"input": {}}), 422),  # the request model requires "workflow"
    ]
    for response, code in cases:
        assert response.status_code == code, response.text
        assert response.json()["error"]
    bad = workflows.quick()
    bad["nodes"].append({"id": "start", "type": "bogus", "name": "Bogus", "parameters": {}})
    invalid = httpx.post(url, json={"workflow": bad})
    assert invalid.status_code == 422
    problems = invalid.json()["problems"]
    assert {p["path"] for p in problems} >= {"nodes[2].type", "nodes[2].id"}
    assert all(p["message"] for p in problems)
    assert redis_conn.dbsize() == 0


def test_auth_when_a_token_is_set(start_service):
    base = start_service(NODEDROP_API_TOKEN="s3cret-token")
    body = {"workflow": workflows.quick()}
    missing = httpx.post(f"{base}/api/executions", json=body)
    wrong = httpx.post(f"{base}/api/executions", json=body, headers={"Authorization": "Bearer nope"})
    assert missing.status_code == wrong.status_code == 401
    assert "s3cret-token" not in missing.text + wrong.text
    assert missing.headers["www-authenticate"].startswith("Bearer")
    good = httpx.post(f"{base}/api/executions", json=body, headers={"Authorization": "Bearer s3cret-token"})
    assert good.status_code == 202
    assert httpx.get(f"{base}/api/executions/{good.json()['id']}").status_code == 401
    assert httpx.get(f"{base}/api/health").status_code == 200  # probes stay open


def test_health_matches_stats_json(start_service, redis_conn, settings, redis_url):
    from nodedrop_rq.submit import submit_execution

    for _ in range(3):
        submit_execution(workflows.quick(), connection=redis_conn, settings=settings)
    base = start_service()
    health = httpx.get(f"{base}/api/health").json()
    assert health["status"] == "healthy"
    assert set(health["queue"]) == {"waiting", "active", "completed", "failed"}
    stats = subprocess.run([sys.executable, "-m", "nodedrop_rq", "stats", "--json"], env=child_env(redis_url),
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
    numbers = json.loads(stats.stdout)["executions"]
    assert health["queue"] == {k: numbers[k] for k in ("waiting", "active", "completed", "failed")}
    assert health["queue"]["waiting"] == 3


def test_health_answers_503_quickly_when_redis_is_down(start_service):
    base = start_service(url=f"redis://:pw-not-shown@127.0.0.1:{free_port()}/0")
    started = time.monotonic()
    response = httpx.get(f"{base}/api/health", timeout=10)
    assert time.monotonic() - started < 2
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy" and body["reason"]
    assert "pw-not-shown" not in response.text
    submit = httpx.post(f"{base}/api/executions", json={"workflow": workflows.quick()}, timeout=15)
    assert submit.status_code == 503


def test_lookup_cancel_and_manual_review(start_service, start_pool):
    env = {"EXECUTION_RETRY_INTERVALS": "1"}
    base = start_service(**env)
    start_pool(concurrency=1, **env)
    assert httpx.get(f"{base}/api/executions/0123abcd").status_code == 404
    ok = httpx.post(f"{base}/api/executions", json={"workflow": workflows.quick()}).json()["id"]
    poll(base, ok, {"succeeded"})
    assert httpx.post(f"{base}/api/executions/{ok}/cancel").status_code == 409
    assert httpx.post(f"{base}/api/executions/{ok}/requeue").status_code == 409

    flaky = httpx.post(f"{base}/api/executions", json={"workflow": workflows.failing(),
                                                        "input": {"succeedOn": 3}}).json()["id"]
    poll(base, flaky, {"failed"})
    failed = httpx.get(f"{base}/api/executions/failed").json()
    assert failed["total"] == 1 and failed["executions"][0]["id"] == flaky
    assert httpx.post(f"{base}/api/executions/{flaky}/requeue").status_code == 202
    assert poll(base, flaky, {"succeeded"})["attempt"] == 3
    assert httpx.get(f"{base}/api/executions/failed").json()["total"] == 0


def test_cancel_a_queued_execution(start_service):
    base = start_service()
    execution_id = httpx.post(f"{base}/api/executions", json={"workflow": workflows.quick()}).json()["id"]
    response = httpx.post(f"{base}/api/executions/{execution_id}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"


def test_openapi_document_lists_every_route(start_service):
    document = httpx.get(f"{start_service()}/openapi.json").json()
    routes = {(path, method) for path, methods in document["paths"].items() for method in methods}
    assert routes >= {("/api/executions", "post"), ("/api/executions/{execution_id}", "get"),
                      ("/api/executions/{execution_id}/cancel", "post"), ("/api/executions/failed", "get"),
                      ("/api/executions/{execution_id}/requeue", "post"), ("/api/health", "get")}
    post = document["paths"]["/api/executions"]["post"]
    assert {"202", "400", "413", "415", "422"} <= set(post["responses"])


def test_sigterm_stops_the_service_and_its_workers_with_exit_0(start_service):
    start_service(workers=1)
    process = start_service.last
    process.send_signal(signal.SIGTERM)
    assert process.wait(40) == 0


def test_schedules_over_http(start_service, redis_conn):
    base = start_service(NODEDROP_API_TOKEN="tok")
    auth = {"Authorization": "Bearer tok"}
    assert httpx.get(f"{base}/api/schedules").status_code == 401
    created = httpx.post(f"{base}/api/schedules", headers=auth,
                         json={"workflow": workflows.quick(), "cron": "*/5 * * * *", "tz": "Europe/Berlin",
                               "name": "every five"})
    assert created.status_code == 201, created.text
    info = created.json()
    assert info["kind"] == "cron" and info["tz"] == "Europe/Berlin" and info["nextFire"]
    listed = httpx.get(f"{base}/api/schedules", headers=auth).json()
    assert [s["id"] for s in listed] == [info["id"]]
    bad = httpx.post(f"{base}/api/schedules", headers=auth, json={"workflow": workflows.quick(), "cron": "nope"})
    assert bad.status_code == 422 and "invalid cron" in bad.json()["problems"][0]["message"]
    past = httpx.post(f"{base}/api/schedules", headers=auth,
                      json={"workflow": workflows.quick(), "at": "2001-01-01T00:00:00Z"})
    assert past.status_code == 422
    assert httpx.delete(f"{base}/api/schedules/{info['id']}", headers=auth).status_code == 204
    assert httpx.delete(f"{base}/api/schedules/{info['id']}", headers=auth).status_code == 404
    assert httpx.get(f"{base}/api/schedules", headers=auth).json() == []


def _custom(output: list[dict]) -> list:
    """The input each output item carries: NodeDrop's manual trigger passes it on as customData."""
    assert all(item["json"]["done"] is True for item in output), output
    return [item["json"]["customData"] for item in output]
