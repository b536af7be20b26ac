"""Throughput: executions/s of the worker pool next to plain RQ, in the same run on the same Redis.

    python bench/throughput.py [--executions 2000] [--concurrency 1,2,5] [--isolation supervised,fork]

For each setup: start the workers, wait until they are registered, enqueue N jobs in one pipeline
(nodedrop: N executions of a trivial 3-node workflow; RQ: N calls of a no-op function), and time from
the first start to the last end using the timestamps RQ writes on each job. Worker start-up is excluded.
CPU per job is the CPU time the whole process tree (supervisor, workers, horses, scheduler) spent from
registration to the last job's end, divided by the jobs: what a loaded machine disturbs least.
"""

from __future__ import annotations

import argparse
import sys
import time

from redis import Redis
from rq import Queue
from rq.job import Job

from bench.common import (
    BIN,
    start,
    stop,
    tree_cpu_seconds,
    trivial_workflow,
    wait_until,
    workers_registered,
    write_result,
)
from nodedrop_rq.connection import SERIALIZER
from nodedrop_rq.embedded_redis import EmbeddedRedis
from nodedrop_rq.settings import Settings
from nodedrop_rq.submit import submit_execution


def run_setup(url: str, label: str, command: list[str], processes: int, enqueue, count: int,
              **env: str) -> dict[str, float | str | int]:
    connection = Redis.from_url(url)
    connection.flushall()
    ids = enqueue(connection, count)
    worker = start(command, url, **env)
    try:
        wait_until(lambda: workers_registered(connection) >= processes, 60, f"{label} workers")
        cpu = tree_cpu_seconds(worker.pid)
        wait_until(lambda: _done(connection) >= count, 600, f"{label} to finish {count} jobs")
        cpu = tree_cpu_seconds(worker.pid) - cpu
    finally:
        stop(worker)
    started, ended = _span(connection, ids)
    seconds = ended - started
    return {"setup": label, "processes": processes, "jobs": count, "seconds": round(seconds, 3),
            "per_second": round(count / seconds, 1), "cpu_ms_per_job": round(cpu / count * 1000, 2)}


def _done(connection: Redis) -> int:
    total = 0
    for queue in ("executions", "default"):
        total += connection.zcard(f"rq:finished:{queue}") + connection.zcard(f"rq:failed:{queue}")
    return total


def _span(connection: Redis, ids: list[str]) -> tuple[float, float]:
    starts, ends = [], []
    for batch in range(0, len(ids), 1000):
        for job in Job.fetch_many(ids[batch:batch + 1000], connection=connection, serializer=SERIALIZER):
            if job is not None and job.started_at and job.ended_at:
                starts.append(job.started_at.timestamp())
                ends.append(job.ended_at.timestamp())
    return min(starts), max(ends)


def enqueue_noop(connection: Redis, count: int) -> list[str]:
    queue = Queue("default", connection=connection, serializer=SERIALIZER)
    jobs = queue.enqueue_many([Queue.prepare_data("bench.noop.noop", result_ttl=3600) for _ in range(count)])
    return [job.id for job in jobs]


def enqueue_executions(connection: Redis, count: int) -> list[str]:
    settings = Settings(redis_url="redis://unused")
    workflow = trivial_workflow()
    return [submit_execution(workflow, {"n": i}, connection=connection, settings=settings) for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=2000)
    parser.add_argument("--concurrency", default="1,2,5")
    parser.add_argument("--isolation", default="supervised,fork")
    args = parser.parse_args()
    rq = str(BIN / "rq")
    json_s = "rq.serializers.JSONSerializer"
    rows = []
    with EmbeddedRedis() as server:
        url = server.url
        rows.append(run_setup(url, "rq worker (fork)", [rq, "worker", "-S", json_s, "--url", url, "default"], 1,
                              enqueue_noop, args.executions))
        rows.append(run_setup(url, "rq worker -w SimpleWorker",
                              [rq, "worker", "-w", "rq.worker.SimpleWorker", "-S", json_s, "--url", url, "default"],
                              1, enqueue_noop, args.executions))
        for isolation in args.isolation.split(","):
            for concurrency in (int(c) for c in args.concurrency.split(",")):
                command = [sys.executable, "-m", "nodedrop_rq", "worker", "--concurrency", str(concurrency)]
                rows.append(run_setup(url, f"nodedrop-rq worker {isolation} c={concurrency}", command, concurrency,
                                      enqueue_executions, args.executions, EXECUTION_ISOLATION=isolation))
    base = rows[0]["per_second"]
    print(f"\n{'setup':<40}{'procs':>6}{'jobs':>7}{'seconds':>9}{'per s':>9}{'x rq worker':>13}{'CPU ms/job':>12}")
    for row in rows:
        row["ratio_to_rq_worker"] = round(row["per_second"] / base, 2)
        print(f"{row['setup']:<40}{row['processes']:>6}{row['jobs']:>7}{row['seconds']:>9.2f}"
              f"{row['per_second']:>9.1f}{row['ratio_to_rq_worker']:>13.2f}{row['cpu_ms_per_job']:>12.2f}")
    print(f"wrote {write_result('throughput', {'args': vars(args), 'rows': rows, 'at': time.time()})}")


if __name__ == "__main__":
    main()
