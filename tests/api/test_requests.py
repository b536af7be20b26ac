"""What the service accepts and refuses: request bodies, authentication, health, the OpenAPI document."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from nodedrop_rq.embedded_redis import free_port
from tests.support import workflows

LIMIT = 2048
TOKEN = "tok-7f3a9c1e5b2d"  # noqa: S105 - a test value


def _invalid_workflow() -> dict:
    return workflows.chain("bad", workflows.node("start", "manual-trigger"), workflows.node("x", "no-such-type"))


def test_bad_bodies_get_exact_codes_and_write_nothing(start_service, redis_conn):
    service = start_service(workers=0, NODEDROP_MAX_BODY_BYTES=str(LIMIT))
    post = service.http.post
    json_type = {"Content-Type": "application/json"}
    valid = json.dumps({"workflow": workflows.quick()}).encode()

    def chunked(size: int):
        for _ in range(size // 100):
            yield b" " * 100

    cases = [
        # (description, response, status, error)
        ("declared too large", post("/api/executions", content=b" " * (LIMIT + 1) + valid, headers=json_type),
         413, "request body too large"),
        ("chunked too large", post("/api/executions", content=chunked(LIMIT * 4), headers=json_type),
         413, "request body too large"),
        ("text/plain", post("/api/executions", content=valid, headers={"Content-Type": "text/plain"}),
         415, "unsupported media type"),
        ("form", post("/api/executions", data={"workflow": "x"}), 415, "unsupported media type"),
        ("no content type", post("/api/executions", content=valid, headers={"Content-Type": ""}),
         415, "unsupported media type"),
        ("malformed", post("/api/executions", content=b'{"workflow": {', headers=json_type), 400, "malformed JSON"),
        ("empty", post("/api/executions", content=b"", headers=json_type), 400, "malformed JSON"),
        ("NaN", post("/api/executions", content=b'{"workflow": {}, "input": {"a": NaN}}', headers=json_type),
         400, "malformed JSON"),
        ("not UTF-8", post("/api/executions", content=b'{"workflow": "\xff"}', headers=json_type),
         400, "malformed JSON"),
        ("array", post("/api/executions", json=[valid.decode()]), 400, "invalid request body"),
        ("string", post("/api/executions", json="workflow"), 400, "invalid request body"),
        ("no workflow", post("/api/executions", json={"input": {}}), 422, "invalid request"),
        ("null workflow", post("/api/executions", json={"workflow": None}), 422, "invalid request"),
        ("invalid workflow", post("/api/executions", json={"workflow": _invalid_workflow()}),
         422, "invalid workflow"),
        ("empty workflow", post("/api/executions", json={"workflow": {}}), 422, "invalid workflow"),
        ("bad input", post("/api/executions", json={"workflow": workflows.quick(), "input": 5}),
         422, "invalid request"),
        ("bad key", post("/api/executions", json={"workflow": workflows.quick(), "idempotencyKey": 5}),
         422, "invalid request"),
        ("long key", post("/api/executions", json={"workflow": workflows.quick(), "idempotencyKey": "k" * 201}),
         422, "invalid request"),
    ]
    for description, response, status, error in cases:
        assert response.status_code == status, (description, response.text)
        assert response.headers["content-type"] == "application/json", description
        assert response.json()["error"] == error, (description, response.text)
    # Nothing reached Redis: no state, no job, no idempotency key, no queue entry.
    assert redis_conn.dbsize() == 0, redis_conn.keys("*")

    problems = cases[13][1].json()["problems"]
    assert problems == [{"path": "nodes[1].type", "message": problems[0]["message"], "nodeId": "x"}]
    assert "no-such-type" in problems[0]["message"]
    assert cases[15][1].json()["problems"][0]["path"] == "input"
    assert cases[16][1].json()["problems"][0]["path"] == "idempotencyKey"
    assert cases[0][1].json()["limit"] == LIMIT

    # A JSON media type with parameters is fine, and the body just under the limit is accepted.
    accepted = post("/api/executions", content=valid, headers={"Content-Type": "application/json; charset=utf-8"})
    assert accepted.status_code == 202, accepted.text
    assert redis_conn.llen("rq:queue:executions") == 1


def test_bearer_token_protects_every_route_but_health_and_docs(start_service):
    service = start_service(workers=0, NODEDROP_API_TOKEN=TOKEN)
    anonymous = httpx.Client(base_url=service.base_url, timeout=10)
    routes = [("GET", "/api/executions/failed"), ("GET", "/api/executions/abc"),
              ("POST", "/api/executions/abc/cancel"), ("POST", "/api/executions/abc/requeue"),
              ("POST", "/api/executions")]
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {TOKEN}x"},
                    {"Authorization": f"Basic {TOKEN}"}, {"Authorization": TOKEN}):
        for method, path in routes:
            response = anonymous.request(method, path, headers=headers, json={"workflow": workflows.quick()})
            assert response.status_code == 401, (headers, method, path, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json()["error"] == "unauthorized"
            assert TOKEN not in response.text

    # The right token opens them (the service client sends it).
    assert service.http.get("/api/executions/failed").status_code == 200
    assert service.http.get("/api/executions/abc").status_code == 404
    submitted = service.submit(workflows.quick())
    assert submitted.status_code == 202
    assert service.http.get(f"/api/executions/{submitted.json()['id']}").status_code == 200
    # Health and the API description stay open.
    assert anonymous.get("/api/health").status_code == 200
    document = anonymous.get("/openapi.json")
    assert document.status_code == 200
    assert document.json()["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert anonymous.get("/docs").status_code == 200
    anonymous.close()
    assert TOKEN not in service.output()


def test_without_a_token_no_authentication_is_asked(start_service):
    service = start_service(workers=0)
    assert service.http.get("/api/executions/failed").status_code == 200
    assert "securitySchemes" not in service.http.get("/openapi.json").json().get("components", {})


def test_health_has_the_seed_shape_plus_per_queue_counts(start_service):
    service = start_service(workers=0)
    response = service.http.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    # The seed's document: {"status": "healthy", "queue": {"waiting", "active", "completed", "failed"}}.
    assert body["status"] == "healthy"
    assert set(body["queue"]) == {"waiting", "active", "completed", "failed"}
    assert set(body) == {"status", "queue", "queues"}
    assert body["queue"] == {"waiting": 0, "active": 0, "completed": 0, "failed": 0}
    assert body["queues"] == {"executions": {"waiting": 0, "active": 0, "completed": 0, "failed": 0,
                                             "scheduled": 0}}
    service.submit(workflows.quick())
    assert service.http.get("/api/health").json()["queue"]["waiting"] == 1


def _timed_get(client: httpx.Client, path: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = client.get(path)
    return response, time.monotonic() - started


def test_health_with_redis_down_is_503_within_2_s(start_service):
    password = "pw-9d8e7f"  # noqa: S105 - a test value
    service = start_service(workers=0, redis_url_override=f"redis://:{password}@127.0.0.1:{free_port()}/0")
    response, took = _timed_get(service.http, "/api/health")
    assert response.status_code == 503 and took < 2.0, (took, response.text)
    body = response.json()
    assert body["status"] == "unhealthy" and "127.0.0.1" in body["reason"]
    assert password not in response.text
    # Other routes answer 503 JSON too, never 500.
    for response in (service.http.get("/api/executions/abc"), service.submit(workflows.quick()),
                     service.http.get("/api/executions/failed")):
        assert response.status_code == 503, response.text
        assert response.json()["error"] == "redis unavailable" and password not in response.text
    assert password not in service.output()


@pytest.fixture
def silent_redis():
    """A port that accepts connections and never answers (a hung or black-holed Redis)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"


