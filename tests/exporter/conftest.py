"""Fixtures for the exporter tests: the exporter as a real process, scraped over HTTP."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from nodedrop_rq.embedded_redis import free_port
from tests.conftest import ROOT, child_env, wait_for


@pytest.fixture
def start_exporter(redis_url, tmp_path):
    processes = []

    def start(url: str | None = None, **env: str) -> str:
        url = url or redis_url
        port = free_port()
        log = tmp_path / f"exporter-{port}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "exporter", "--host", "127.0.0.1", "--port", str(port), "--redis-url", url],
            env=child_env(redis_url, **env), cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        processes.append(process)
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: get(base + "/health", ok_only=False), 15, what="exporter to listen")
        return base

    yield start
    for process in processes:
        process.terminate()
        process.wait(10)


def get(url: str, ok_only: bool = True, accept: str | None = None):
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return None if ok_only else (error.code, error.headers, error.read().decode())
    except (urllib.error.URLError, ConnectionError):
        return None


def scrape(base: str) -> dict[tuple[str, tuple], float]:
    status, _, text = get(base + "/metrics")
    assert status == 200
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def q(name: str, queue: str = "executions") -> tuple[str, tuple]:
    return (name, (("queue", queue),))


