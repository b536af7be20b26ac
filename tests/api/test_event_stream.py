"""GET /api/executions/{id}/events against a real service, worker pool and Redis: a client that
disconnects mid-execution and reconnects with Last-Event-ID sees every event exactly once; streams end
with the execution, are bounded in time, need the token, and hold no thread (other requests go on)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx

from nodedrop_rq import keys
from tests.conftest import wait_for
from tests.support import workflows

TOKEN = "tok-sse-5d1f"  # noqa: S105 - a test value
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def gated() -> dict[str, Any]:
    """trigger -> gate (waits for the test) -> flaky (fails on attempt 1) -> set."""
    return workflows.chain("gated", workflows.start(), workflows.function("gate", "wait_for_gate"),
                           workflows.function("flaky", "fail_before_attempt"),
                           workflows.set_value("mark", "done", True))


def messages(service: Any, execution_id: str, last_event_id: str | None = None) -> Iterator[dict[str, str]]:
    """The SSE messages of one connection, as {id, event, data}, until the server ends the stream."""
    headers = dict(AUTH)
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    with httpx.stream("GET", f"{service.base_url}/api/executions/{execution_id}/events", headers=headers,
                      timeout=httpx.Timeout(10, read=10)) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        message: dict[str, str] = {}
        for line in response.iter_lines():
            if not line:
                if "event" in message:
                    yield message
                message = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                message[name] = message.get(name, "") + value


def logged(redis_conn, execution_id: str) -> list[tuple[str, str]]:
    return [(i.decode(), f[b"e"].decode()) for i, f in redis_conn.xrange(keys.execution_events(execution_id))]


def test_a_client_that_reconnects_with_last_event_id_sees_every_event_once(start_service, redis_conn):
    service = start_service(workers=1, NODEDROP_API_TOKEN=TOKEN, NODEDROP_SSE_HEARTBEAT="1",
                            NODEDROP_SSE_MAX_SECONDS="3", EXECUTION_RETRY_INTERVALS="1")
    execution_id = service.submit(gated(), {"tag": "sse", "succeedOn": 2}).json()["id"]

    # First connection: the current state, then events up to the gate node's start; then the client goes.
    first = messages(service, execution_id)
    seen = [next(first)]
    assert seen[0]["event"] == "state" and json.loads(seen[0]["data"])["id"] == execution_id
    for message in first:
        seen.append(message)
        if message["event"] == "node-started" and json.loads(message["data"])["nodeId"] == "gate":
            break
    first.close()

    # While nobody listens: the gate opens, attempt 1 fails, the retry runs to the end.
    redis_conn.set("test:gate:sse", "1")
    service.wait_status(execution_id, "succeeded", 60)

    # Reconnect as an EventSource does, with the id of the last message seen (again after each end of a
    # stream, which NODEDROP_SSE_MAX_SECONDS also brings), until the terminal event has arrived.
    while seen[-1]["event"] not in ("completed", "failed", "cancelled"):
        seen += list(messages(service, execution_id, seen[-1]["id"]))
    events = [m for m in seen if m["event"] != "state"]
    assert [(m["id"], m["data"]) for m in events] == logged(redis_conn, execution_id)  # each once, in order
    assert [m["event"] for m in events] == [
        "started", "node-started", "node-completed", "node-started",  # trigger, gate ...
        "node-completed", "node-started", "node-failed", "node-skipped", "retrying",  # flaky fails on attempt 1
        "started", "node-started", "node-completed", "node-started", "node-completed", "node-started",
        "node-completed", "node-started", "node-completed", "completed"]
    assert all(json.loads(m["data"])["type"] == m["event"] for m in events)

    # Having seen the end, a reconnect gets 204 (an EventSource stops); a new client gets the final state.
    end = httpx.get(f"{service.base_url}/api/executions/{execution_id}/events",
                    headers={**AUTH, "Last-Event-ID": events[-1]["id"]})
    assert end.status_code == 204
    late = list(messages(service, execution_id))
    assert [m["event"] for m in late] == ["state"] and late[0]["id"] == "end"
    assert json.loads(late[0]["data"])["status"] == "succeeded"

    # The log outlives the end briefly (keys.EVENT_LOG_TERMINAL_TTL); the state keeps its own TTL.
    assert 0 < redis_conn.ttl(keys.execution_events(execution_id)) <= keys.EVENT_LOG_TERMINAL_TTL
    unknown = httpx.get(f"{service.base_url}/api/executions/{'0' * 32}/events", headers=AUTH)
    assert unknown.status_code == 404 and unknown.json()["error"] == "execution not found"
    anonymous = httpx.get(f"{service.base_url}/api/executions/{execution_id}/events")
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "unauthorized"


def test_open_streams_hold_no_thread_and_end_with_the_execution(start_service):
    # More open streams than the thread pool that serves the other routes has threads (40).
    streams = 60
    service = start_service(workers=0, NODEDROP_API_TOKEN=TOKEN, NODEDROP_SSE_HEARTBEAT="1",
                            NODEDROP_SSE_MAX_CONNECTIONS=str(streams))
    execution_id = service.submit(workflows.quick()).json()["id"]  # no worker: it stays queued
    request = (f"GET /api/executions/{execution_id}/events HTTP/1.1\r\nHost: x\r\n"
               f"Authorization: Bearer {TOKEN}\r\n\r\n").encode()
    sockets = []
    try:
        for _ in range(streams):
            sock = socket.create_connection(("127.0.0.1", service.port), timeout=10)
            sock.sendall(request)
            sockets.append(sock)
        for sock in sockets:
            assert b"event: state" in _read_until(sock, b"event: state")
        # Every stream is open and waiting; other requests are answered, and one stream more is refused.
        assert service.http.get(f"/api/executions/{execution_id}").json()["status"] == "queued"
        assert service.http.get("/api/executions", params={"status": "queued"}).json()["executions"][0]["id"] \
            == execution_id
        refused = httpx.get(f"{service.base_url}/api/executions/{execution_id}/events", headers=AUTH)
        assert refused.status_code == 503 and refused.json()["error"] == "too many event streams"
        # The cancel is the terminal event: every stream delivers it and ends.
        assert service.http.post(f"/api/executions/{execution_id}/cancel").status_code == 200
        for sock in sockets:
            tail = _read_until(sock, b"0\r\n\r\n")  # the chunked body's last chunk: the server ended it
            assert b"event: cancelled" in tail
    finally:
        for sock in sockets:
            sock.close()
    wait_for(lambda: httpx.get(f"{service.base_url}/api/executions/{execution_id}/events",
                               headers=AUTH).status_code == 200, 10, what="the streams' slots to be free")


def _read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data
