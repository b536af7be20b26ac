"""Fixtures: a real redis-server on a free loopback port, real worker pools as subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis import Redis

from nodedrop_rq.embedded_redis import EmbeddedRedis
from nodedrop_rq.settings import Settings
from tests.support.processes import descendants

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "nodedrop_rq" / "examples"
FUNCTIONS_MODULE = "tests.support.functions"

# Modules that start worker pools, services, schedulers or exporters as processes and wait for them (or
# for RQ's timers): marked slow here, in one list, so that `pytest -m "not slow"` (the engine, validation,
# the API in process, the state machine, settings) runs in under a minute on 2 cores.
SLOW_MODULES = frozenset({
    "api/test_event_stream.py", "api/test_http_edges.py", "api/test_http_service.py", "api/test_requests.py",
    "api/test_service.py", "api/test_webhooks.py",
    "conformance/test_worker_pool.py",
    "deploy/test_prometheus_integration.py", "deploy/test_worker_health_port.py",
    "exporter/test_metrics_endpoint.py", "exporter/test_metrics_lifecycle.py", "exporter/test_queue_wait.py",
    "faults/test_execution_semantics.py", "faults/test_outage_logs.py", "faults/test_redis_faults.py",
    "faults/test_sentinel.py", "faults/test_tls.py",
    "faults/test_worker_faults.py",
    "fuzz/test_api_openapi_fuzz.py",
    "multiredis/test_two_servers.py",
    "queue/test_cli.py", "queue/test_cli_errors.py", "queue/test_events_and_kills.py", "queue/test_executions.py",
    "queue/test_inline_isolation.py", "queue/test_resource_limits.py", "queue/test_round_trips.py",
    "queue/test_supervised_isolation.py",
    "queue/test_worker_lifecycle.py",
    "schedules/test_cli.py", "schedules/test_scheduler.py",
})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests = ROOT / "tests"
    for item in items:
        if item.path.relative_to(tests).as_posix() in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    Redis.from_url(redis_server.url).flushall()
    return redis_server.url


@pytest.fixture(scope="session")
def second_redis_server() -> Iterator[EmbeddedRedis]:
    """Another redis-server, for queues on several Redis servers (EXECUTION_QUEUE_REDIS_URLS)."""
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture
def second_redis_url(second_redis_server: EmbeddedRedis) -> str:
    if second_redis_server.process is None:  # a test stopped it (a server outage) and did not restart it
        second_redis_server.start()
    Redis.from_url(second_redis_server.url).flushall()
    return second_redis_server.url


@pytest.fixture
def redis_conn(redis_url: str) -> Iterator[Redis]:
    connection = Redis.from_url(redis_url)
    yield connection
    connection.close()


def child_env(redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXECUTION_", "NODEDROP_", "WORKFLOW_"))}
    env.update({"REDIS_URL": redis_url, "NODEDROP_FUNCTION_MODULES": FUNCTIONS_MODULE,
                "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")})
    env.update(extra)
    return env


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return Settings.from_env(child_env(redis_url))


class PoolProcess:
    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log
        self.groups: set[int] = set()

    def remember_groups(self) -> None:
        for pid in descendants(self.pid):
            try:
                self.groups.add(os.getpgid(pid))
            except ProcessLookupError:
                pass

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill_all(self) -> None:
        """SIGKILL the supervisor, its workers and their horses at once (a container OOM kill)."""
        self.remember_groups()
        for pid in [self.pid, *descendants(self.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(10)

    def terminate(self, timeout: float = 60) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def start_pool(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., PoolProcess]]:
    pools: list[PoolProcess] = []

    def start(concurrency: int = 2, args: list[str] | None = None, **env: str) -> PoolProcess:
        log = tmp_path / f"pool-{len(pools)}.log"
        command = args or [sys.executable, "-m", "nodedrop_rq", "worker", "--concurrency", str(concurrency)]
        process = subprocess.Popen(command, env=child_env(redis_url, **env), cwd=ROOT,
                                   stdout=log.open("wb"), stderr=subprocess.STDOUT)
        pool = PoolProcess(process, log)
        pools.append(pool)
        return pool

    yield start
    for pool in pools:
        if pool.process.poll() is None:
            pool.remember_groups()
            pool.process.send_signal(signal.SIGTERM)
            try:
                pool.process.wait(10)  # a pool exits in 1-3 s; only one cut off from Redis takes longer
            except subprocess.TimeoutExpired:
                pool.kill_all()
        for group in pool.groups - {os.getpgid(0)}:
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.1,
             what: str | Callable[[], str] = "") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    described = what() if callable(what) else what
    raise AssertionError(f"timed out after {timeout} s waiting for {described or predicate}")


def holds_for(predicate: Callable[[], object], seconds: float, interval: float = 0.1,
              what: str | Callable[[], str] = "") -> None:
    """Assert that ``predicate`` stays true for ``seconds`` (something must *not* happen in that window):
    checked every ``interval``, failing at the first false, so the window is the only fixed time."""
    deadline = time.monotonic() + seconds
    while True:
        if not predicate():
            described = what() if callable(what) else what
            raise AssertionError(f"no longer true before {seconds} s had passed: {described or predicate}")
        if time.monotonic() >= deadline:
            return
        time.sleep(interval)
