"""Worker CPU time per trivial execution: one ExecutionWorker in this process, in burst mode.

    python -m bench.worker_cpu [--executions 2000] [--profile 25]

CPU time (``time.process_time``: this process's user + system time, every thread included) is what a
loaded machine disturbs least: waiting for Redis or for the other core costs none. The executions are
submitted first (not counted), then one worker drains them the way a supervised pool's worker process does
(executions run in the worker process itself). ``--profile N`` prints the N functions with the most own time.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

from redis import Redis
from rq import Queue

from bench.common import trivial_workflow, write_result
from nodedrop_rq.connection import SERIALIZER
from nodedrop_rq.embedded_redis import EmbeddedRedis
from nodedrop_rq.settings import Settings
from nodedrop_rq.submit import submit_execution
from nodedrop_rq.worker import ExecutionWorker


def measure(url: str, count: int, profile: int) -> dict[str, float]:
    # The worker process of a supervised pool runs executions in-process, as `inline` does here.
    settings = Settings.from_env({"REDIS_URL": url, "EXECUTION_ISOLATION": "inline"})
    connection = Redis.from_url(url)
    connection.flushall()
    workflow = trivial_workflow()
    with connection.pipeline(transaction=False):
        for i in range(count):
            submit_execution(workflow, {"n": i}, connection=connection, settings=settings)
    worker = ExecutionWorker([Queue(settings.queue, connection=Redis.from_url(url), serializer=SERIALIZER)],
                             connection=Redis.from_url(url), settings=settings)
    profiler = cProfile.Profile() if profile else None
    cpu, wall = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    worker.work(burst=True, logging_level="WARNING", with_scheduler=False)
    if profiler:
        profiler.disable()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    done = connection.hget(f"nodedrop:counters:{settings.queue}", "completed")
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(profile)
    return {"executions": count, "completed": int(done or 0), "cpu_ms_per_execution": round(cpu / count * 1000, 3),
            "wall_ms_per_execution": round(wall / count * 1000, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=2000)
    parser.add_argument("--profile", type=int, default=0, help="print the N functions with the most own time")
    args = parser.parse_args()
    with EmbeddedRedis() as server:
        row = measure(server.url, args.executions, args.profile)
    print(f"worker CPU {row['cpu_ms_per_execution']} ms per trivial execution "
          f"(wall {row['wall_ms_per_execution']} ms; {row['completed']}/{row['executions']} completed)")
    print(f"wrote {write_result('worker_cpu', {'args': vars(args), 'row': row, 'at': time.time()})}")


if __name__ == "__main__":
    main()
