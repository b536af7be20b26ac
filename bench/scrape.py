"""Scrape cost: nodedrop-exporter's collector next to rq-exporter's on the same Redis.

    python bench/scrape.py [--workers 1000] [--queues 20] [--jobs 1000000] [--repeat 5]

Starts its own redis-server on a free loopback port, registers the workers, queues and registry
entries, then times full collections of each collector and counts their Redis round trips and
commands (INFO commandstats). rq-exporter pins redis<6, so it is installed with --no-deps next to our
redis client (`pip install --no-deps rq-exporter`); only its collector module is used.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from redis import Redis

from exporter.collector import NodedropCollector
from nodedrop_rq import keys
from nodedrop_rq.embedded_redis import EmbeddedRedis
from nodedrop_rq.settings import Settings

RESULTS = Path(__file__).parent / "results"


class CountingRedis(Redis):
    round_trips = 0

    def execute_command(self, *args, **kwargs):
        CountingRedis.round_trips += 1
        return super().execute_command(*args, **kwargs)

    def pipeline(self, transaction=True, shard_hint=None):
        pipe = super().pipeline(transaction, shard_hint)
        original = pipe.execute

        def execute(raise_on_error=True):
            CountingRedis.round_trips += 1
            return original(raise_on_error)

        pipe.execute = execute
        return pipe


def populate(connection: Redis, workers: int, queues: int, jobs: int) -> None:
    now = datetime.now(timezone.utc)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    future = time.time() + 10**7
    names = [f"q{i}" for i in range(queues)]
    with connection.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.sadd("rq:queues", f"rq:queue:{name}")
            pipe.sadd(keys.queues(), name)
            pipe.rpush(f"rq:queue:{name}", *[f"{name}-waiting-{j}" for j in range(100)])
            pipe.hset(f"rq:job:{name}-waiting-0", mapping={"enqueued_at": stamp, "status": "queued"})
        for i in range(workers):
            key = f"rq:worker:w{i}"
            queue = names[i % queues]
            pipe.sadd("rq:workers", key)
            pipe.sadd(f"rq:workers:{queue}", key)
            pipe.hset(key, mapping={"name": f"w{i}", "queues": queue, "state": "busy" if i % 3 else "idle",
                                    "birth": stamp, "last_heartbeat": stamp, "successful_job_count": i,
                                    "failed_job_count": 0, "total_working_time": 1.5, "pid": 1000 + i,
                                    "hostname": "bench"})
        pipe.execute()
    batch = 20_000
    per_registry = jobs // (queues * 2)
    for name in names:
        for registry in ("finished", "failed"):
            for start in range(0, per_registry, batch):
                members = {f"{name}-{registry}-{j}": future for j in range(start, min(per_registry, start + batch))}
                connection.zadd(f"rq:{registry}:{name}", members)


def commands_total(connection: Redis) -> int:
    return sum(v["calls"] for k, v in connection.info("commandstats").items())


def measure(name: str, collect, connection: Redis, repeat: int) -> dict[str, float]:
    list(collect())  # warm up (script load, imports)
    times, trips, cmds = [], [], []
    for _ in range(repeat):
        before = commands_total(connection)
        CountingRedis.round_trips = 0
        started = time.perf_counter()
        families = list(collect())
        times.append(time.perf_counter() - started)
        trips.append(CountingRedis.round_trips)
        cmds.append(commands_total(connection) - before - 1)  # minus the INFO of `before`
    samples = sum(len(f.samples) for f in families)
    return {"collector": name, "median_s": statistics.median(times), "min_s": min(times),
            "round_trips": statistics.median(trips), "redis_commands": statistics.median(cmds), "samples": samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--queues", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    try:
        from rq_exporter.collector import RQCollector
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "rq-exporter==3.1.0"], check=True)
        from rq_exporter.collector import RQCollector
    from rq import Queue, Worker

    with EmbeddedRedis() as server:
        setup = Redis.from_url(server.url)
        started = time.perf_counter()
        populate(setup, args.workers, args.queues, args.jobs)
        print(f"populated {args.workers} workers, {args.queues} queues, {args.jobs} registry entries "
              f"in {time.perf_counter() - started:.1f} s; Redis used_memory "
              f"{setup.info('memory')['used_memory_human']}")
        connection = CountingRedis.from_url(server.url)
        ours = NodedropCollector(connection, Settings())
        theirs = RQCollector(connection, Worker, Queue)
        rows = [measure("nodedrop-exporter", ours.collect, setup, args.repeat),
                measure("rq-exporter 3.1.0", theirs.collect, setup, args.repeat)]
    print(f"\n{'collector':<20}{'median ms':>12}{'min ms':>10}{'round trips':>13}{'commands':>10}{'samples':>9}")
    for row in rows:
        print(f"{row['collector']:<20}{row['median_s'] * 1000:>12.1f}{row['min_s'] * 1000:>10.1f}"
              f"{row['round_trips']:>13.0f}{row['redis_commands']:>10.0f}{row['samples']:>9}")
    ratio = rows[1]["median_s"] / rows[0]["median_s"]
    print(f"\nnodedrop-exporter scrape takes 1/{ratio:.1f} of rq-exporter's time")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "scrape.json"
    out.write_text(json.dumps({"args": vars(args), "rows": rows, "speedup": ratio}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
