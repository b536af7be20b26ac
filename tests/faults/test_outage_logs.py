"""A Redis outage reads as one line per worker when it starts and one when it ends: no tracebacks, no
line per reconnection attempt, and the scheduler process survives it."""

from __future__ import annotations

from redis import Redis

from nodedrop_rq.embedded_redis import EmbeddedRedis
from nodedrop_rq.submit import submit_execution
from tests.conftest import holds_for, wait_for
from tests.support import workflows


def test_a_redis_outage_logs_one_line_per_worker_each_way(start_pool, tmp_path, settings):
    server = EmbeddedRedis(tmp_path, persistent=True)
    server.start()
    try:
        connection = Redis.from_url(server.url)
        pool = start_pool(concurrency=2, REDIS_URL=server.url)
        wait_for(lambda: len(connection.smembers("rq:workers")) == 2, 20, what="two workers")
        wait_for(lambda: "Scheduler for executions started" in pool.output(), 20, what="the scheduler")
        server.stop()
        # Each worker notices at its next blocking dequeue round (at most the dequeue timeout, 5 s).
        wait_for(lambda: pool.output().count("could not connect to Redis") >= 2
                 and "Scheduler: Redis does not answer" in pool.output(), 30, what="the outage lines")
        # Stay down a few reconnection attempts longer (RQ backs off 1, 2, 4 s): none may be logged.
        # An outage lasting several reconnection attempts: none of them may add a line.
        holds_for(lambda: pool.output().count("could not connect to Redis") == 2, 4, what="no line per attempt")
        held = pool.output()
        server.start()
        wait_for(lambda: pool.output().count("Redis answers again") >= 3, 40,
                 what=lambda: f"both workers and the scheduler to recover:\n{pool.output()[-2000:]}")
        execution_id = submit_execution(workflows.quick(), connection=connection,
                                        settings=settings.with_overrides(redis_url=server.url))
        wait_for(lambda: connection.hget(f"nodedrop:execution:{execution_id}", "status") == b"succeeded", 30,
                 what="an execution after the outage")
        output = pool.output()
        assert "Traceback" not in output, output
        assert output.count("could not connect to Redis") == 2, output
        assert held.count("could not connect to Redis") == 2
    finally:
        server.stop()
