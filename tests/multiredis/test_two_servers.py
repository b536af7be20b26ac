"""Queues on two real redis-servers (EXECUTION_QUEUE_REDIS_URLS): `executions` on REDIS_URL's server (A),
`orders` on a second one (B). Real worker pools, exporter and scheduler processes; the API in process."""

from __future__ import annotations

import json
import sys
import time

import pytest
from fastapi.testclient import TestClient
from redis import Redis

from nodedrop_rq import keys
from nodedrop_rq.api.app import create_app
from nodedrop_rq.connection import describe_redis_url
from nodedrop_rq.routed import RoutedControl, fleet_stats
from nodedrop_rq.routing import QueueRouter, RoutedRedisError, shard_index
from nodedrop_rq.schedules import ScheduleStore, every_schedule
from nodedrop_rq.settings import Settings
from nodedrop_rq.submit import submit_execution
from tests.conftest import child_env, wait_for
from tests.exporter.conftest import q, scrape
from tests.schedules.conftest import cli
from tests.support import workflows


def two_servers(url_a: str, url_b: str, **extra: str) -> dict[str, str]:
    return {"EXECUTION_QUEUE_REDIS_URLS": f"orders={url_b}", "EXECUTION_RETRY_INTERVALS": "1",
            "EXECUTION_ISOLATION": "inline", **extra}


def worker(queue: str) -> list[str]:
    return [sys.executable, "-m", "nodedrop_rq", "worker", "--concurrency", "1", "--queue", queue]


def up(url: str) -> tuple[str, tuple]:
    return ("nodedrop_redis_up", (("redis", describe_redis_url(url)),))


def reaches(control: RoutedControl, execution_id: str, status: str, **fields: object):
    def check() -> bool:
        current = control.get(execution_id)
        return current["status"] == status and all(current.get(k) == v for k, v in fields.items())
    return check


def test_submit_run_retry_review_stats_export_and_schedules_across_two_servers(
        redis_url, second_redis_url, start_pool, start_exporter, start_scheduler):
    env = two_servers(redis_url, second_redis_url)
    settings = Settings.from_env(child_env(redis_url, **env))
    a, b = Redis.from_url(redis_url), Redis.from_url(second_redis_url)
    start_pool(args=worker("executions"), **env)
    start_pool(args=worker("orders"), **env)  # connects to B, the Redis of `orders`

    home_id = submit_execution(workflows.quick(), settings=settings)
    order_id = submit_execution(workflows.quick(), settings=settings, queue="orders")
    assert a.exists(keys.execution(home_id)) and not b.exists(keys.execution(home_id))
    assert b.exists(keys.execution(order_id)) and not a.exists(keys.execution(order_id))
    # A control that did not submit them finds each id on its server (one EXISTS per server).
    control = RoutedControl(QueueRouter(settings, socket_timeout=10), settings)
    wait_for(reaches(control, order_id, "succeeded"), 30, what="the orders execution on B")
    wait_for(reaches(control, home_id, "succeeded"), 30, what="the executions execution on A")

    # A retry and the failure review, on B.
    failed_id = submit_execution(workflows.failing(), {"tag": "two-servers"}, settings=settings, queue="orders")
    wait_for(reaches(control, failed_id, "failed", attempt=2), 30, what="two attempts on B")
    # The state reads `failed` a moment before RQ's failure MULTI adds the job to its failed registry.
    wait_for(lambda: control.failed_count("orders") == 1, 5, what="RQ's failed registry")
    assert [item.id for item in control.list_failed("orders")] == [failed_id]
    assert control.list_failed() == [] and control.failed_count("orders") == 1
    assert control.show_failed(failed_id)[0].queue == "orders"
    control.requeue(failed_id)
    wait_for(reaches(control, failed_id, "failed", attempt=4, requeues=1), 30, what="the requeued execution")

    rows = {row.queue: row for row in fleet_stats(control.router).rows}
    assert (rows["orders"].completed, rows["orders"].failed) == (1, 1)
    assert (rows["executions"].completed, rows["executions"].failed) == (1, 0)
    status = cli(redis_url, "status", order_id, "--json", **env)
    assert status.returncode == 0 and json.loads(status.stdout)["queue"] == "orders", status.stderr
    stats = cli(redis_url, "stats", "--json", **env)
    assert json.loads(stats.stdout)["orders"]["failed"] == 1, stats.stderr

    # One scrape covers both servers; the `queue` label says which queue, `redis` which server.
    samples = scrape(start_exporter(redis_url, **env))
    assert samples[up(redis_url)] == 1 and samples[up(second_redis_url)] == 1
    assert samples[q("nodedrop_executions_completed_total", "orders")] == 1
    assert samples[q("nodedrop_executions_failed_total", "orders")] == 2  # before and after the requeue
    assert samples[q("nodedrop_executions_retried_total", "orders")] == 2
    assert samples[q("nodedrop_executions_completed_total", "executions")] == 1
    assert samples[("nodedrop_worker_capacity", ())] == 2  # one worker on each server

    # Schedules live on A; a schedule of `orders` fires into B, where its worker runs it.
    schedule_id = ScheduleStore(a, settings).add(every_schedule("1"), workflows.quick(), None, queue="orders")
    start_scheduler(**env)
    fired = wait_for(lambda: list(b.scan_iter(keys.idempotency(f"schedule:{schedule_id}:*"))), 20,
                     what="a firing on B")
    fired_id = b.get(fired[0]).decode()
    wait_for(reaches(control, fired_id, "succeeded"), 30, what="the scheduled execution")
    assert not list(a.scan_iter(keys.idempotency("schedule:*")))


