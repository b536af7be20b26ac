"""Redis restarting under load, and Redis missing when the workers start."""

from __future__ import annotations

import pytest
from redis import Redis
from redis.exceptions import RedisError

from nodedrop_rq.embedded_redis import EmbeddedRedis, free_port
from nodedrop_rq.settings import Settings
from nodedrop_rq.state import TERMINAL
from nodedrop_rq.submit import submit_execution
from tests.conftest import holds_for, wait_for
from tests.support import workflows


def _answers(url: str) -> bool:
    try:
        return bool(Redis.from_url(url, socket_connect_timeout=0.2, socket_timeout=0.2).ping())
    except RedisError:
        return False


def _statuses(connection: Redis, ids: list[str]) -> dict[str, str | None]:
    out = {}
    for execution_id in ids:
        raw = connection.hget(f"nodedrop:execution:{execution_id}", "status")
        out[execution_id] = raw.decode() if raw else None
    return out


@pytest.mark.parametrize("isolation", ["fork", "supervised"])
def test_redis_restart_during_load_loses_nothing(start_pool, tmp_path, isolation):
    server = EmbeddedRedis(tmp_path, persistent=True)
    server.start()
    try:
        connection = Redis.from_url(server.url, socket_timeout=5)
        settings = Settings(redis_url=server.url, retry_intervals=(1, 1, 1))
        start_pool(concurrency=2, REDIS_URL=server.url, EXECUTION_RETRY_INTERVALS="1,1,1",
                   EXECUTION_ISOLATION=isolation)
        ids = []
        for i in range(12):
            ids.append(submit_execution(workflows.counted(), {"sleep": 0.5, "tag": f"r{i}"}, connection=connection,
                                        settings=settings))
        wait_for(lambda: "running" in _statuses(connection, ids).values(), 15, interval=0.05,
                 what="an execution to be running when Redis stops")
        server.stop()
        holds_for(lambda: not _answers(server.url), 2, what="Redis to stay down for the outage")
        server.start()
        connection = Redis.from_url(server.url, socket_timeout=5)
        for i in range(12, 16):  # the system takes new work after the restart without manual action
            ids.append(submit_execution(workflows.counted(), {"sleep": 0.2, "tag": f"r{i}"}, connection=connection,
                                        settings=settings))
        wait_for(lambda: all(s in TERMINAL for s in _statuses(connection, ids).values()), 90,
                 what="every execution to reach a terminal state")
        statuses = _statuses(connection, ids)
        assert set(statuses.values()) == {"succeeded"}, statuses
        runs = [int(connection.get(f"test:runs:r{i}") or 0) for i in range(16)]
        # At least once each; a rerun only when an attempt was cut off by the outage.
        assert all(1 <= r <= 4 for r in runs), runs
    finally:
        server.cleanup()


def test_workers_wait_for_redis_at_start_with_one_clear_line(start_pool, tmp_path):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    pool = start_pool(concurrency=2, REDIS_URL=url)

    def reported() -> list[str]:
        return [line for line in pool.output().splitlines() if "does not answer" in line]

    wait_for(reported, 15, what="the line saying Redis does not answer")
    # Backing off (0.5, 1, 2 s ...) without another line, and without the pool giving up.
    holds_for(lambda: pool.process.poll() is None and len(reported()) == 1, 3, what=pool.output)
    lines = reported()
    assert len(lines) == 1, pool.output()
    server = EmbeddedRedis(tmp_path, port=port)
    server.start()
    try:
        connection = Redis.from_url(url)
        execution_id = submit_execution(workflows.quick(), connection=connection, settings=Settings(redis_url=url))
        wait_for(lambda: connection.hget(f"nodedrop:execution:{execution_id}", "status") == b"succeeded", 40,
                 what="the execution to run once Redis is up")
        assert "answers again" in pool.output()
    finally:
        server.cleanup()


def test_the_redis_password_never_reaches_the_logs(start_pool, tmp_path):
    url = f"redis://:sekret-pw@127.0.0.1:{free_port()}/0"
    pool = start_pool(concurrency=1, REDIS_URL=url)
    wait_for(lambda: "does not answer" in pool.output(), 15, what="the unreachable-Redis line")
    assert pool.terminate(20) == 0
    assert "sekret-pw" not in pool.output()
    assert ":***@127.0.0.1" in pool.output()


def test_scheduler_api_and_exporter_recover_from_a_redis_restart(tmp_path):
    import signal
    import subprocess
    import sys

    import httpx

    from nodedrop_rq.schedules import ScheduleStore
    from nodedrop_rq.schedules.definitions import every_schedule
    from tests.conftest import ROOT, child_env

    server = EmbeddedRedis(tmp_path, persistent=True)
    server.start()
    api_port, exporter_port = free_port(), free_port()
    processes = [
        subprocess.Popen([sys.executable, "-m", "nodedrop_rq", "scheduler", "--interval", "0.5"],
                         env=child_env(server.url), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([sys.executable, "-m", "nodedrop_rq", "serve", "--host", "127.0.0.1", "--port",
                          str(api_port), "--workers", "0"], env=child_env(server.url), cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([sys.executable, "-m", "exporter", "--host", "127.0.0.1", "--port", str(exporter_port)],
                         env=child_env(server.url), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    health = f"http://127.0.0.1:{api_port}/api/health"
    metrics = f"http://127.0.0.1:{exporter_port}/metrics"

    def status(url: str) -> int | None:
        try:
            return httpx.get(url, timeout=3).status_code
        except httpx.HTTPError:
            return None

    def fired(connection: Redis) -> int:
        return sum(1 for _ in connection.scan_iter("nodedrop:idempotency:schedule:*"))

    try:
        connection = Redis.from_url(server.url, socket_timeout=5)
        ScheduleStore(connection, Settings(redis_url=server.url)).add(every_schedule("1s"), workflows.quick())
        wait_for(lambda: status(health) == 200 and status(metrics) == 200 and fired(connection) >= 2, 30,
                 what="everything up")
        server.stop()
        wait_for(lambda: status(health) == 503, 10, what="the API to answer 503")
        assert "nodedrop_redis_up 0.0" in httpx.get(metrics, timeout=5).text
        holds_for(lambda: status(health) == 503, 1, what="the API to answer 503 while Redis is down")
        server.start()
        connection = Redis.from_url(server.url, socket_timeout=5)
        before = fired(connection)
        wait_for(lambda: status(health) == 200, 20, what="the API to recover")
        wait_for(lambda: "nodedrop_redis_up 1.0" in httpx.get(metrics, timeout=5).text, 20, what="the exporter")
        wait_for(lambda: fired(connection) >= before + 2, 40, what="the scheduler to fire again")
        assert all(p.poll() is None for p in processes)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        server.cleanup()
