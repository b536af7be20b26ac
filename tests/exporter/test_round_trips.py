"""The collector's Redis round trips do not grow with queues, workers or jobs."""

from __future__ import annotations

from datetime import datetime, timezone

from redis import Redis

from exporter.collector import NodedropCollector
from nodedrop_rq import keys
from tests.support.counting import CountingRedis


def _populate(connection: Redis, queues: int, workers: int) -> None:
    now = datetime.now(timezone.utc).isoformat()
    with connection.pipeline() as pipe:
        for i in range(queues):
            pipe.sadd(keys.queues(), f"q{i}")
            pipe.rpush(f"rq:queue:q{i}", *[f"job-{i}-{j}" for j in range(5)])
            pipe.hset(f"rq:job:job-{i}-0", "enqueued_at", now)
        for i in range(workers):
            pipe.sadd("rq:workers", f"rq:worker:w{i}")
            pipe.hset(f"rq:worker:w{i}", mapping={"state": "idle", "last_heartbeat": now})
        pipe.execute()


def _scrape_round_trips(url: str, settings) -> tuple[int, list]:
    connection = CountingRedis.from_url(url)
    collector = NodedropCollector(connection, settings)
    list(collector.collect())  # loads the Lua script once
    CountingRedis.round_trips = 0
    families = list(collector.collect())
    return CountingRedis.round_trips, families


def test_round_trips_are_constant(redis_url, redis_conn, settings):
    _populate(redis_conn, queues=1, workers=1)
    small, _ = _scrape_round_trips(redis_url, settings)
    _populate(redis_conn, queues=20, workers=300)
    large, families = _scrape_round_trips(redis_url, settings)
    assert small == large == 2
    workers = next(f for f in families if f.name == "nodedrop_workers")
    assert {s.labels["state"]: s.value for s in workers.samples} == {"idle": 300, "busy": 0}


def test_workers_with_stale_heartbeats_are_not_counted(redis_url, redis_conn, settings):
    with redis_conn.pipeline() as pipe:
        pipe.sadd("rq:workers", "rq:worker:old", "rq:worker:new")
        pipe.hset("rq:worker:old", mapping={"state": "busy", "last_heartbeat": "2020-01-01T00:00:00+00:00"})
        pipe.hset("rq:worker:new", mapping={"state": "busy",
                                            "last_heartbeat": datetime.now(timezone.utc).isoformat()})
        pipe.execute()
    _, families = _scrape_round_trips(redis_url, settings)
    capacity = next(f for f in families if f.name == "nodedrop_worker_capacity")
    assert capacity.samples[0].value == 1