def test_a_dead_server_affects_only_its_queues(redis_url, second_redis_server, second_redis_url, start_pool,
                                              start_exporter, start_scheduler):
    env = two_servers(redis_url, second_redis_url)
    settings = Settings.from_env(child_env(redis_url, **env))
    a = Redis.from_url(redis_url)
    start_pool(args=worker("executions"), **env)
    exporter = start_exporter(redis_url, **env)
    waiting_on_b = submit_execution(workflows.quick(), settings=settings, queue="orders")  # no worker for it
    second_redis_server.stop()
    try:
        store = ScheduleStore(a, settings)
        to_b = store.add(every_schedule("1"), workflows.quick(), None, queue="orders")
        to_a = store.add(every_schedule("1"), workflows.quick(), None)
        scheduler = start_scheduler(**env)
        wait_for(lambda: len(list(a.scan_iter(keys.idempotency(f"schedule:{to_a}:*")))) >= 2, 20,
                 what="schedules into A firing while B is down")
        assert store.get(to_b).next_fire.timestamp() <= time.time()  # B's firing waits, overdue
        assert a.hget(keys.schedule_fires(), to_b) is None
        control = RoutedControl(QueueRouter(settings, socket_timeout=2), settings)
        home_id = submit_execution(workflows.quick(), settings=settings)
        wait_for(reaches(control, home_id, "succeeded"), 30, what="an execution on A while B is down")
        with pytest.raises(RoutedRedisError) as refused:
            submit_execution(workflows.quick(), settings=settings, queue="orders")
        assert describe_redis_url(second_redis_url) in str(refused.value) and "orders" in str(refused.value)

        with TestClient(create_app(settings), raise_server_exceptions=False) as api:
            answer = api.post("/api/executions", json={"workflow": workflows.quick(), "queue": "orders"})
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"] == "redis unavailable" and answer.json()["queues"] == ["orders"]
            assert describe_redis_url(second_redis_url) in answer.json()["detail"]
            assert api.get(f"/api/executions/{waiting_on_b}").status_code == 503  # it may be on B
            assert api.get(f"/api/executions/{home_id}").json()["status"] == "succeeded"
            assert api.post("/api/executions", json={"workflow": workflows.quick()}).status_code == 202
            health = api.get("/api/health")
            assert health.status_code == 503 and "orders" in health.json()["reason"]
            assert api.get("/healthz/readiness").status_code == 200  # REDIS_URL's server answers

        samples = scrape(exporter)
        assert samples[up(redis_url)] == 1 and samples[up(second_redis_url)] == 0
        assert q("nodedrop_queue_waiting", "executions") in samples
        assert q("nodedrop_queue_waiting", "orders") not in samples

        stats = cli(redis_url, "stats", **env)
        assert stats.returncode == 3 and "executions" in stats.stdout, stats
        assert stats.stderr.count("\n") == 1 and "orders" in stats.stderr
    finally:
        second_redis_server.start()
    wait_for(lambda: scrape(exporter)[up(second_redis_url)] == 1, 15, what="B read again")
    b = Redis.from_url(second_redis_url)
    wait_for(lambda: list(b.scan_iter(keys.idempotency(f"schedule:{to_b}:*"))), 20, what="B's schedule firing")
    assert scheduler.output().count("waits: ") == 1  # one warning for the outage, not one per round


def test_a_worker_serves_the_queues_of_one_server(redis_url, second_redis_url):
    refused = cli(redis_url, "worker", "--queue", "executions", "--queue", "orders", "--burst",
                  **two_servers(redis_url, second_redis_url))
    assert refused.returncode == 2, refused
    assert refused.stderr.count("\n") == 1 and "different Redis servers" in refused.stderr


def test_a_sharded_queue_keeps_each_workflow_on_one_shard_in_arrival_order(redis_url, second_redis_url):
    env = two_servers(redis_url, second_redis_url, EXECUTION_QUEUE_SHARDS="bulk=bulk-0|bulk-1",
                      EXECUTION_QUEUE_REDIS_URLS=f"bulk-1={second_redis_url}")
    settings = Settings.from_env(child_env(redis_url, **env))
    servers = [Redis.from_url(redis_url), Redis.from_url(second_redis_url)]  # bulk-0 on A, bulk-1 on B
    submitted: dict[str, list[str]] = {}
    for round_ in range(3):
        for key in ("customer-1", "customer-2", "customer-3", "customer-4"):
            execution_id = submit_execution(workflows.quick(), {"n": round_}, settings=settings, queue="bulk",
                                            shard_key=key)
            submitted.setdefault(key, []).append(execution_id)
    for key, ids in submitted.items():
        shard = shard_index(key, 2)
        waiting = [i.decode() for i in servers[shard].lrange(f"rq:queue:bulk-{shard}", 0, -1)]
        assert [i for i in waiting if i in ids] == ids  # one shard, in the order they arrived
        assert not servers[1 - shard].exists(keys.execution(ids[0]))
    assert {shard_index(key, 2) for key in submitted} == {0, 1}
