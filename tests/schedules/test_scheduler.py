"""`nodedrop-rq scheduler` processes with worker pools and redis-server, all real (and all killed at the end)."""

from __future__ import annotations

import json
import time
import zlib
from datetime import datetime, timezone

from nodedrop_rq import keys
from nodedrop_rq.schedules import ScheduleStore, cron_schedule, every_schedule
from nodedrop_rq.schedules.runner import ScheduleRunner
from tests.conftest import holds_for, wait_for
from tests.schedules.conftest import cli, execution_count, executions_by_firing, firing_times
from tests.support import workflows


def status(redis_conn, execution_id: str) -> bytes | None:
    return redis_conn.hget(keys.execution(execution_id), "status")


def test_a_schedule_due_every_second_submits_executions_that_succeed_until_removed(
        redis_conn, redis_url, start_pool, start_scheduler):
    start_pool(concurrency=1)
    start_scheduler()
    added = cli(redis_url, "schedule", "add", "-", "--every", "1s", "--input", '{"n": 1}', "--json",
                stdin=json.dumps(workflows.quick()))
    assert added.returncode == 0, added.stderr
    schedule_id = json.loads(added.stdout)["id"]
    wait_for(lambda: len(executions_by_firing(redis_conn)) >= 3, 15, what="three firings")
    for execution_id in executions_by_firing(redis_conn).values():
        wait_for(lambda e=execution_id: status(redis_conn, e) == b"succeeded", 15, what="succeeded")
    times = firing_times(redis_conn)
    assert all(b - a >= 1 for a, b in zip(times, times[1:], strict=False))  # one per second at most
    listed = json.loads(cli(redis_url, "schedule", "list", "--json").stdout)
    assert [s["id"] for s in listed] == [schedule_id] and listed[0]["lastFire"]

    # No pickle anywhere: every RQ job hash (the schedule's and the executions') holds JSON.
    job_keys = [k for k in redis_conn.scan_iter("rq:job:*") if redis_conn.type(k) == b"hash"]
    assert len(job_keys) >= 4
    for key in job_keys:
        raw = redis_conn.hget(key, "data")
        json.loads(zlib.decompress(raw))
        json.loads(redis_conn.hget(key, "meta") or b"{}")

    assert cli(redis_url, "schedule", "remove", schedule_id).returncode == 0
    # A firing already under way when the schedule was removed may still land, within one interval.
    settle = len(executions_by_firing(redis_conn))
    wait_for(lambda: len(executions_by_firing(redis_conn)) <= settle + 1, 2)
    holds_for(lambda: redis_conn.zcard(keys.SCHEDULED_JOBS) == 0, 1, what="the schedule to stay removed")
    before = len(executions_by_firing(redis_conn))
    holds_for(lambda: len(executions_by_firing(redis_conn)) == before, 2, what="no firing after removal")
    assert redis_conn.zcard(keys.SCHEDULED_JOBS) == 0


def test_two_schedulers_never_double_fire(redis_conn, settings, start_pool, start_scheduler):
    start_pool(concurrency=2)
    schedulers = [start_scheduler(), start_scheduler()]
    schedule_id = ScheduleStore(redis_conn, settings).add(every_schedule("1s"), workflows.counted(),
                                                         {"tag": "double", "sleep": 0})
    # Four firings, however long a loaded machine takes to get there: doubles are what this test is about.
    wait_for(lambda: len(firing_times(redis_conn, schedule_id)) >= 4, 30, what="four firings")
    assert all(s.process.poll() is None for s in schedulers)
    firings = executions_by_firing(redis_conn, schedule_id)
    times = firing_times(redis_conn, schedule_id)
    assert len(set(times)) == len(times) and all(b - a >= 1 for a, b in zip(times, times[1:], strict=False))
    assert len(set(firings.values())) == len(firings)  # one execution per firing
    ScheduleStore(redis_conn, settings).remove(schedule_id)
    # A firing under way when the schedule was removed may still land: wait until the count settles.
    wait_for(settled(lambda: len(executions_by_firing(redis_conn, schedule_id))), 10, interval=1.0,
             what="no more firings after the removal")
    firings = executions_by_firing(redis_conn, schedule_id)
    for execution_id in firings.values():
        wait_for(lambda e=execution_id: status(redis_conn, e) == b"succeeded", 15, what="succeeded")
    assert execution_count(redis_conn) == len(firings)
    assert int(redis_conn.get("test:runs:double")) == len(firings)  # each firing ran its workflow once


def test_a_one_off_delayed_run_fires_once_near_its_time(redis_conn, redis_url, start_scheduler):
    start_scheduler()
    added = cli(redis_url, "schedule", "add", "-", "--in", "2s", "--json", stdin=json.dumps(workflows.quick()))
    assert added.returncode == 0, added.stderr
    info = json.loads(added.stdout)
    assert info["kind"] == "at"
    due = datetime.fromisoformat(info["nextFire"])
    wait_for(lambda: executions_by_firing(redis_conn), 8, interval=0.05, what="the one-off firing")
    fired_at = datetime.now(timezone.utc)
    assert abs((fired_at - due).total_seconds()) < 3
    holds_for(lambda: len(executions_by_firing(redis_conn)) == 1, 2, what="no second firing")
    assert json.loads(cli(redis_url, "schedule", "list", "--json").stdout) == []
    assert not redis_conn.exists(f"rq:job:{info['id']}")


