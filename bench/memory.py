"""Memory of a concurrency-5 pool (one container): RSS and PSS, idle and after N executions.

    python -m bench.memory [--executions 1000] [--isolation supervised,fork]

RSS counts every page a process maps, shared or not, so five forked workers "use" five times the pages
they share copy-on-write with their supervisor; PSS divides each shared page among the processes sharing
it, so the pool's PSS is what the container really costs (what a cgroup's memory limit sees, near enough).
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


def _kb(path: str, field: str) -> float:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except OSError:
        pass
    return 0.0


def rss_mb(pid: int) -> float:
    return _kb(f"/proc/{pid}/status", "VmRSS:") / 1024


def pss_mb(pid: int) -> float:
    return _kb(f"/proc/{pid}/smaps_rollup", "Pss:") / 1024


def tree(pid: int) -> dict[str, float]:
    pids = [pid, *descendants(pid)]
    workers = pids[1:] or pids
    return {"processes": len(pids), "rss_mb": round(sum(rss_mb(p) for p in pids), 1),
            "pss_mb": round(sum(pss_mb(p) for p in pids), 1),
            "worker_rss_mb": round(max(rss_mb(p) for p in workers), 1),
            "worker_pss_mb": round(max(pss_mb(p) for p in workers), 1)}


def measure(url: str, isolation: str, count: int) -> dict[str, object]:
    connection = Redis.from_url(url)
    connection.flushall()
    pool = start([sys.executable, "-m", "nodedrop_rq", "worker", "--concurrency", "5"], url,
                 EXECUTION_ISOLATION=isolation)
    try:
        wait_until(lambda: workers_registered(connection) >= 5, 60, "workers")
        time.sleep(2)
        idle = tree(pool.pid)
        settings = Settings(redis_url=url)
        workflow = trivial_workflow()
        for i in range(count):
            submit_execution(workflow, {"n": i}, connection=connection, settings=settings)
        wait_until(lambda: int(connection.hget(f"nodedrop:counters:{settings.queue}", "completed") or 0) >= count,
                   300, "executions")
        time.sleep(1)
        after = tree(pool.pid)
    finally:
        stop(pool)
    return {"isolation": isolation, "executions": count, "idle": idle, "after": after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=1000)
    parser.add_argument("--isolation", default="supervised,fork")
    args = parser.parse_args()
    with EmbeddedRedis() as server:
        rows = [measure(server.url, isolation, args.executions) for isolation in args.isolation.split(",")]
    print(f"\n{'isolation':<12}{'when':<7}{'procs':>6}{'pool RSS':>10}{'pool PSS':>10}{'worker RSS':>12}"
          f"{'worker PSS':>12}  (MB)")
    for row in rows:
        for when in ("idle", "after"):
            m = row[when]
            print(f"{row['isolation']:<12}{when:<7}{m['processes']:>6}{m['rss_mb']:>10.1f}{m['pss_mb']:>10.1f}"
                  f"{m['worker_rss_mb']:>12.1f}{m['worker_pss_mb']:>12.1f}")
    print(f"wrote {write_result('memory', {'args': vars(args), 'rows': rows})}")


if __name__ == "__main__":
    main()
