"""Schedules with real rq-scheduler processes, worker pools and redis-server."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import zlib
from datetime import datetime, timedelta, timezone

import pytest

from nodedrop_rq import keys
from nodedrop_rq.schedules import ScheduleInvalid, ScheduleStore
from nodedrop_rq.schedules.definitions import at_schedule, cron_schedule, every_schedule
from tests.conftest import ROOT, child_env, wait_for
from tests.support import workflows


@pytest.fixture
def start_scheduler(redis_url, tmp_path):
    processes = []

    def start() -> subprocess.Popen:
        log = tmp_path / f"scheduler-{len(processes)}.log"
        process = subprocess.Popen([sys.executable, "-m", "nodedrop_rq", "scheduler", "--interval", "0.5"],
                                   env=child_env(redis_url), cwd=ROOT, stdout=log.open("wb"),
                                   stderr=subprocess.STDOUT)
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def cli(redis_url: str, *args: str, stdin: str | None = None):
    return subprocess.run([sys.executable, "-m", "nodedrop_rq", *args], env=child_env(redis_url), cwd=ROOT,
                          input=stdin, capture_output=True, text=True, timeout=60)


def executions_by_firing(redis_conn) -> dict[str, str]:
    """idempotency key (schedule:<id>:<fire time>) -> execution id, for every submitted firing."""
    out = {}
    for key in redis_conn.scan_iter("nodedrop:idempotency:schedule:*"):
        out[key.decode().split("nodedrop:idempotency:", 1)[1]] = redis_conn.get(key).decode()
    return out


def test_interval_schedule_fires_executions_that_succeed_and_stops_when_removed(
        redis_conn, redis_url, settings, start_pool, start_scheduler):
    start_pool(concurrency=1)
    start_scheduler()
    schedule_id = ScheduleStore(redis_conn, settings).add(every_schedule("1s"), workflows.quick(), {"n": 1})
    wait_for(lambda: len(executions_by_firing(redis_conn)) >= 3, 20, what="three firings")
    for execution_id in executions_by_firing(redis_conn).values():
        wait_for(lambda e=execution_id: redis_conn.hget(keys.execution(e), "status") == b"succeeded", 20)
    listed = json.loads(cli(redis_url, "schedule", "list", "--json").stdout)
    assert [s["id"] for s in listed] == [schedule_id] and listed[0]["lastFire"]
    removed = cli(redis_url, "schedule", "remove", schedule_id)
    assert removed.returncode == 0
    time.sleep(1.5)  # a firing in progress during removal may still land
    before = len(executions_by_firing(redis_conn))
    time.sleep(2.5)
    assert len(executions_by_firing(redis_conn)) == before
    assert cli(redis_url, "schedule", "remove", schedule_id).returncode == 1


def test_two_schedulers_never_double_fire(redis_conn, settings, start_scheduler):
    start_scheduler()
    start_scheduler()
    ScheduleStore(redis_conn, settings).add(every_schedule("1s"), workflows.quick())
    time.sleep(6)
    firings = executions_by_firing(redis_conn)
    times = sorted(int(key.rsplit(":", 1)[1]) for key in firings)
    assert len(times) >= 3
    assert len(set(firings.values())) == len(firings)  # one execution per firing
    assert all(b - a >= 1 for a, b in zip(times, times[1:], strict=False))  # no two firings of one time
    assert redis_conn.llen("rq:queue:executions") == len(firings)


def test_one_off_delayed_run_fires_once_near_its_time(redis_conn, redis_url, start_scheduler):
    start_scheduler()
    added = cli(redis_url, "schedule", "add", "-", "--in", "2s", "--json", stdin=json.dumps(workflows.quick()))
    assert added.returncode == 0, added.stderr
    due = datetime.fromisoformat(json.loads(added.stdout)["nextFire"])
    wait_for(lambda: executions_by_firing(redis_conn), 10, what="the one-off firing")
    fired_at = datetime.now(timezone.utc)
    assert abs((fired_at - due).total_seconds()) < 3
    time.sleep(2)
    assert len(executions_by_firing(redis_conn)) == 1
    assert json.loads(cli(redis_url, "schedule", "list", "--json").stdout) == []


def test_a_killed_scheduler_is_replaced_by_the_standby(redis_conn, settings, start_scheduler):
    first = start_scheduler()
    start_scheduler()
    ScheduleStore(redis_conn, settings).add(every_schedule("1s"), workflows.quick())
    wait_for(lambda: len(executions_by_firing(redis_conn)) >= 2, 15, what="firings")
    first.kill()  # SIGKILL: it may die holding the lock
    killed_at = time.monotonic()
    count = len(executions_by_firing(redis_conn))
    wait_for(lambda: len(executions_by_firing(redis_conn)) >= count + 2, 20, what="firings to resume")
    assert time.monotonic() - killed_at < 15  # lock TTL is interval + 10 s


def test_payload_stored_by_rq_scheduler_is_json(redis_conn, settings):
    schedule_id = ScheduleStore(redis_conn, settings).add(cron_schedule("*/5 * * * *", "Europe/Berlin"),
                                                         workflows.quick(), {"n": 2})
    data = redis_conn.hget(f"rq:job:{schedule_id}", "data")
    func, _, args, _ = json.loads(zlib.decompress(data))
    assert func == "nodedrop_rq.schedules.firing.fire_schedule"
    assert args[0] == schedule_id and args[2] == [{"json": {"n": 2}}]
    assert redis_conn.ttl(f"rq:job:{schedule_id}") == -1  # lives as long as the schedule


def test_cron_with_a_time_zone_follows_it_across_dst():
    berlin = cron_schedule("0 9 * * *", "Europe/Berlin")
    before_switch = datetime(2026, 3, 28, 12, 0, tzinfo=timezone.utc)
    first = berlin.next_fire(before_switch)
    second = berlin.next_fire(first)
    assert first == datetime(2026, 3, 29, 7, 0, tzinfo=timezone.utc)  # 09:00 CEST
    assert second - first == timedelta(days=1)
    winter = berlin.next_fire(datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc))
    assert winter.hour == 8  # 09:00 CET


@pytest.mark.parametrize(("args", "message"), [
    (["--cron", "61 * * * *"], "invalid cron expression"),
    (["--cron", "*/5 * * * *", "--tz", "Mars/Olympus"], "unknown time zone"),
    (["--at", "2001-01-01T00:00:00+00:00"], "is in the past"),
    (["--at", "2099-01-01T00:00:00"], "no UTC offset"),
    (["--in", "soon"], "invalid delay"),
    ([], "exactly one of"),
])
def test_invalid_schedules_are_refused_and_nothing_is_stored(redis_conn, redis_url, args, message):
    done = cli(redis_url, "schedule", "add", "-", *args, stdin=json.dumps(workflows.quick()))
    assert done.returncode == 2
    assert message in done.stderr
    assert redis_conn.dbsize() == 0


def test_invalid_workflow_is_refused_at_add_time(redis_conn, redis_url, settings):
    done = cli(redis_url, "schedule", "add", "-", "--in", "1m", stdin='{"nodes": [{"id": "a", "type": "x"}]}')
    assert done.returncode == 2 and "unknown node type" in done.stderr
    assert redis_conn.dbsize() == 0
    with pytest.raises(ScheduleInvalid):
        at_schedule("2000-01-01T00:00:00Z", datetime.now(timezone.utc))


def test_exporter_schedule_metrics(redis_conn, settings):
    from exporter.collector import NodedropCollector

    store = ScheduleStore(redis_conn, settings)
    store.add(cron_schedule("0 0 1 1 *"), workflows.quick())
    overdue = store.add(every_schedule("60s"), workflows.quick())
    redis_conn.zadd(keys.SCHEDULED_JOBS, {overdue: time.time() - 30})  # no scheduler ran for 30 s
    families = {f.name: f for f in NodedropCollector(redis_conn, settings).collect()}
    assert families["nodedrop_schedules"].samples[0].value == 2
    assert 29 <= families["nodedrop_schedule_lag_seconds"].samples[0].value < 40


def test_dst_gaps_and_repeats_fire_once():
    plan = cron_schedule("30 2 * * *", "Europe/Berlin")
    spring = [plan.next_fire(datetime(2026, 3, 28, 12, 0, tzinfo=timezone.utc))]
    spring.append(plan.next_fire(spring[0]))
    # 02:30 does not exist on 29 March: it fires at 03:00 CEST instead of being skipped.
    assert spring == [datetime(2026, 3, 29, 1, 0, tzinfo=timezone.utc),
                      datetime(2026, 3, 30, 0, 30, tzinfo=timezone.utc)]
    fall = [plan.next_fire(datetime(2026, 10, 24, 12, 0, tzinfo=timezone.utc))]
    fall.append(plan.next_fire(fall[0]))
    # 02:30 happens twice on 25 October: it fires once.
    assert fall == [datetime(2026, 10, 25, 0, 30, tzinfo=timezone.utc),
                    datetime(2026, 10, 26, 1, 30, tzinfo=timezone.utc)]
