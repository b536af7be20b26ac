"""Exporter figures across a known mix of outcomes, restarts, dead workers and a Redis outage."""

from __future__ import annotations

import subprocess
import sys

from nodedrop_rq.embedded_redis import EmbeddedRedis
from nodedrop_rq.submit import submit_execution
from tests.conftest import ROOT, child_env, wait_for
from tests.exporter.conftest import q, scrape
from tests.queue.test_executions import wait_status
from tests.support import workflows

FAST_RETRIES = {"EXECUTION_RETRY_INTERVALS": "1,1"}


def test_known_mix_then_worker_and_exporter_restarts(start_exporter, start_pool, redis_conn, settings):
    fast = settings.with_overrides(retry_intervals=(1, 1))
    pool = start_pool(concurrency=2, **FAST_RETRIES)
    ok = [submit_execution(workflows.quick(), connection=redis_conn, settings=fast) for _ in range(3)]
    # Fails twice, succeeds on its third (last) attempt: 2 retries, 1 completion.
    flaky = submit_execution(workflows.failing(), {"succeedOn": 3, "tag": "flaky"}, connection=redis_conn,
                             settings=fast)
    # Never succeeds: 2 retries, then failed for good.
    doomed = submit_execution(workflows.failing(), {"tag": "doomed"}, connection=redis_conn, settings=fast)
    for execution_id in ok + [flaky]:
        wait_status(redis_conn, execution_id, "succeeded", 30)
    wait_status(redis_conn, doomed, "failed", 30)

    base = start_exporter(**FAST_RETRIES)
    expected = {
        q("nodedrop_executions_completed_total"): 4,
        q("nodedrop_executions_failed_total"): 1,
        q("nodedrop_executions_retried_total"): 4,
        q("nodedrop_executions_cancelled_total"): 0,
        q("nodedrop_execution_duration_seconds_count"): 9,  # every attempt that ended
        q("nodedrop_queue_completed"): 4,
        q("nodedrop_queue_failed"): 1,
        q("nodedrop_queue_waiting"): 0,
        q("nodedrop_queue_active"): 0,
        q("nodedrop_queue_scheduled"): 0,
        q("nodedrop_queue_oldest_waiting_age_seconds"): 0,
        q("nodedrop_workers_desired"): 0,
        q("nodedrop_workers_desired_by_depth"): 0,
        q("nodedrop_queue_wait_seconds_count"): 9,  # every attempt that started
    }
    samples = scrape(base)
    assert {k: samples[k] for k in expected} == expected

    # Counters live in Redis: a new pool and a new exporter report the same totals.
    assert pool.terminate(30) == 0
    start_pool(concurrency=1, **FAST_RETRIES)
    again = start_exporter(**FAST_RETRIES)
    samples = scrape(again)
    assert {k: samples[k] for k in expected} == expected


def test_a_dead_worker_stops_counting_toward_capacity(start_exporter, start_pool, redis_conn):
    # Short grace so the test need not wait RQ's worker TTL: dead after 5 + 2 s without a heartbeat.
    env = {"EXECUTION_HEARTBEAT_GRACE": "2"}
    base = start_exporter(**env)
    keeper = start_pool(concurrency=1, **env)
    victim = start_pool(concurrency=2, **env)
    wait_for(lambda: scrape(base)[("nodedrop_worker_capacity", ())] == 3, 20, what="capacity 3")
    assert scrape(base)[("nodedrop_worker_pools", ())] == 2
    victim.kill_all()
    wait_for(lambda: scrape(base)[("nodedrop_worker_capacity", ())] == 1, 20, what="capacity back to 1")
    assert scrape(base)[("nodedrop_worker_pools", ())] == 1
    assert keeper.process.poll() is None


def test_desired_workers_by_depth_follow_the_formula(start_exporter, redis_conn, settings):
    base = start_exporter(EXECUTION_WORKER_CONCURRENCY="4")
    for count, desired in ((1, 1), (4, 1), (5, 2), (9, 3)):
        while redis_conn.llen("rq:queue:executions") < count:
            submit_execution(workflows.quick(), connection=redis_conn, settings=settings)
        assert scrape(base)[q("nodedrop_workers_desired_by_depth")] == desired


def test_redis_outage_and_recovery(start_exporter, tmp_path):
    server = EmbeddedRedis(tmp_path / "redis")
    (tmp_path / "redis").mkdir()
    server.start()
    try:
        base = start_exporter(server.url)
        assert scrape(base)[("nodedrop_redis_up", ())] == 1
        server.stop()
        samples = scrape(base)
        assert samples[("nodedrop_redis_up", ())] == 0
        assert q("nodedrop_queue_waiting") not in samples
        server.start()
        wait_for(lambda: scrape(base)[("nodedrop_redis_up", ())] == 1, 10, what="recovery")
        assert q("nodedrop_queue_waiting") in scrape(base)
    finally:
        server.cleanup()


def test_bad_redis_url_is_one_line_at_start(redis_url):
    done = subprocess.run([sys.executable, "-m", "exporter", "--redis-url", "http://user:pw@host"],
                          env=child_env(redis_url), cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: invalid --redis-url: scheme 'http' is not redis://, rediss://, unix:// or redis+sentinel://"]
    assert "pw" not in done.stderr
