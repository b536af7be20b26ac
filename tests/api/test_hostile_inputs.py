"""Hostile request bodies and odd stored states, in process (no uvicorn): never a 5xx, always a JSON
answer naming the problem, and nothing written for a refused request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis import Redis

from nodedrop_rq.api import create_app
from nodedrop_rq.settings import Settings
from tests.conftest import child_env
from tests.support import workflows


def _refuse_constant(name: str) -> Any:
    raise AssertionError(f"{name} in a response: not JSON")


def strict_json(text: str) -> Any:
    return json.loads(text, parse_constant=_refuse_constant)


@pytest.fixture
def client(redis_url: str, redis_conn: Redis) -> Iterator[TestClient]:
    app = create_app(Settings.from_env(child_env(redis_url, NODEDROP_MAX_BODY_BYTES="65536")), connection=redis_conn)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def _nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


STORED_OUTPUTS = {
    "nested 300 deep": [{"json": _nested(300)}],
    "nested 900 deep": [{"json": _nested(900)}],
    "NaN and Infinity": [{"json": {"a": float("nan"), "b": float("inf")}}],
    "lone surrogate in a value": [{"json": {"a": "\ud800"}}],
    "lone surrogate in a key": [{"json": {"\udc00": 1}}],
    "not a list": {"not": "a list"},
}


@pytest.mark.parametrize("name", list(STORED_OUTPUTS))
def test_an_execution_whose_output_a_strict_serializer_refuses_is_still_answered(client, redis_conn, name):
    output = STORED_OUTPUTS[name]
    stored = json.dumps(output)  # what the worker writes: Python's json, which accepts all of the above
    redis_conn.hset("nodedrop:execution:x1", mapping={"id": "x1", "status": "succeeded", "output": stored,
                                                      "nodes": json.dumps({"n": {"name": "\ud800"}})})
    for _ in range(2):  # every read, not just the first
        response = client.get("/api/executions/x1")
        assert response.status_code == 200, response.text
        state = strict_json(response.text)
        assert state["id"] == "x1" and state["status"] == "succeeded"
    assert state["nodes"]["n"]["name"] == "\ufffd"
    if name.startswith("nested"):
        # The part past the depth limit is its JSON text: the data is all there.
        value, depth = state["output"][0]["json"], 0
        while isinstance(value, dict):
            value, depth = value["a"], depth + 1
        assert isinstance(value, str) and depth < 150
        assert json.loads(value) == _nested(int(name.split()[1]) - depth)
    elif name == "not a list":
        assert state["output"] is None and json.loads(state["unreadableFields"]["output"]) == output
    # The stored state is untouched by reading it.
    assert redis_conn.hget("nodedrop:execution:x1", "output").decode() == stored


json_leaves = st.one_of(
    st.none(), st.booleans(), st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(10**30), max_value=10**30), st.text(max_size=20),
    st.sampled_from(["\ud800", "a\udfffb", "", "*/5 * * * *", "9999-12-31T23:59:59-05:00", "99999999999d",
                     "0001-01-01T00:00:00+14:00", "1e400s", "Europe/Berlin", "nope/zone"]))
json_values = st.recursive(json_leaves, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)
fields = st.sampled_from(["workflow", "input", "idempotencyKey", "cron", "tz", "at", "in", "name", "\ud800"])
bodies = st.one_of(
    st.dictionaries(fields, json_values, max_size=5),
    st.dictionaries(fields, json_values, max_size=4).map(lambda d: {"workflow": workflows.quick(), **d}),
    json_values,
)


def _encode(body: Any) -> bytes:
    # ensure_ascii writes lone surrogates as \ud800 escapes, as a hostile client would send them.
    return json.dumps(body).encode()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, route=st.sampled_from(["/api/executions", "/api/schedules"]))
def test_hostile_bodies_get_a_4xx_json_answer_or_succeed(client, redis_conn, body, route):
    before = redis_conn.dbsize()
    response = client.post(route, content=_encode(body), headers={"Content-Type": "application/json"})
    assert response.status_code < 500, (body, response.text)
    answer = strict_json(response.text)
    if response.status_code >= 400:
        assert answer["error"], answer
        assert answer.get("detail") or answer.get("problems"), answer
        assert redis_conn.dbsize() == before, (body, redis_conn.keys("*"))
    else:
        assert response.status_code in (201, 202)


@pytest.mark.parametrize(("raw", "needle"), [
    (b'{"workflow": {"name": "\\ud800"}}', "lone surrogate \\ud800 in workflow.name"),
    (b'{"idempotencyKey": "\\udc00", "workflow": {}}', "lone surrogate \\udc00 in idempotencyKey"),
    (b'{"workflow": {"n": ' + b"1" * 5000 + b"}}", "4300 digits"),
    (b'{"workflow": ' + b"[" * 30_000 + b"]" * 30_000 + b"}", "nested too deeply"),
    (b'{"workflow": {}, "input": {"a": Infinity}}', "Infinity is not valid JSON"),
])
def test_bodies_that_are_not_strict_json_are_400_naming_the_problem(client, redis_conn, raw, needle):
    response = client.post("/api/executions", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "malformed JSON"
    assert needle in response.json()["detail"]
    assert redis_conn.dbsize() == 0


@pytest.mark.parametrize(("body", "path", "needle"), [
    ({"in": "99999999999d"}, "in", "at most 36525d"),
    ({"in": "9" * 60 + "s"}, "in", "at most"),
    ({"every": "1s", "in": "1e9"}, "in", "invalid delay"),
    ({"at": "9999-12-31T23:59:59-05:00"}, "at", "outside the years 1 to 9999"),
    ({"at": "0001-01-01T00:00:00+14:00"}, "at", "outside the years 1 to 9999"),
    ({"cron": "0 0 * * *", "tz": "../../etc/passwd"}, "cron", "unknown time zone"),
])
def test_schedule_times_beyond_pythons_range_are_422(client, redis_conn, body, path, needle):
    response = client.post("/api/schedules", json={"workflow": workflows.quick(), **body})
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["error"] == "invalid schedule"
    assert answer["problems"][0]["path"] == path and needle in answer["problems"][0]["message"], answer
    assert redis_conn.dbsize() == 0


def test_bodies_are_validated_by_the_models_that_the_openapi_document_shows(client):
    document = client.get("/openapi.json").json()
    submit_schema = document["paths"]["/api/executions"]["post"]["requestBody"]["content"]["application/json"]
    assert set(submit_schema["schema"]["properties"]) == {"workflow", "input", "idempotencyKey", "queue", "shardKey"}
    response = client.post("/api/executions", json={"workflow": "not an object", "input": 5, "idempotencyKey": ""})
    assert response.status_code == 422
    problems = {p["path"]: p["message"] for p in response.json()["problems"]}
    assert set(problems) == {"workflow", "input", "idempotencyKey"}, problems
    assert problems["input"] == "must be a JSON object (one item) or a list of objects (items)"
    assert response.json()["error"] == "invalid request"
