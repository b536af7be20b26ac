"""rediss:// end to end: a TLS-only redis-server, a worker pool, submit, the CLI and the exporter."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from redis import Redis

from exporter.collector import NodedropCollector
from nodedrop_rq.embedded_redis import find_redis_server, free_port
from nodedrop_rq.settings import Settings
from nodedrop_rq.submit import submit_execution
from tests.conftest import ROOT, child_env, wait_for
from tests.support import workflows


@pytest.fixture
def tls_redis_url(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    port = free_port()
    server = subprocess.Popen([find_redis_server(), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
                               "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file",
                               str(cert), "--tls-auth-clients", "no", "--save", "", "--dir", str(tmp_path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}"
    # A redis-server built without TLS exits at once on the --tls options.
    wait_for(lambda: server.poll() is not None or _pings(url), 10, what="the TLS redis-server")
    if server.poll() is not None:
        pytest.skip("this redis-server was built without TLS")
    yield url
    server.terminate()
    server.wait(10)


def _pings(url: str) -> bool:
    try:
        return bool(Redis.from_url(url, socket_timeout=1).ping())
    except Exception:  # noqa: BLE001 - not up yet
        return False


def test_everything_works_over_tls(tls_redis_url, start_pool):
    connection = Redis.from_url(tls_redis_url)
    settings = Settings(redis_url=tls_redis_url)
    start_pool(concurrency=1, REDIS_URL=tls_redis_url)
    execution_id = submit_execution(workflows.quick(), connection=connection, settings=settings)
    wait_for(lambda: connection.hget(f"nodedrop:execution:{execution_id}", "status") == b"succeeded", 30,
             what="the execution over TLS")
    stats = subprocess.run([sys.executable, "-m", "nodedrop_rq", "stats", "--json"], env=child_env(tls_redis_url),
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert stats.returncode == 0, stats.stderr
    families = {f.name: f for f in NodedropCollector(connection, settings).collect()}
    assert families["nodedrop_redis_up"].samples[0].value == 1
    assert families["nodedrop_executions_completed"].samples[0].value == 1
