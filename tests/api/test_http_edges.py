"""What uvicorn and the body reader do with broken HTTP, on a real `nodedrop-rq serve` over raw sockets."""

from __future__ import annotations

import json
import socket
import time

from tests.conftest import wait_for
from tests.support import workflows

BODY_TIMEOUT = 1


def _exchange(port: int, request: bytes, timeout: float, close_after_send: bool = False) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(request)
        if close_after_send:
            return b""
        received = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            received += chunk
        return received


def _split(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers, body


def _post(path: str, body: bytes, content_length: str | None = None) -> bytes:
    length = str(len(body)) if content_length is None else content_length
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n").encode() + body


def test_broken_http_gets_json_answers_in_bounded_time_and_no_traceback(start_service, redis_conn):
    service = start_service(workers=0, NODEDROP_API_BODY_TIMEOUT=str(BODY_TIMEOUT))
    valid = json.dumps({"workflow": workflows.quick()}).encode()

    # A body shorter than its Content-Length: 408 once the body deadline has passed, not a hang.
    for path in ("/api/executions", "/api/schedules"):
        started = time.monotonic()
        raw = _exchange(service.port, _post(path, valid[:20], content_length=str(len(valid))), timeout=10)
        took = time.monotonic() - started
        status, headers, body = _split(raw)
        assert status == 408, raw
        assert BODY_TIMEOUT <= took < BODY_TIMEOUT + 3, took
        assert headers["content-type"] == "application/json"
        assert json.loads(body)["error"] == "request body timeout"

    # Malformed Content-Length headers are refused by the HTTP parser, with a JSON body naming it.
    for length in ("abc", "-1", "1, 2", "99999999999999999999999"):
        status, headers, body = _split(_exchange(service.port, _post("/api/executions", valid, length), timeout=10))
        assert status in (400, 413), (length, body)
        assert headers["content-type"] == "application/json", (length, headers)
        answer = json.loads(body)
        assert answer["error"] in ("malformed HTTP request", "invalid Content-Length header",
                                   "request body too large"), answer
        if status == 400:
            assert answer["detail"], answer

    # Clients that go away mid-body.
    for _ in range(3):
        _exchange(service.port, _post("/api/executions", valid[:10], content_length=str(len(valid))), timeout=5,
                  close_after_send=True)
    # The service still answers, wrote nothing, and logged no traceback for any of the above.
    wait_for(lambda: service.http.get("/api/health").status_code == 200, 10, what="health after the disconnects")
    assert redis_conn.dbsize() == 0 or redis_conn.keys("nodedrop:execution:*") == []
    log = service.output()
    assert "Traceback" not in log and "Exception in ASGI application" not in log, log
    assert "unhandled" not in log, log


def test_serve_on_a_port_in_use_exits_5_with_one_line(redis_url):
    import subprocess
    import sys

    from tests.conftest import ROOT, child_env

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "nodedrop_rq", "serve", "--host", "127.0.0.1", "--port",
                               str(port), "--workers", "0"], env=child_env(redis_url), cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 5, done.stderr
    assert done.stderr.strip() == f"error: cannot listen on 127.0.0.1:{port}: the port is already in use"
