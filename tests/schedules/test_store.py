"""Storing, firing and measuring schedules in-process against a real redis-server (no scheduler process)."""

from __future__ import annotations

import json
import time
import zlib
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from nodedrop_rq import keys
from nodedrop_rq.schedules import (
    ScheduleMetrics,
    ScheduleStore,
    at_schedule,
    cron_schedule,
    every_schedule,
    fire_schedule,
    firing_key,
    schedule_metrics,
)
from nodedrop_rq.schedules.runner import ScheduleRunner
from tests.schedules.conftest import execution_count, executions_by_firing
from tests.support import workflows


def job_payload(redis_conn, job_id: str):
    return json.loads(zlib.decompress(redis_conn.hget(f"rq:job:{job_id}", "data")))


def test_the_job_stored_through_rq_scheduler_is_json(redis_conn, settings):
    schedule_id = ScheduleStore(redis_conn, settings).add(cron_schedule("*/5 * * * *", "Europe/Berlin"),
                                                         workflows.quick(), {"n": 2})
    func, instance, args, kwargs = job_payload(redis_conn, schedule_id)
    assert func == "nodedrop_rq.schedules.firing.fire_schedule" and instance is None and kwargs == {}
    assert args[0] == schedule_id and args[1]["name"] == "quick" and args[2] == [{"json": {"n": 2}}]
    meta = json.loads(redis_conn.hget(f"rq:job:{schedule_id}", "meta"))
    assert meta["nd_kind"] == "cron" and meta["nd_tz"] == "Europe/Berlin"
    assert redis_conn.ttl(f"rq:job:{schedule_id}") == -1  # lives as long as the schedule
    assert redis_conn.zscore(keys.SCHEDULED_JOBS, schedule_id) > time.time()


def test_add_list_get_and_remove(redis_conn, settings):
    store = ScheduleStore(redis_conn, settings)
    cron_id = store.add(cron_schedule("0 9 * * *", "Europe/Berlin", "morning"), workflows.quick())
    at = datetime(2099, 1, 1, tzinfo=timezone.utc)
    once_id = store.add(at_schedule(at, datetime.now(timezone.utc)), workflows.quick(), [{"a": 1}])
    listed = store.list()
    assert [i.id for i in listed] == [cron_id, once_id]  # soonest first
    cron = listed[0].to_dict()
    assert cron["name"] == "morning" and cron["kind"] == "cron" and cron["cron"] == "0 9 * * *"
    assert cron["workflowName"] == "quick" and len(cron["nextFires"]) == 3 and cron["lastFire"] is None
    berlin = ZoneInfo("Europe/Berlin")
    assert all(datetime.fromisoformat(t).astimezone(berlin).hour == 9 for t in cron["nextFires"])
    assert store.get(once_id).next_fire == at and store.get(once_id).to_dict()["nextFires"] == [at.isoformat()]
    assert store.remove(cron_id) is True and store.remove(cron_id) is False
    assert store.get(cron_id) is None and [i.id for i in store.list()] == [once_id]
    assert not redis_conn.exists(f"rq:job:{cron_id}")


def test_foreign_rq_scheduler_jobs_are_not_listed_or_removed(redis_conn, settings):
    store = ScheduleStore(redis_conn, settings)
    store.scheduler.enqueue_at(datetime(2099, 1, 1), "builtins.print", "x", job_id="someone-else")
    assert store.list() == [] and store.remove("someone-else") is False
    assert redis_conn.zscore(keys.SCHEDULED_JOBS, "someone-else") is not None


def test_a_firing_repeated_creates_one_execution(redis_conn, settings):
    first = fire_schedule("s1", workflows.quick(), None, 1_700_000_000, connection=redis_conn, settings=settings)
    again = fire_schedule("s1", workflows.quick(), None, 1_700_000_000, connection=redis_conn, settings=settings)
    other = fire_schedule("s1", workflows.quick(), None, 1_700_000_001, connection=redis_conn, settings=settings)
    assert first == again != other
    assert redis_conn.get(keys.idempotency(firing_key("s1", 1_700_000_000))).decode() == first
    assert execution_count(redis_conn) == 2 and redis_conn.llen(f"rq:queue:{settings.queue}") == 2


def test_two_runners_racing_for_one_due_firing_fire_it_once(redis_conn, settings):
    store = ScheduleStore(redis_conn, settings)
    schedule_id = store.add(every_schedule("60s"), workflows.quick())
    due = int(time.time()) - 1
    redis_conn.zadd(keys.SCHEDULED_JOBS, {schedule_id: due})
    a, b = ScheduleRunner(redis_conn, settings), ScheduleRunner(redis_conn, settings)
    job_a, job_b = (a.job_class.fetch(schedule_id, connection=redis_conn) for _ in range(2))
    assert a.fire(job_a) is not None
    assert b.fire(job_b) is None  # its score moved on: already handled
    assert list(executions_by_firing(redis_conn)) == [f"schedule:{schedule_id}:{due}"]
    assert redis_conn.zscore(keys.SCHEDULED_JOBS, schedule_id) == due + 60
    assert store.get(schedule_id).last_fire


