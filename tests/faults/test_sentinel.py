"""REDIS_URL naming Sentinel, against real redis-server and redis-sentinel processes: the master is
SIGKILLed under load, the sentinels promote the replica, and the worker pool, the API, the scheduler and
the exporter carry on by themselves (the same processes, no restart); the CLI works on the new master.
Also the URL's parsing and its redaction in logs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis.exceptions import RedisError

from nodedrop_rq.connection import describe_redis_error, describe_redis_url, redis_from_settings
from nodedrop_rq.embedded_redis import free_port
from nodedrop_rq.schedules import ScheduleStore, every_schedule
from nodedrop_rq.settings import SentinelTarget, Settings, SettingsError
from nodedrop_rq.state import TERMINAL
from nodedrop_rq.submit import submit_execution
from tests.conftest import ROOT, child_env, wait_for
from tests.support import workflows
from tests.support.sentinel import SentinelCluster, find_redis_sentinel

needs_sentinel = pytest.mark.skipif(find_redis_sentinel() is None, reason="redis-sentinel is not installed")


def test_sentinel_url_is_parsed_once_into_the_settings():
    url = ("rediss+sentinel://app:m%40ster@10.0.0.1:26380,[::1],sentinel-b/orders.main/3"
           "?sentinel_password=s3nt&ssl_ca_certs=/ca.pem&ssl_cert_reqs=required")
    settings = Settings.from_env({"REDIS_URL": url})
    assert settings.redis_sentinel == SentinelTarget(
        sentinels=(("10.0.0.1", 26380), ("::1", 26379), ("sentinel-b", 26379)), service_name="orders.main", db=3,
        tls=True, username="app", password="m@ster", sentinel_password="s3nt", ssl_ca_certs="/ca.pem",
        ssl_cert_reqs="required")
    assert "m@ster" not in repr(settings.redis_sentinel) and "s3nt" not in repr(settings.redis_sentinel)
    # Derived from redis_url, so an override cannot leave a stale Sentinel target behind.
    assert settings.with_overrides(redis_url="redis://127.0.0.1:6379/0").redis_sentinel is None
    assert Settings.from_env({"REDIS_URL": "redis+sentinel://h/m"}).redis_sentinel.db == 0


@pytest.mark.parametrize(("url", "why"), [
    ("redis+sentinel://h:26379", "no master name"),
    ("redis+sentinel://h:26379/m/x", "database after the master name is not a number"),
    ("redis+sentinel://h:26379/m/0/extra", "the path is /master-name[/db]"),
    ("redis+sentinel://h:99999/m", "port of sentinel h"),
    ("redis+sentinel://:pw@h1,,h2/m", "has no host"),
    ("redis+sentinel://h/m?sentinel_pasword=x", "unknown option 'sentinel_pasword'"),
    ("redis+sentinel://h/m?ssl_cert_reqs=none", "need rediss+sentinel"),
    ("rediss+sentinel://h/m?ssl_cert_reqs=maybe", "ssl_cert_reqs must be"),
    ("sentinel://h/m", "is not redis://"),
])
def test_bad_sentinel_urls_fail_with_one_line_that_hides_passwords(url, why):
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"REDIS_URL": url})
    message = str(raised.value)
    assert why in message and "\n" not in message and "pw" not in message


def test_sentinel_passwords_never_reach_logs():
    url = "redis+sentinel://user:m%40ster@127.0.0.1:1,127.0.0.1:2/mymaster/0?sentinel_password=s3nt"
    described = describe_redis_url(url)
    assert described == "redis+sentinel://user:***@127.0.0.1:1,127.0.0.1:2/mymaster/0?sentinel_password=***"
    error = describe_redis_error(ConnectionError("AUTH m@ster / m%40ster / s3nt failed"), url)
    assert "m@ster" not in error and "m%40ster" not in error and "s3nt" not in error
    # No sentinel answers (nothing listens on ports 1 and 2): a RedisError the components already wait out.
    client = redis_from_settings(Settings(redis_url=url), socket_timeout=1, socket_connect_timeout=0.5)
    with pytest.raises(RedisError):
        client.ping()


@pytest.fixture
def sentinel_cluster(tmp_path: Path) -> Iterator[SentinelCluster]:
    cluster = SentinelCluster(tmp_path)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def start_process(tmp_path: Path) -> Iterator:
    processes: list[subprocess.Popen[bytes]] = []

    def start(args: list[str], url: str, name: str) -> tuple[subprocess.Popen[bytes], Path]:
        log = tmp_path / f"{name}.log"
        process = subprocess.Popen([sys.executable, *args], env=child_env(url), cwd=ROOT,
                                   stdout=log.open("wb"), stderr=subprocess.STDOUT)
        processes.append(process)
        return process, log

    yield start
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def _answers(url: str, wanted: int = 200) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == wanted
    except httpx.HTTPError:
        return False


def _statuses(connection, ids: list[str]) -> dict[str, str | None]:  # noqa: ANN001
    with connection.pipeline(transaction=False) as pipe:
        for execution_id in ids:
            pipe.hget(f"nodedrop:execution:{execution_id}", "status")
        raw = pipe.execute()
    return {i: (r.decode() if r else None) for i, r in zip(ids, raw, strict=True)}


class Submitter(threading.Thread):
    """Submits executions back to back, remembering which ones Redis acknowledged and when."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.settings = settings
        self.connection = redis_from_settings(settings, socket_timeout=2)
        self.acknowledged: list[tuple[float, str]] = []
        self.errors: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        index = 0
        while not self.stop.is_set():
            tag = f"s{index}"
            try:
                execution_id = submit_execution(workflows.quick(), {"tag": tag},
                                                connection=self.connection, settings=self.settings,
                                                execution_id=tag)
                self.acknowledged.append((time.monotonic(), execution_id))
                index += 1
            except RedisError:
                self.errors.append(time.monotonic())
                # Not acknowledged: a new id, so an unacknowledged write that did land is not counted.
                index += 1
                self.stop.wait(0.1)
            self.stop.wait(0.02)

    def acknowledged_after(self, moment: float) -> list[str]:
        return [i for t, i in self.acknowledged if t > moment]


