"""Schema-driven fuzzing of the HTTP API from its own /openapi.json: no 5xx, no hang."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from nodedrop_rq.embedded_redis import free_port
from tests.conftest import ROOT, child_env, wait_for


@pytest.fixture(scope="module")
def api_base(redis_server):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "nodedrop_rq", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "0"],
        env=child_env(redis_server.url), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(base + "/api/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, 20, what="the API to listen")
    yield base
    process.terminate()
    process.wait(10)


def test_no_server_errors_on_any_operation(api_base):
    # schemathesis' own pytest plugin does not load under pytest 9; drive its strategies with hypothesis.
    schema = schemathesis.openapi.from_url(api_base + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 6
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
        def fuzz(case):
            response = case.call(base_url=api_base, timeout=5)
            case.validate_response(response, checks=[not_a_server_error])

        fuzz()


def test_no_server_errors_from_any_request_to_a_stored_webhook(api_base, redis_server):
    """Random methods, headers, query strings and bodies against a webhook with every check configured."""
    from hypothesis import strategies as st
    from redis import Redis

    from nodedrop_rq.settings import Settings
    from nodedrop_rq.workflows_store import WorkflowStore
    from tests.support import workflows

    options = {"hmacSecret": "fuzz", "ipWhitelist": "127.0.0.1, ::1", "allowedOrigins": "*.example.com",
               "rawBody": True, "propertyName": "executionId"}
    trigger = workflows.node("hook", "webhook-trigger", {"webhookUrl": "fuzz-hook", "options": options,
                                                         "authentication": "header", "headerName": "X-Key",
                                                         "expectedValue": "k"})
    WorkflowStore(Redis.from_url(redis_server.url), Settings.from_env(child_env(redis_server.url))).put(
        "fuzzed", workflows.chain("fuzzed", trigger))
    text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)

    @given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
           headers=st.dictionaries(st.sampled_from(["X-Key", "X-Webhook-Signature", "Origin", "Content-Type",
                                                    "Access-Control-Request-Method", "Authorization"]),
                                   text.map(str.strip)),
           query=text, body=st.binary(max_size=200))
    @settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    def fuzz(method, headers, query, body):
        response = httpx.request(method, f"{api_base}/webhook/fuzz-hook?{query}", headers=headers, content=body,
                                 timeout=5)
        assert response.status_code < 500, response.text

    fuzz()
