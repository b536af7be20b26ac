"""Latency: submit -> started and submit -> finished with idle workers waiting, p50/p95/p99.

    python bench/latency.py [--executions 300] [--isolation supervised,fork]

One execution of the trivial workflow at a time; "started" and "finished" are the times RQ records on
the job (same machine clock as the submitter).
"""

from __future__ import annotations

import argparse
import sys
import time

from redis import Redis
from rq.job import Job

from bench.common import percentile, start, stop, trivial_workflow, wait_until, workers_registered, write_result
from nodedrop_rq.connection import SERIALIZER
from nodedrop_rq.embedded_redis import EmbeddedRedis
from nodedrop_rq.settings import Settings
from nodedrop_rq.submit import submit_execution


def measure(url: str, isolation: str, count: int) -> dict[str, object]:
    connection = Redis.from_url(url)
    connection.flushall()
    settings = Settings(redis_url=url)
    pool = start([sys.executable, "-m", "nodedrop_rq", "worker", "--concurrency", "2"], url,
                 EXECUTION_ISOLATION=isolation)
    to_start, to_finish = [], []
    try:
        wait_until(lambda: workers_registered(connection) >= 2, 60, "workers")
        time.sleep(1)
        workflow = trivial_workflow()
        for i in range(count):
            submitted = time.time()
            execution_id = submit_execution(workflow, {"n": i}, connection=connection, settings=settings)
            wait_until(lambda eid=execution_id: connection.zscore("rq:finished:executions", eid) is not None,
                       30, "execution")
            job = Job.fetch(execution_id, connection=connection, serializer=SERIALIZER)
            to_start.append((job.started_at.timestamp() - submitted) * 1000)
            to_finish.append((job.ended_at.timestamp() - submitted) * 1000)
            time.sleep(0.01)  # workers are back to waiting in BLMOVE
    finally:
        stop(pool)
    row: dict[str, object] = {"isolation": isolation, "executions": count}
    for name, values in (("submit_to_start_ms", to_start), ("submit_to_finish_ms", to_finish)):
        row[name] = {p: round(percentile(values, p), 2) for p in (50, 95, 99)}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=300)
    parser.add_argument("--isolation", default="supervised,fork")
    args = parser.parse_args()
    with EmbeddedRedis() as server:
        rows = [measure(server.url, isolation, args.executions) for isolation in args.isolation.split(",")]
    print(f"\n{'isolation':<12}{'start p50':>11}{'p95':>8}{'p99':>8}{'finish p50':>12}{'p95':>8}{'p99':>8}  (ms)")
    for row in rows:
        s, f = row["submit_to_start_ms"], row["submit_to_finish_ms"]
        print(f"{row['isolation']:<12}{s[50]:>11.2f}{s[95]:>8.2f}{s[99]:>8.2f}{f[50]:>12.2f}{f[95]:>8.2f}{f[99]:>8.2f}")
    print(f"wrote {write_result('latency', {'args': vars(args), 'rows': rows})}")


if __name__ == "__main__":
    main()