def test_health_with_a_silent_redis_is_503_within_2_s(start_service, silent_redis):
    service = start_service(workers=0, redis_url_override=silent_redis)
    response, took = _timed_get(service.http, "/api/health")
    assert response.status_code == 503 and took < 2.0, (took, response.text)
    assert response.json()["status"] == "unhealthy"


def test_openapi_document_lists_every_route(start_service):
    service = start_service(workers=0)
    document = service.http.get("/openapi.json").json()
    paths = document["paths"]
    mine = {path: set(item) for path, item in paths.items() if path.startswith(("/api/executions", "/api/health"))}
    assert mine == {
        "/api/executions": {"get", "post"},
        "/api/executions/failed": {"get"},
        "/api/executions/{execution_id}/events": {"get"},
        "/api/executions/{execution_id}": {"get"},
        "/api/executions/{execution_id}/cancel": {"post"},
        "/api/executions/{execution_id}/requeue": {"post"},
        "/api/health": {"get"},
    }
    submit = paths["/api/executions"]["post"]
    assert set(submit["responses"]) >= {"202", "400", "413", "415", "422", "503"}
    assert "Location" in submit["responses"]["202"]["headers"]
    request_schema = submit["requestBody"]["content"]["application/json"]["schema"]
    assert request_schema["required"] == ["workflow"]
    assert set(request_schema["properties"]) == {"workflow", "input", "idempotencyKey", "queue", "shardKey"}
    assert submit["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ProblemsResponse")
    assert set(paths["/api/executions/{execution_id}/cancel"]["post"]["responses"]) >= {"200", "202", "404", "409"}
    assert set(paths["/api/executions/{execution_id}/requeue"]["post"]["responses"]) >= {"202", "404", "409"}
    assert {p["name"] for p in paths["/api/executions/failed"]["get"]["parameters"]} == {"limit", "offset", "queue"}
    assert set(paths["/api/health"]["get"]["responses"]) == {"200", "503"}
    # Every 422 documented is one the service really sends (no generated HTTPValidationError).
    assert "HTTPValidationError" not in json.dumps(document)
    schemas = document["components"]["schemas"]
    assert {"SubmitResponse", "ExecutionState", "FailedList", "HealthResponse", "UnhealthyResponse",
            "ErrorResponse", "ProblemsResponse", "Problem"} <= set(schemas)