def test_a_dead_scheduler_is_replaced_by_the_standby_within_lease_plus_interval(
        redis_conn, settings, start_scheduler):
    lease = 3
    first = start_scheduler("--lock-ttl", str(lease))
    second = start_scheduler("--lock-ttl", str(lease))
    schedule_id = ScheduleStore(redis_conn, settings).add(every_schedule("1s"), workflows.quick())
    wait_for(lambda: len(executions_by_firing(redis_conn)) >= 2, 10, what="firings")

    first.kill()  # SIGKILL
    killed_at, count = time.monotonic(), len(executions_by_firing(redis_conn))
    wait_for(lambda: len(executions_by_firing(redis_conn)) > count, lease + 4, interval=0.05,
             what="firings to resume")
    assert time.monotonic() - killed_at < lease + 0.5 + 2  # lease + interval, and some slack

    # The worst case: a scheduler died holding the lock. The standby waits out its lease, then fires.
    redis_conn.set(ScheduleRunner.scheduler_lock_key, "a-scheduler-that-died", px=lease * 1000)
    died_at = time.monotonic()
    # A firing the standby had under way may still land: wait until the count settles.
    wait_for(settled(lambda: len(executions_by_firing(redis_conn))), 5, interval=0.5, what="the count to settle")
    count = len(executions_by_firing(redis_conn))
    wait_for(lambda: len(executions_by_firing(redis_conn)) > count, lease + 3, interval=0.05, what="the takeover")
    took = time.monotonic() - died_at
    assert lease - 1 <= took < lease + 0.5 + 2
    times = firing_times(redis_conn, schedule_id)
    assert len(set(times)) == len(times)
    assert second.process.poll() is None


def test_missed_firings_fire_once_on_recovery_not_in_a_burst(redis_conn, settings, start_scheduler):
    store = ScheduleStore(redis_conn, settings)
    cron_id = store.add(cron_schedule("0 * * * *", "Europe/Berlin"), workflows.quick())
    every_id = store.add(every_schedule("1h"), workflows.quick())
    now = int(time.time())
    # No scheduler ran for a day (24 missed hourly firings) and for 5 hours (5 missed intervals).
    missed_cron, missed_every = now - now % 3600 - 86400, now - 5 * 3600
    redis_conn.zadd(keys.SCHEDULED_JOBS, {cron_id: missed_cron, every_id: missed_every})
    start_scheduler()
    wait_for(lambda: len(executions_by_firing(redis_conn)) >= 2, 10, what="the catch-up firings")
    holds_for(lambda: len(executions_by_firing(redis_conn)) == 2, 1.5, what="no burst of catch-up firings")
    assert firing_times(redis_conn, cron_id) == [missed_cron]  # once, for the oldest missed firing
    assert firing_times(redis_conn, every_id) == [missed_every]
    recovered = time.time()
    next_cron = redis_conn.zscore(keys.SCHEDULED_JOBS, cron_id)
    next_every = redis_conn.zscore(keys.SCHEDULED_JOBS, every_id)
    assert recovered - 5 < next_cron <= recovered + 3600 and next_cron % 3600 == 0  # the next hour
    assert recovered - 5 < next_every <= recovered + 3600 and (next_every - missed_every) % 3600 == 0  # on its grid


def test_the_scheduler_waits_out_a_redis_outage_and_stops_cleanly_during_one(tmp_path):
    import signal
    import subprocess
    import sys

    from nodedrop_rq.embedded_redis import EmbeddedRedis
    from tests.conftest import ROOT, child_env

    server = EmbeddedRedis(tmp_path / "redis")
    (tmp_path / "redis").mkdir()
    server.start()
    log = tmp_path / "scheduler.log"
    process = subprocess.Popen([sys.executable, "-m", "nodedrop_rq", "scheduler", "--interval", "0.5"],
                               env=child_env(server.url), cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "Registering birth" in log.read_text(), 10, what="the scheduler to start")
        server.stop()
        wait_for(lambda: "does not answer" in log.read_text() or "lost Redis" in log.read_text(), 10,
                 what="the scheduler to notice")
        assert process.poll() is None  # still there, waiting for Redis
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        server.stop()


def settled(measure):  # type: ignore[no-untyped-def]
    """A predicate for wait_for: true once ``measure()`` gives the same value twice in a row."""
    last: list[object] = [object()]

    def check() -> bool:
        value = measure()
        same = value == last[0]
        last[0] = value
        return same

    return check


def test_a_schedule_naming_a_stored_workflow_fires_its_current_version(redis_conn, redis_url, settings, start_pool,
                                                                       start_scheduler):
    from nodedrop_rq.workflows_store import WorkflowStore

    store = WorkflowStore(redis_conn, settings)
    store.put("scheduled", workflows.chain("v1", workflows.start(), workflows.set_value("mark", "version", "v1")))
    start_pool(concurrency=1)
    start_scheduler()
    added = cli(redis_url, "schedule", "add", "--workflow-id", "scheduled", "--every", "1s", "--json")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["workflowId"] == "scheduled"

    def versions() -> set[bytes]:
        found = set()
        for execution_id in executions_by_firing(redis_conn).values():
            if status(redis_conn, execution_id) == b"succeeded":
                found.add(redis_conn.hget(keys.execution(execution_id), "workflowVersion"))
        return found

    wait_for(lambda: b"1" in versions(), 15, what="a firing of version 1 to succeed")
    store.put("scheduled", workflows.chain("v2", workflows.start(), workflows.set_value("mark", "version", "v2")))
    wait_for(lambda: b"2" in versions(), 15, what="a firing of version 2 (the current one) to succeed")
    missing = cli(redis_url, "schedule", "add", "--workflow-id", "nope", "--every", "1s")
    assert missing.returncode == 2 and "no stored workflow" in missing.stderr
