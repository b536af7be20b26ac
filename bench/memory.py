"""Memory: RSS of idle worker processes, and of a whole pool at concurrency 5 after 1,000 executions.

    python bench/memory.py [--executions 1000] [--isolation fork,inline]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from redis import Redis

from bench.common import descendants, start, stop, trivial_workflow, wait_until, workers_registered, write_result
from nodedrop_rq.embedded_redis import EmbeddedRedis
from nodedrop_rq.settings import Settings
from nodedrop_rq.submit import submit_execution


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def worker_pids(connection: Redis) -> list[int]:
    keys = connection.smembers("rq:workers")
    return [int(connection.hget(k, "pid")) for k in keys if connection.hget(k, "pid")]


def measure(url: str, isolation: str, count: int) -> dict[str, object]:
    connection = Redis.from_url(url)
    connection.flushall()
    pool = start([sys.executable, "-m", "nodedrop_rq", "worker", "--concurrency", "5"], url,
                 EXECUTION_ISOLATION=isolation)
    try:
        wait_until(lambda: workers_registered(connection) >= 5, 60, "workers")
        time.sleep(2)
        idle = [rss_mb(pid) for pid in worker_pids(connection)]
        pool_before = rss_mb(pool.pid) + sum(rss_mb(p) for p in descendants(pool.pid))
        settings = Settings(redis_url=url)
        workflow = trivial_workflow()
        for i in range(count):
            submit_execution(workflow, {"n": i}, connection=connection, settings=settings)
        wait_until(lambda: connection.zcard("rq:finished:executions") >= count, 300, "executions")
        time.sleep(1)
        after = [rss_mb(pid) for pid in worker_pids(connection)]
        pool_after = rss_mb(pool.pid) + sum(rss_mb(p) for p in descendants(pool.pid))
    finally:
        stop(pool)
    return {"isolation": isolation, "idle_worker_rss_mb": round(max(idle), 1),
            "worker_rss_after_mb": round(max(after), 1), "pool_rss_idle_mb": round(pool_before, 1),
            "pool_rss_after_mb": round(pool_after, 1), "executions": count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=1000)
    parser.add_argument("--isolation", default="fork,inline")
    args = parser.parse_args()
    with EmbeddedRedis() as server:
        rows = [measure(server.url, isolation, args.executions) for isolation in args.isolation.split(",")]
    print(f"\n{'isolation':<10}{'idle worker':>13}{'worker after':>14}{'pool idle':>11}{'pool after':>12}  (MB RSS)")
    for row in rows:
        print(f"{row['isolation']:<10}{row['idle_worker_rss_mb']:>13.1f}{row['worker_rss_after_mb']:>14.1f}"
              f"{row['pool_rss_idle_mb']:>11.1f}{row['pool_rss_after_mb']:>12.1f}")
    print(f"wrote {write_result('memory', {'args': vars(args), 'rows': rows})}")


if __name__ == "__main__":
    main()
