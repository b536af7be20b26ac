"""Redis footprint: bytes and keys that each retained execution leaves, succeeded and failed.

    python -m bench.redis_footprint [--executions 100000] [--failed 10000] [--concurrency 2]

Against a fresh redis-server, with the default settings (TTLs, retries): one execution of the workflow
first (so that what all executions share exists: the workflow document, registries, counters), then N
executions of the trivial 3-node workflow of bench/throughput.py run by a worker pool, then the
memory they left once their event logs expired (60 s after each ended; the figure right after is printed
too): INFO's ``used_memory`` delta, and ``MEMORY USAGE`` (every sample) of every key, by key type, with the
growth of shared keys (registries, indexes) split over the executions. Failed executions
are the same workflow with a node that always fails: four attempts (the default 2, 4, 8 s retries),
then RQ's failed registry.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from typing import Any

from redis import Redis

from bench.common import start, stop, trivial_workflow, wait_until, workers_registered, write_result
from nodedrop_rq import keys
from nodedrop_rq.embedded_redis import EmbeddedRedis
from nodedrop_rq.settings import Settings
from nodedrop_rq.submit import submit_execution

QUEUE = "executions"
# Execution ids (uuid4 hex) and RQ execution ids inside key names.
_ID = re.compile(r"[0-9a-f]{32}")


def failing_workflow() -> dict[str, Any]:
    workflow = trivial_workflow()
    workflow["nodes"].append({"id": "boom", "type": "stop-and-error", "name": "boom",
                              "parameters": {"errorMessage": "planned failure"}})
    workflow["connections"].append({"id": "c-boom", "sourceNodeId": "total", "sourceOutput": "main",
                                    "targetNodeId": "boom", "targetInput": "main"})
    return workflow


def key_sizes(connection: Redis) -> dict[str, int]:
    """MEMORY USAGE (all samples) of every key."""
    names = list(connection.scan_iter(count=1000))
    sizes: dict[str, int] = {}
    for batch in range(0, len(names), 1000):
        part = names[batch:batch + 1000]
        with connection.pipeline(transaction=False) as pipe:
            for name in part:
                pipe.execute_command("MEMORY", "USAGE", name, "SAMPLES", "0")
            for name, size in zip(part, pipe.execute(), strict=True):
                if size is not None:
                    sizes[name.decode()] = int(size)
    return sizes


def key_type(name: str) -> str:
    return _ID.sub("<id>", name)


def measure(url: str, label: str, workflow: dict[str, Any], count: int, registry: str,
            concurrency: int) -> dict[str, Any]:
    connection = Redis.from_url(url)
    connection.flushall()
    settings = Settings(redis_url=url)
    pool = start([sys.executable, "-m", "nodedrop_rq", "worker", "--concurrency", str(concurrency)], url)
    done = f"rq:{registry}:{QUEUE}"
    try:
        wait_until(lambda: workers_registered(connection) >= concurrency, 60, "workers")
        submit_execution(workflow, {"n": -1}, connection=connection, settings=settings)
        wait_until(lambda: connection.zcard(done) >= 1, 60, "the first execution")
        connection.execute_command("MEMORY", "PURGE")
        before_memory = int(connection.info("memory")["used_memory"])
        before = key_sizes(connection)
        clock = time.monotonic()
        for i in range(count):
            submit_execution(workflow, {"n": i}, connection=connection, settings=settings)
        submitted = time.monotonic() - clock
        wait_until(lambda: connection.zcard(done) >= count + 1 and connection.zcard(f"nodedrop:active:{QUEUE}") == 0,
                   3600, f"{count} executions to end in {registry}")
        ran = time.monotonic() - clock
        connection.execute_command("MEMORY", "PURGE")
        ended_memory = int(connection.info("memory")["used_memory"])
        # What is retained: the event logs expire EVENT_LOG_TERMINAL_TTL s after their execution ended.
        time.sleep(keys.EVENT_LOG_TERMINAL_TTL)
        wait_until(lambda: not any(True for _ in connection.scan_iter(f"{keys.execution_events('')}*", count=10_000)),
                   keys.EVENT_LOG_TERMINAL_TTL + 120, "the event logs to expire")
        connection.execute_command("MEMORY", "PURGE")
        after_memory = int(connection.info("memory")["used_memory"])
        after = key_sizes(connection)
    finally:
        stop(pool)
    by_type: Counter[str] = Counter()
    keys_of_type: Counter[str] = Counter()
    for name, size in after.items():
        grown = size - before.get(name, 0)
        if name.startswith("rq:worker") or name.startswith("rq:wip") or name.startswith("rq:clean"):
            continue  # the pool's own keys, not the executions'
        kind = key_type(name)
        by_type[kind] += grown
        if name not in before:
            keys_of_type[kind] += 1
    total = sum(by_type.values())
    return {
        "setup": label, "executions": count, "submit_seconds": round(submitted, 1), "run_seconds": round(ran, 1),
        "used_memory_per_execution": round((after_memory - before_memory) / count),
        "used_memory_per_execution_at_its_end": round((ended_memory - before_memory) / count),
        "memory_usage_per_execution": round(total / count),
        "keys_per_execution": round(sum(keys_of_type.values()) / count, 2),
        "by_key_type": {kind: round(size / count) for kind, size in by_type.most_common() if abs(size) >= count},
        "new_keys_by_type": {kind: round(number / count, 2) for kind, number in keys_of_type.most_common()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=100_000, help="succeeded executions")
    parser.add_argument("--failed", type=int, default=10_000, help="failed executions (0: none)")
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    rows = []
    with EmbeddedRedis() as server:
        rows.append(measure(server.url, "succeeded", trivial_workflow(), args.executions, "finished",
                            args.concurrency))
        if args.failed:
            rows.append(measure(server.url, "failed", failing_workflow(), args.failed, "failed", args.concurrency))
    for row in rows:
        print(f"\n{row['setup']}: {row['executions']} executions (submitted in {row['submit_seconds']} s, "
              f"all ended after {row['run_seconds']} s)")
        print(f"  used_memory delta per execution: {row['used_memory_per_execution']} bytes retained "
              f"({row['used_memory_per_execution_at_its_end']} right after the last ended, with the event logs)")
        print(f"  MEMORY USAGE per execution:      {row['memory_usage_per_execution']} bytes, "
              f"{row['keys_per_execution']} keys")
        for kind, size in row["by_key_type"].items():
            print(f"    {kind:<40}{size:>7} bytes")
    print(f"wrote {write_result('redis_footprint', {'args': vars(args), 'rows': rows, 'at': time.time()})}")


if __name__ == "__main__":
    main()