def test_a_schedule_removed_while_firing_does_not_come_back(redis_conn, settings):
    store = ScheduleStore(redis_conn, settings)
    schedule_id = store.add(every_schedule("1s"), workflows.quick())
    redis_conn.zadd(keys.SCHEDULED_JOBS, {schedule_id: int(time.time()) - 1})
    runner = ScheduleRunner(redis_conn, settings)
    job = runner.job_class.fetch(schedule_id, connection=redis_conn)
    original = runner._advance

    def remove_then_advance(**kwargs):
        store.remove(schedule_id)
        return original(**kwargs)

    runner._advance = remove_then_advance
    runner.fire(job)
    assert redis_conn.zcard(keys.SCHEDULED_JOBS) == 0 and not redis_conn.hlen(keys.schedule_fires())
    assert not redis_conn.exists(f"rq:job:{schedule_id}")


def test_a_one_off_is_deleted_after_its_firing(redis_conn, settings):
    store = ScheduleStore(redis_conn, settings)
    schedule_id = store.add(at_schedule("2099-01-01T00:00:00Z", datetime.now(timezone.utc)), workflows.quick())
    redis_conn.zadd(keys.SCHEDULED_JOBS, {schedule_id: int(time.time()) - 1})
    runner = ScheduleRunner(redis_conn, settings)
    assert runner.acquire_lock()
    assert runner.enqueue_jobs() == [schedule_id]
    runner.remove_lock()
    assert store.list() == [] and len(executions_by_firing(redis_conn)) == 1
    assert not redis_conn.exists(f"rq:job:{schedule_id}") and not redis_conn.hlen(keys.schedule_fires())


def test_the_lock_is_short_owned_and_released_only_by_its_owner(redis_conn, settings):
    a = ScheduleRunner(redis_conn, settings, interval=1, lock_ttl=3)
    b = ScheduleRunner(redis_conn, settings, interval=1, lock_ttl=3)
    assert a.acquire_lock() and not b.acquire_lock()
    assert 2000 < redis_conn.pttl(a.scheduler_lock_key) <= 3000
    b._lock_acquired = True  # even a confused scheduler cannot release another's lock
    b.remove_lock()
    assert redis_conn.get(a.scheduler_lock_key).decode() == a.token
    again = ScheduleRunner(redis_conn, settings, interval=1, lock_ttl=3, token=a.token)
    assert again.acquire_lock()  # after a Redis outage the scheduler reclaims the lock it held
    redis_conn.set(a.scheduler_lock_key, "someone-else")  # a's lease ran out and another took it
    assert a.renew_lock() is False
    a.remove_lock()
    assert redis_conn.get(a.scheduler_lock_key) == b"someone-else"


def test_schedule_metrics_count_and_lag_in_one_round_trip(redis_conn, settings):
    assert schedule_metrics(redis_conn) == ScheduleMetrics(schedules=0, lag_seconds=0.0)
    store = ScheduleStore(redis_conn, settings)
    store.add(cron_schedule("0 0 1 1 *"), workflows.quick())
    overdue = store.add(every_schedule("60s"), workflows.quick())
    assert schedule_metrics(redis_conn).lag_seconds == 0.0  # nothing overdue
    now = time.time()
    redis_conn.zadd(keys.SCHEDULED_JOBS, {overdue: int(now) - 30})  # no scheduler ran for 30 s
    redis_conn.config_resetstat()
    metrics = schedule_metrics(redis_conn, now=now)
    stats = redis_conn.info("commandstats")
    assert metrics.schedules == 2 and 30 <= metrics.lag_seconds < 31
    assert stats["cmdstat_zcard"]["calls"] == 1 and stats["cmdstat_zrange"]["calls"] == 1
    assert {name for name in stats if not name.startswith("cmdstat_config")} == {"cmdstat_zcard", "cmdstat_zrange"}


def test_exporter_schedule_metrics(redis_conn, settings):
    from exporter.collector import NodedropCollector

    store = ScheduleStore(redis_conn, settings)
    store.add(cron_schedule("0 0 1 1 *"), workflows.quick())
    overdue = store.add(every_schedule("60s"), workflows.quick())
    redis_conn.zadd(keys.SCHEDULED_JOBS, {overdue: time.time() - 30})
    families = {f.name: f for f in NodedropCollector(redis_conn, settings).collect()}
    assert families["nodedrop_schedules"].samples[0].value == 2
    assert 29 <= families["nodedrop_schedule_lag_seconds"].samples[0].value < 40
