"""Redis round trips and commands per job: an inline ExecutionWorker next to RQ's SimpleWorker.

    python -m bench.round_trips [--executions 500]

Runs each worker in this process (burst mode) against its own redis-server and counts what the client
sends: a round trip is one write of a command or pipeline to the socket, a command is what Redis counts
in INFO commandstats. Prints the totals per job, then where the round trips come from (call sites).
These counts do not depend on the machine's speed, unlike the timings of bench/throughput.py.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from redis import Redis
from rq import Queue
from rq.worker import SimpleWorker

from bench.common import trivial_workflow, write_result
from nodedrop_rq.connection import SERIALIZER
from nodedrop_rq.embedded_redis import EmbeddedRedis
from nodedrop_rq.settings import Settings
from nodedrop_rq.submit import submit_execution
from nodedrop_rq.worker import ExecutionWorker
from tests.support.counting import counting


def measure(url: str, label: str, count: int, enqueue: Callable[[Redis], None],
            make_worker: Callable[[Redis], Any]) -> dict[str, Any]:
    connection = Redis.from_url(url)
    connection.flushall()
    enqueue(connection)
    worker = make_worker(Redis.from_url(url))
    connection.config_resetstat()
    with counting() as sites:
        worker.work(burst=True, logging_level="WARNING", with_scheduler=False)
    commands = sum(v["calls"] for v in connection.info("commandstats").values())
    return {"setup": label, "jobs": count, "round_trips_per_job": round(sum(sites.values()) / count, 2),
            "commands_per_job": round(commands / count, 1),
            "sites": {site: round(n / count, 2) for site, n in sites.most_common() if n / count >= 0.05}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=500)
    count = parser.parse_args().executions
    with EmbeddedRedis() as server:
        settings = Settings.from_env({"REDIS_URL": server.url, "EXECUTION_ISOLATION": "inline"})
        workflow = trivial_workflow()

        def executions(connection: Redis) -> None:
            for i in range(count):
                submit_execution(workflow, {"n": i}, connection=connection, settings=settings)

        def noops(connection: Redis) -> None:
            queue = Queue("default", connection=connection, serializer=SERIALIZER)
            queue.enqueue_many([Queue.prepare_data("bench.noop.noop", result_ttl=3600) for _ in range(count)])

        results = [
            measure(server.url, "rq SimpleWorker, no-op job", count, noops,
                    lambda c: SimpleWorker([Queue("default", connection=c, serializer=SERIALIZER)], connection=c,
                                           serializer=SERIALIZER)),
            measure(server.url, "nodedrop ExecutionWorker inline, 3-node workflow", count, executions,
                    lambda c: ExecutionWorker([Queue(settings.queue, connection=c, serializer=SERIALIZER)],
                                              connection=c, settings=settings)),
        ]
    for result in results:
        print(f"\n{result['setup']}: {result['round_trips_per_job']} round trips and "
              f"{result['commands_per_job']} commands per job")
        for site, per_job in result["sites"].items():
            print(f"  {per_job:5.2f}  {site}")
    write_result("round_trips", {"executions": count, "results": results})


if __name__ == "__main__":
    main()