@needs_sentinel
def test_failover_under_load_every_component_carries_on(sentinel_cluster, start_process, tmp_path):
    url = sentinel_cluster.url
    settings = Settings.from_env(child_env(url))
    old_master = sentinel_cluster.master_address()
    assert old_master[1] == sentinel_cluster.master_port
    pool, pool_log = start_process(["-m", "nodedrop_rq", "worker", "--concurrency", "2"], url, "pool")
    api_port, exporter_port = free_port(), free_port()
    api, api_log = start_process(["-m", "nodedrop_rq", "serve", "--host", "127.0.0.1", "--port", str(api_port),
                                  "--workers", "0"], url, "api")
    exporter, exporter_log = start_process(["-m", "exporter", "--host", "127.0.0.1", "--port", str(exporter_port)],
                                           url, "exporter")
    scheduler, scheduler_log = start_process(["-m", "nodedrop_rq", "scheduler", "--interval", "0.5"], url,
                                             "scheduler")
    api_base, metrics = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{exporter_port}/metrics"
    wait_for(lambda: _answers(api_base + "/api/health"), 30, what=lambda: "the API: " + api_log.read_text())
    wait_for(lambda: _answers(metrics), 30, what=lambda: "the exporter: " + exporter_log.read_text())
    connection = redis_from_settings(settings, socket_timeout=5)

    def api_submit() -> str | None:
        try:
            response = httpx.post(f"{api_base}/api/executions", timeout=5,
                                  json={"workflow": workflows.quick(), "input": {}})
        except httpx.HTTPError:
            return None
        return response.json()["id"] if response.status_code == 202 else None

    def all_terminal(ids: list[str]) -> bool:
        try:
            return all(s in TERMINAL for s in _statuses(connection, ids).values())
        except RedisError:
            return False

    schedule_id = ScheduleStore(connection, settings).add(every_schedule("1s"), workflows.quick())

    def fired_since(moment: float) -> list[str]:
        """Executions the schedule submitted for firing times at or after ``moment`` (wall clock)."""
        prefix = f"nodedrop:idempotency:schedule:{schedule_id}:"
        try:
            found = {int(k.decode().rsplit(":", 1)[1]): k for k in connection.scan_iter(prefix + "*", count=1000)}
            return [connection.get(k).decode() for t, k in found.items() if t >= moment]
        except RedisError:
            return []

    wait_for(lambda: fired_since(0), 30, what=lambda: "the schedule to fire: " + scheduler_log.read_text())
    before = [wait_for(api_submit, 10, what="the API to accept an execution")]
    submitter = Submitter(settings)
    submitter.start()
    try:
        wait_for(lambda: len(submitter.acknowledged) >= 20, 30, what="20 executions submitted before the kill")
        before += [i for _, i in submitter.acknowledged[:20]]
        wait_for(lambda: all_terminal(before), 60, what=lambda: f"the first executions: {pool_log.read_text()}")
        assert set(_statuses(connection, before).values()) == {"succeeded"}

        killed_at = time.monotonic()
        sentinel_cluster.kill_master()
        wait_for(lambda: sentinel_cluster.master_address()[1] == sentinel_cluster.replica_port, 60,
                 interval=0.05, what=lambda: "the sentinels to promote the replica:\n" + sentinel_cluster.logs())
        promoted_at, promoted_wall = time.monotonic(), time.time()
        # The first write refused after the kill marks the outage's start as clients saw it; a submission
        # the old master answered a moment after killed_at was taken must not count as the new master's.
        refused_from = min((t for t in submitter.errors if t > killed_at), default=killed_at)
        wait_for(lambda: submitter.acknowledged_after(refused_from), 60, interval=0.05,
                 what="a submission acknowledged by the new master")
        writable_at = min(t for t, _ in submitter.acknowledged if t > refused_from)
        wait_for(lambda: len(submitter.acknowledged_after(writable_at)) >= 20, 30,
                 what="20 more submissions after the failover")
    finally:
        submitter.stop.set()
        submitter.join(10)

    acknowledged = [i for _, i in submitter.acknowledged]
    after_failover = submitter.acknowledged_after(killed_at)
    through_api = wait_for(api_submit, 30, what=lambda: "the API to accept again: " + api_log.read_text()[-3000:])
    by_schedule = wait_for(lambda: fired_since(promoted_wall + 1), 30,
                           what=lambda: "a firing after the failover: " + scheduler_log.read_text()[-3000:])
    wait_for(lambda: all_terminal(after_failover + [through_api, *by_schedule]), 90,
             what=lambda: f"executions after the failover to finish: {pool_log.read_text()[-3000:]}")
    statuses = _statuses(connection, acknowledged + before)
    survived = [i for i in acknowledged if statuses[i] is not None]
    lost = [i for i in acknowledged if statuses[i] is None]
    acked_before_kill = [i for t, i in submitter.acknowledged if t <= killed_at]
    # Give executions acknowledged just before the kill (and so left queued or running on the dead master)
    # time to be run or recovered on the new one.
    wait_for(lambda: all_terminal(survived), 90, what=lambda: f"survivors to finish: {pool_log.read_text()[-3000:]}")
    statuses = _statuses(connection, survived)

    report = {
        "failover_seconds_to_promotion": round(promoted_at - killed_at, 2),
        "failover_seconds_to_first_acknowledged_write": round(writable_at - killed_at, 2),
        "acknowledged": len(acknowledged), "acknowledged_before_kill": len(acked_before_kill),
        "survived": len(survived), "lost": lost, "submit_errors_during_failover": len(submitter.errors),
        "not_succeeded": {i: s for i, s in statuses.items() if s != "succeeded"},
    }
    (tmp_path / "sentinel-report.json").write_text(json.dumps(report, indent=2))
    print("sentinel failover:", json.dumps(report))

    # Every component carried on by itself: the same processes, new work accepted and run.
    assert all(p.poll() is None for p in (pool, api, exporter, scheduler))
    assert set(_statuses(connection, by_schedule).values()) == {"succeeded"}
    stats = subprocess.run([sys.executable, "-m", "nodedrop_rq", "stats", "--json"], env=child_env(url), cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert stats.returncode == 0 and settings.queue in stats.stdout, stats.stderr
    assert wait_for(lambda: _answers(metrics), 30, what=lambda: "the exporter after the failover: "
                    + exporter_log.read_text()[-3000:])
    assert wait_for(lambda: _answers(api_base + "/api/health"), 30, what="the API's health after the failover")
    assert set(_statuses(connection, after_failover + [through_api]).values()) == {"succeeded"}
    # Replication on loopback lags by well under a second: only writes acknowledged in the last moments
    # before the SIGKILL may be missing on the promoted replica.
    settled = [i for t, i in submitter.acknowledged if t < killed_at - 1.0]
    assert not set(settled) & set(lost), report
    assert not report["not_succeeded"], report
    assert promoted_at - killed_at < 30, report

    # Warm shutdown on the Sentinel client: each worker's last write (RQ's register_death pipeline) must not
    # read a reply left unread by the dequeue that the shutdown interrupted.
    shutdown_from = len(pool_log.read_text())
    pool.send_signal(signal.SIGTERM)
    assert pool.wait(60) == 0, pool_log.read_text()[-3000:]
    after_shutdown = pool_log.read_text()[shutdown_from:]
    assert " stopped: " not in after_shutdown and "Traceback" not in after_shutdown, after_shutdown
