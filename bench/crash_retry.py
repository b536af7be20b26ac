"""Crash → retry: how long after a worker process is SIGKILLed mid-execution its attempt is ended and
the execution runs again, per isolation.

    python -m bench.crash_retry [--rounds 5] [--isolation supervised,fork,inline]

For each round: submit an execution whose second node waits 3 s, wait until it is in that node, SIGKILL the
process running it (supervised/inline: the worker process; fork: its work horse), and read from the
execution's state when its attempt was ended (``failed`` → ``retrying``) and when the second attempt
started. The retry schedule's first interval (2 s, RQ's whole-second scheduling adds up to 1 s more) is
part of the second figure; the first is what the isolation decides. Under plain `rq worker` with inline
isolation no supervisor exists and abandoned-job detection ends the attempt (one pool here, so the
pool's replacement worker does it).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Any

from redis import Redis

from bench.common import percentile, start, stop, wait_until, workers_registered, write_result
from nodedrop_rq.control import ExecutionControl
from nodedrop_rq.embedded_redis import EmbeddedRedis
from nodedrop_rq.settings import Settings
from nodedrop_rq.state import parse_iso
from nodedrop_rq.submit import submit_execution
from tests.support.processes import descendants


def waiting_workflow() -> dict[str, Any]:
    nodes = [{"id": "start", "type": "manual-trigger", "name": "start", "parameters": {}},
             {"id": "wait", "type": "delay", "name": "wait", "parameters": {"amount": 3, "timeUnit": "seconds"}}]
    return {"name": "crash-retry", "nodes": nodes, "settings": {},
            "connections": [{"id": "c0", "sourceNodeId": "start", "sourceOutput": "main", "targetNodeId": "wait",
                             "targetInput": "main"}]}


def victim(connection: Redis, execution_id: str, isolation: str) -> int:
    name = connection.hget(f"rq:job:{execution_id}", "worker_name").decode()
    pid = int(connection.hget(f"rq:worker:{name}", "pid"))
    if isolation != "fork":
        return pid
    horses = [p for p in descendants(pid) if os.getpgid(p) == p]  # the horse leads its own group
    return horses[0]


def one_round(connection: Redis, settings: Settings, isolation: str) -> dict[str, float]:
    execution_id = submit_execution(waiting_workflow(), connection=connection, settings=settings)
    key = f"nodedrop:execution:{execution_id}"
    wait_until(lambda: connection.hget(key, "currentNode") == b"wait", 30, "the execution to reach its wait node")
    pid = victim(connection, execution_id, isolation)
    killed = time.time()
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: int(connection.hget(key, "attempt") or 0) >= 2, 60, "the second attempt")
    state = ExecutionControl(connection, settings).get(execution_id)
    first, second = state["attempts"][0], state["attempts"][1]
    ended = parse_iso(first["finishedAt"]).timestamp()
    restarted = parse_iso(second["startedAt"]).timestamp()
    wait_until(lambda: connection.hget(key, "status") in (b"succeeded", b"failed"), 60, "the execution to end")
    return {"attempt_ended_after_s": round(ended - killed, 3), "rerun_started_after_s": round(restarted - killed, 3),
            "first_error": first["error"]["kind"]}


def measure(url: str, isolation: str, rounds: int) -> dict[str, Any]:
    connection = Redis.from_url(url)
    connection.flushall()
    settings = Settings.from_env({"REDIS_URL": url})
    pool = start([sys.executable, "-m", "nodedrop_rq", "worker", "--concurrency", "2"], url,
                 EXECUTION_ISOLATION=isolation)
    try:
        wait_until(lambda: workers_registered(connection) >= 2, 60, "workers")
        samples = [one_round(connection, settings, isolation) for _ in range(rounds)]
    finally:
        stop(pool)
    ended = [s["attempt_ended_after_s"] for s in samples]
    rerun = [s["rerun_started_after_s"] for s in samples]
    return {"isolation": isolation, "rounds": rounds, "errors": sorted({s["first_error"] for s in samples}),
            "attempt_ended_p50_s": round(percentile(ended, 50), 3), "attempt_ended_max_s": round(max(ended), 3),
            "rerun_started_p50_s": round(percentile(rerun, 50), 3), "rerun_started_max_s": round(max(rerun), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--isolation", default="supervised,fork")
    args = parser.parse_args()
    with EmbeddedRedis() as server:
        rows = [measure(server.url, isolation, args.rounds) for isolation in args.isolation.split(",")]
    print(f"\n{'isolation':<12}{'rounds':>7}{'ended p50':>11}{'ended max':>11}{'rerun p50':>11}{'rerun max':>11}"
          "  recorded as")
    for row in rows:
        print(f"{row['isolation']:<12}{row['rounds']:>7}{row['attempt_ended_p50_s']:>11.2f}"
              f"{row['attempt_ended_max_s']:>11.2f}{row['rerun_started_p50_s']:>11.2f}"
              f"{row['rerun_started_max_s']:>11.2f}  {', '.join(row['errors'])}")
    print(f"wrote {write_result('crash_retry', {'args': vars(args), 'rows': rows, 'at': time.time()})}")


if __name__ == "__main__":
    main()
