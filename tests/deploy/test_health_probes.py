"""The probes deploy/k8s uses: the API's /healthz (liveness, never Redis) and /healthz/readiness (Redis),
and the worker's exec probe, each against a live, a refusing and a black-holed Redis."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from nodedrop_rq.api import create_app
from nodedrop_rq.embedded_redis import free_port
from nodedrop_rq.settings import Settings
from tests.conftest import ROOT, child_env


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A Redis URL whose server accepts connections (the kernel completes them) and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    listener.close()


def client_for(redis_url: str, **settings: object) -> TestClient:
    return TestClient(create_app(Settings(redis_url=redis_url, **settings)), raise_server_exceptions=False)


def test_live_redis_is_alive_and_ready(redis_url: str) -> None:
    with client_for(redis_url) as client:
        assert (client.get("/healthz").status_code, client.get("/healthz").json()) == (200, {"status": "ok"})
        ready = client.get("/healthz/readiness")
        assert (ready.status_code, ready.json()) == (200, {"status": "ok", "redis": "up"})


def test_refused_redis_is_alive_but_not_ready() -> None:
    with client_for(f"redis://:hunter2@127.0.0.1:{free_port()}/0") as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/healthz/readiness")
        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == "unavailable" and body["redis"] == "down"
        assert "hunter2" not in ready.text and "127.0.0.1" in body["reason"]


def test_black_holed_redis_answers_503_within_the_probe_timeout(black_hole: str) -> None:
    with client_for(black_hole) as client:
        started = time.monotonic()
        ready = client.get("/healthz/readiness")
        took = time.monotonic() - started
        assert ready.status_code == 503
        # deploy/k8s gives the readiness probe 2 s.
        assert took < 2, took
        started = time.monotonic()
        assert client.get("/healthz").status_code == 200
        assert time.monotonic() - started < 0.5


def test_probes_are_public_when_a_token_is_set(redis_url: str) -> None:
    with client_for(redis_url, api_token="s3cret-token") as client:
        assert client.get("/api/executions/nope").status_code == 401
        assert client.get("/healthz").status_code == 200
        assert client.get("/healthz/readiness").status_code == 200


def test_openapi_documents_the_probes(redis_url: str) -> None:
    with client_for(redis_url) as client:
        paths = client.get("/openapi.json").json()["paths"]
    assert "503" in paths["/healthz/readiness"]["get"]["responses"]
    assert set(paths["/healthz"]["get"]["responses"]) == {"200"}


def healthcheck(mode: str, redis_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "deploy" / "healthcheck.py"), mode],
                          env=child_env(redis_url, **env), capture_output=True, text=True, timeout=30)


def test_worker_liveness_passes_while_redis_is_unreachable(black_hole: str) -> None:
    """A Redis outage must not restart every worker pod: the liveness mode cannot judge, so it passes;
    the strict mode (compose's health status) reports it."""
    for url in (f"redis://127.0.0.1:{free_port()}/0", black_hole):
        liveness = healthcheck("worker-liveness", url)
        assert liveness.returncode == 0 and "cannot judge" in liveness.stdout, liveness.stdout
        strict = healthcheck("worker", url)
        assert strict.returncode == 1 and "cannot read" in strict.stdout, strict.stdout


def test_worker_liveness_fails_when_redis_shows_no_worker_of_this_host(redis_url: str) -> None:
    done = healthcheck("worker-liveness", redis_url)
    assert done.returncode == 1 and f"no worker on {socket.gethostname()}" in done.stdout
