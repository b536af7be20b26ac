"""``nodedrop-rq worker``'s health/metrics port (NODEDROP_WORKER_HEALTH_PORT), the probes deploy/k8s and
compose give the workers: liveness stays 200 while Redis is down, readiness follows Redis."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from nodedrop_rq.embedded_redis import EmbeddedRedis, free_port
from tests.conftest import ROOT, child_env, wait_for
from tests.deploy.test_health_probes import healthcheck
from tests.exporter.conftest import get


def _metrics(base: str) -> dict[str, float]:
    status, _, text = get(base + "/metrics")
    assert status == 200
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}


def test_liveness_survives_a_redis_outage_and_readiness_follows_redis(start_pool, tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    try:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        pool = start_pool(concurrency=1, REDIS_URL=server.url, NODEDROP_WORKER_HEALTH_HOST="127.0.0.1",
                          NODEDROP_WORKER_HEALTH_PORT=str(port))
        wait_for(lambda: get(base + "/healthz/readiness"), 20, what=lambda: "the health port: " + pool.output())
        assert json.loads(get(base + "/healthz")[2]) == {"status": "ok"}
        wait_for(lambda: _metrics(base)["nodedrop_worker_pool_processes"] == 1, 10, what="one worker process")
        assert _metrics(base)["nodedrop_worker_pool_size"] == 1
        assert healthcheck("worker-http", server.url, NODEDROP_WORKER_HEALTH_PORT=str(port)).returncode == 0

        server.stop()
        status, _, body = get(base + "/healthz/readiness", ok_only=False)
        assert status == 503 and json.loads(body)["redis"] == "down"
        assert get(base + "/healthz")[0] == 200  # no restart for an outage: the workers reconnect
        assert pool.process.poll() is None
        assert healthcheck("worker-http", server.url, NODEDROP_WORKER_HEALTH_PORT=str(port)).returncode == 1

        server.start()
        wait_for(lambda: get(base + "/healthz/readiness"), 20, what="readiness once Redis is back")
        assert pool.terminate(30) == 0  # while Redis is up: a warm shutdown needs it
        assert get(base + "/healthz") is None  # the port went with the supervisor
    finally:
        server.cleanup()


def test_the_health_check_says_when_no_port_is_set(redis_url: str) -> None:
    done = healthcheck("worker-http", redis_url)
    assert done.returncode == 1 and "NODEDROP_WORKER_HEALTH_PORT is not set" in done.stdout


def test_a_taken_port_is_one_line_and_exit_5(redis_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "nodedrop_rq", "worker", "--concurrency", "1"],
                              env=child_env(redis_url, NODEDROP_WORKER_HEALTH_HOST="127.0.0.1",
                                            NODEDROP_WORKER_HEALTH_PORT=str(port)),
                              cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 5, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last == f"error: cannot listen on 127.0.0.1:{port}: the port is already in use"
