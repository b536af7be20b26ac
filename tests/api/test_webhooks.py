"""Stored workflows and their webhook triggers against one real service (with a pool of 2 workers) and Redis:
CRUD and paging, each response mode and response-data option, HMAC, authentication, IP list, origins and
CORS preflight, wrong method, unknown webhook, body limit, an update while the old version runs, the CLI.
Behaviour follows NodeDrop's backend/src/routes/webhook.ts and services/TriggerService.ts."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
from typing import Any

import httpx
import pytest
from redis import Redis

from tests.api.conftest import Service, launch
from tests.conftest import ROOT, child_env
from tests.support import workflows

TOKEN = "tok-hooks-8c2e"  # noqa: S105 - a test value
WAIT_SECONDS = 3


@pytest.fixture(scope="module")
def redis(redis_server) -> Redis:
    connection = Redis.from_url(redis_server.url)
    connection.flushall()
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def service(redis, redis_server, tmp_path_factory) -> Service:
    started = launch(redis_server.url, tmp_path_factory.mktemp("webhooks") / "serve.log", workers=2,
                     NODEDROP_API_TOKEN=TOKEN, NODEDROP_WEBHOOK_WAIT_SECONDS=str(WAIT_SECONDS),
                     NODEDROP_MAX_BODY_BYTES="65536", EXECUTION_RETRY_INTERVALS="0")
    yield started
    started.stop()


def hook_flow(path: str, *tail: dict[str, Any], method: str = "POST", **parameters: Any) -> dict[str, Any]:
    trigger = workflows.node("hook", "webhook-trigger", {"webhookUrl": path, "httpMethod": method, **parameters})
    return workflows.chain(f"hook-{path}", trigger, *tail)


def echo(code: str = "return [{n: items[0].body.n, headers: items[0].headers}, {n: 2}]") -> dict[str, Any]:
    return workflows.node("echo", "code", {"code": code})


def put(service: Service, workflow_id: str, document: dict[str, Any]) -> httpx.Response:
    return service.http.put(f"/api/workflows/{workflow_id}", json=document)


def call(service: Service, path: str, method: str = "POST", **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{service.base_url}/webhook/{path}", timeout=WAIT_SECONDS + 10, **kwargs)


def test_stored_workflows_crud_paging_every_problem_and_the_token(service):
    assert httpx.put(f"{service.base_url}/api/workflows/w-a", json=workflows.quick()).status_code == 401
    bad = hook_flow("", echo(), authentication="basic")
    bad["nodes"].append({"id": "x", "type": "bogus", "name": "X", "parameters": {}})
    invalid = put(service, "w-bad", {"version": "1", "workflow": bad})
    assert invalid.status_code == 422
    assert {"workflow.nodes[2].type", "workflow.nodes[0].parameters.webhookUrl",
            "workflow.nodes[0].parameters.username", "workflow.nodes[0].parameters.password"} \
        <= {p["path"] for p in invalid.json()["problems"]}
    assert service.http.get("/api/workflows/w-bad").status_code == 404

    secret = hook_flow("crud-1", echo(), options={"hmacSecret": "never-shown-7"})
    created = put(service, "w-a", secret)
    assert created.status_code == 201 and created.json()["version"] == 1
    assert "never-shown-7" not in created.text
    again = put(service, "w-a", secret)
    assert again.status_code == 200 and again.json()["changed"] is False and again.json()["version"] == 1
    shown = service.http.get("/api/workflows/w-a")
    assert "never-shown-7" not in shown.text and shown.json()["webhooks"][0]["path"] == "crud-1"
    assert put(service, "w-a", shown.json()["workflow"]).json()["changed"] is False  # secrets kept on a put-back
    assert put(service, "w-b", secret).status_code == 409  # its webhook is w-a's
    for name in ("w-b", "w-c", "w-d"):
        assert put(service, name, workflows.quick()).status_code == 201
    ids, cursor = [], None
    while True:
        page = service.http.get("/api/workflows", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        ids += [w["id"] for w in page.json()["workflows"]]
        cursor = page.json()["nextCursor"]
        if cursor is None:
            break
    assert [i for i in ids if i.startswith("w-")] == ["w-a", "w-b", "w-c", "w-d"]
    assert service.http.delete("/api/workflows/w-a").status_code == 204
    assert service.http.get("/api/workflows/w-a").status_code == 404
    assert service.http.delete("/api/workflows/w-a").status_code == 404
    assert call(service, "crud-1").status_code == 404
    run = service.http.post("/api/workflows/w-b/executions", json={"input": {"n": 3}, "idempotencyKey": "wb-1"})
    assert run.status_code == 202
    state = service.wait_status(run.json()["id"], "succeeded", 30)
    assert (state["workflowId"], state["workflowVersion"]) == ("w-b", 1)
    assert service.http.post("/api/workflows/nope/executions").status_code == 404
    scheduled = service.http.post("/api/schedules", json={"workflowId": "w-b", "cron": "0 3 * * *"})
    assert scheduled.status_code == 201 and scheduled.json()["workflowId"] == "w-b"
    assert service.http.delete(f"/api/schedules/{scheduled.json()['id']}").status_code == 204
    both = service.http.post("/api/schedules", json={"workflowId": "w-b", "workflow": workflows.quick(), "in": "5m"})
    assert both.status_code == 422
    assert service.http.post("/api/schedules", json={"workflowId": "nope", "in": "5m"}).status_code == 422
    paths = httpx.get(f"{service.base_url}/openapi.json").json()["paths"]
    assert {"/api/workflows", "/api/workflows/{workflow_id}", "/api/workflows/{workflow_id}/executions",
            "/webhook/{path}"} <= set(paths)


def test_on_received_answers_at_once_and_the_request_becomes_the_trigger_item(service):
    assert put(service, "on-received", hook_flow("recv-1", echo())).status_code == 201
    answer = call(service, "recv-1?q=1", json={"n": 5}, headers={"X-Extra": "yes"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["success"] is True and body["message"] == "Webhook received and workflow triggered"
    assert body["testMode"] is False and body["timestamp"]
    state = service.wait_status(body["executionId"], "succeeded", 30)
    assert (state["workflowId"], state["workflowVersion"]) == ("on-received", 1)
    assert state["output"][0]["json"]["n"] == 5 and state["output"][0]["json"]["headers"]["x-extra"] == "yes"

    wrong = call(service, "recv-1", "GET")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert wrong.json()["allowed_methods"] == ["POST"] and wrong.json()["success"] is False
    unknown = call(service, "no-such-hook")
    assert unknown.status_code == 404 and unknown.json()["error"] == "Not Found"
    too_large = call(service, "recv-1", content=b"x" * 70_000, headers={"content-type": "text/plain"})
    assert too_large.status_code == 413 and too_large.json()["error"]
    malformed = call(service, "recv-1", content=b"{nope", headers={"content-type": "application/json"})
    assert malformed.status_code == 400


def test_last_node_answers_with_each_response_data_option(service, redis):
    for mode in ("firstEntryJson", "allEntries", "noData"):
        assert put(service, f"last-{mode}", hook_flow(f"last-{mode}", echo(), responseMode="lastNode",
                                                      responseData=mode)).status_code == 201
    assert call(service, "last-firstEntryJson", json={"n": 7}).json()["n"] == 7
    assert [e["n"] for e in call(service, "last-allEntries", json={"n": 8}).json()] == [8, 2]
    no_data = call(service, "last-noData", json={"n": 9})
    assert no_data.status_code == 200 and no_data.content == b""

    failing = workflows.node("boom", "stop-and-error", {"errorMessage": "planned stop"})
    assert put(service, "last-failing", hook_flow("last-failing", failing, responseMode="lastNode")).status_code == 201
    failed = call(service, "last-failing", json={})
    assert failed.status_code == 500 and failed.json()["success"] is False and failed.json()["executionId"]

    gate = workflows.function("gate", "wait_for_gate")
    assert put(service, "last-slow", hook_flow("last-slow", gate, responseMode="lastNode")).status_code == 201
    slow = call(service, "last-slow", json={})
    assert slow.status_code == 504 and slow.json()["executionId"]  # past NODEDROP_WEBHOOK_WAIT_SECONDS
    redis.set("test:gate:default", "1")  # the webhook item has no tag: the gate's default key
    service.wait_status(slow.json()["executionId"], "succeeded", 30)


def test_hmac_authentication_ip_list_and_origins(service, redis):
    assert put(service, "signed", hook_flow("signed-1", echo(), options={"hmacSecret": "k3y"})).status_code == 201
    body = json.dumps({"n": 1}).encode()
    headers = {"content-type": "application/json"}
    bad = call(service, "signed-1", content=body, headers={**headers, "X-Webhook-Signature": "sha256=" + "0" * 64})
    assert bad.status_code == 403 and bad.json()["message"] == "Invalid HMAC signature" and "k3y" not in bad.text
    good_sig = hmac.new(b"k3y", body, hashlib.sha256).hexdigest()
    assert call(service, "signed-1", content=body, headers={**headers, "X-Webhook-Signature": good_sig}) \
        .status_code == 200

    basic = {"type": "basic", "settings": {"username": "ann", "password": "pa:ss"}}
    assert put(service, "basic", hook_flow("basic-1", echo(), authentication=basic, responseMode="lastNode")) \
        .status_code == 201
    assert call(service, "basic-1", json={"n": 1}).status_code == 401
    assert call(service, "basic-1", json={"n": 1}, auth=("ann", "wrong")).status_code == 401
    answered = call(service, "basic-1", json={"n": 4}, auth=("ann", "pa:ss"))
    assert answered.status_code == 200 and answered.json()["n"] == 4
    assert "authorization" not in answered.json()["headers"]  # the checked credentials are not passed on
    query = {"type": "query", "settings": {"queryParam": "token", "expectedValue": "qs-secret-9"}}
    assert put(service, "query", hook_flow("query-1", echo(), authentication=query)).status_code == 201
    assert call(service, "query-1?token=nope", json={}).status_code == 401
    assert call(service, "query-1?token=qs-secret-9", json={}).status_code == 200
    assert "qs-secret-9" not in service.output() and "k3y" not in service.output()  # not in the access log
    assert "POST /webhook/query-1 HTTP" in service.output()

    assert put(service, "far", hook_flow("far-1", echo(), options={"ipWhitelist": "10.0.0.0/8"})).status_code == 201
    refused = call(service, "far-1", json={})
    assert refused.status_code == 403 and refused.json()["message"] == "IP address not whitelisted"
    assert put(service, "near", hook_flow("near-1", echo(), options={"ipWhitelist": "10.0.0.0/8, 127.0.0.1"})) \
        .status_code == 201
    assert call(service, "near-1", json={}).status_code == 200

    cors = hook_flow("cors-1", echo(), options={"allowedOrigins": "https://app.example.com"})
    assert put(service, "cors", cors).status_code == 201
    assert call(service, "cors-1", json={}, headers={"Origin": "https://evil.example.net"}).status_code == 403
    allowed = call(service, "cors-1", json={}, headers={"Origin": "https://app.example.com"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    preflight = call(service, "cors-1", "OPTIONS", headers={"Origin": "https://app.example.com",
                                                            "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == \
        "https://app.example.com"
    assert call(service, "cors-1", "OPTIONS", headers={"Origin": "https://evil.example.net",
                                                       "Access-Control-Request-Method": "POST"}).status_code == 403


def versioned(marker: str) -> dict[str, Any]:
    return workflows.chain("versioned", workflows.start(), workflows.function("gate", "wait_for_gate"),
                           workflows.set_value("mark", "version", marker))


def test_an_execution_of_the_old_version_finishes_on_it_while_a_new_one_uses_the_new(service, redis):
    assert put(service, "evolving", versioned("v1")).status_code == 201
    old = service.http.post("/api/workflows/evolving/executions", json={"input": {"tag": "old"}}).json()["id"]
    service.wait_status(old, "running", 30)  # held at its gate
    updated = put(service, "evolving", versioned("v2"))
    assert updated.status_code == 200 and updated.json()["version"] == 2
    redis.set("test:gate:new", "1")
    new = service.http.post("/api/workflows/evolving/executions", json={"input": {"tag": "new"}}).json()["id"]
    new_state = service.wait_status(new, "succeeded", 30)
    assert service.http.get(f"/api/executions/{old}").json()["status"] == "running"
    redis.set("test:gate:old", "1")
    old_state = service.wait_status(old, "succeeded", 30)
    assert (old_state["workflowVersion"], old_state["output"][0]["json"]["version"]) == (1, "v1")
    assert (new_state["workflowVersion"], new_state["output"][0]["json"]["version"]) == (2, "v2")


def cli(redis_url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nodedrop_rq", *args], env=child_env(redis_url), cwd=ROOT,
                          input=stdin, capture_output=True, text=True, timeout=60)


def test_cli_workflow_commands_and_submit_by_id(service, redis_server):
    url = redis_server.url
    put_ = cli(url, "workflow", "put", "-", "--id", "from-cli", "--json", stdin=json.dumps(workflows.quick()))
    assert put_.returncode == 0, put_.stderr
    assert json.loads(put_.stdout)["version"] == 1
    invalid = cli(url, "workflow", "put", "-", "--id", "broken", stdin=json.dumps({"nodes": []}))
    assert invalid.returncode == 2 and "nothing was stored" in invalid.stderr
    listed = cli(url, "workflow", "list", "--json")
    assert "from-cli" in [w["id"] for w in json.loads(listed.stdout)["workflows"]]
    assert json.loads(cli(url, "workflow", "show", "from-cli").stdout)["workflow"]["name"] == "quick"
    ran = cli(url, "submit", "--workflow-id", "from-cli", "--input", '{"n": 1}', "--wait", "--timeout", "30",
              "--json")
    assert ran.returncode == 0, ran.stderr
    state = json.loads(ran.stdout)
    assert (state["status"], state["workflowId"], state["workflowVersion"]) == ("succeeded", "from-cli", 1)
    assert cli(url, "submit", "--workflow-id", "missing").returncode == 1
    assert cli(url, "workflow", "delete", "from-cli").returncode == 0
    assert cli(url, "workflow", "show", "from-cli").returncode == 1
