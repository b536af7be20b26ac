"""The ceiling of one Redis for this workload: Redis commands and Redis CPU time per execution.

    python -m bench.redis_ceiling [--executions 2000] [--concurrency 2,8]

Starts its own redis-server, submits N executions of the 3-node workflow from this process, then runs
them with a real inline worker pool (`nodedrop-rq worker --isolation inline --burst`). For each phase it
reads Redis's own accounting: the commands it executed (INFO commandstats) and the CPU time its main
thread used (INFO cpu, used_cpu_sys_main_thread + used_cpu_user_main_thread; the main thread is the one
that runs commands, so it is what saturates). CPU per execution gives executions/s per Redis core:
how many executions one Redis can carry before its core is full, whatever the number of workers.

Redis's idle work (its 10 Hz timer, and workers blocked in BLMOVE with their heartbeats) is measured for
a few seconds with the pool idle and reported separately: under load it is a small share, but it grows with
the number of worker processes connected.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from typing import Any

from redis import Redis

from bench.common import env_for, stop, trivial_workflow, write_result
from nodedrop_rq.embedded_redis import EmbeddedRedis
from nodedrop_rq.settings import Settings
from nodedrop_rq.submit import submit_execution

IDLE_SECONDS = 3.0


def redis_usage(connection: Redis) -> tuple[float, int]:
    """(CPU seconds of Redis's main thread, or of the whole process on old versions; commands run)."""
    cpu = connection.info("cpu")
    if "used_cpu_sys_main_thread" in cpu:
        seconds = float(cpu["used_cpu_sys_main_thread"]) + float(cpu["used_cpu_user_main_thread"])
    else:
        seconds = float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])
    commands = sum(int(stat["calls"]) for stat in connection.info("commandstats").values())
    return seconds, commands


def measure(url: str, count: int, concurrency: int) -> dict[str, Any]:
    connection = Redis.from_url(url)
    connection.flushall()
    settings = Settings.from_env({"REDIS_URL": url, "EXECUTION_ISOLATION": "inline"})
    workflow = trivial_workflow()
    connection.config_resetstat()
    cpu0, commands0 = redis_usage(connection)
    for i in range(count):
        submit_execution(workflow, {"n": i}, connection=connection, settings=settings)
    cpu1, commands1 = redis_usage(connection)
    started = time.perf_counter()
    pool = subprocess.run(
        [sys.executable, "-m", "nodedrop_rq", "worker", "--isolation", "inline", "--burst",
         "--concurrency", str(concurrency)],
        env=env_for(url), capture_output=True, timeout=1800, check=False)
    took = time.perf_counter() - started
    cpu2, commands2 = redis_usage(connection)
    if pool.returncode != 0:
        raise RuntimeError(f"the worker pool exited with {pool.returncode}: {pool.stderr.decode()[-2000:]}")
    done = int(connection.zcard("rq:finished:executions"))
    if done != count:
        raise RuntimeError(f"{done} of {count} executions finished")
    submit_cpu, run_cpu = cpu1 - cpu0, cpu2 - cpu1
    per_execution = (submit_cpu + run_cpu) / count
    return {
        "executions": count, "concurrency": concurrency, "run_seconds": round(took, 2),
        "commands_per_execution": {"submit": round((commands1 - commands0) / count, 1),
                                   "run": round((commands2 - commands1) / count, 1),
                                   "total": round((commands2 - commands0) / count, 1)},
        "redis_cpu_us_per_execution": {"submit": round(submit_cpu / count * 1e6), "run": round(run_cpu / count * 1e6),
                                       "total": round(per_execution * 1e6)},
        "executions_per_second_per_redis_core": round(1 / per_execution) if per_execution else None,
        "redis_cpu_share_of_run": round(run_cpu / took, 3) if took else None,
    }


def idle_cost(url: str, concurrency: int) -> dict[str, Any]:
    """Redis CPU per second with a pool connected and nothing to do."""
    connection = Redis.from_url(url)
    connection.flushall()
    pool = subprocess.Popen([sys.executable, "-m", "nodedrop_rq", "worker", "--isolation", "inline",
                             "--concurrency", str(concurrency)], env=env_for(url),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while connection.scard("rq:workers") < concurrency and time.monotonic() < deadline:
            time.sleep(0.05)
        cpu0, commands0 = redis_usage(connection)
        time.sleep(IDLE_SECONDS)
        cpu1, commands1 = redis_usage(connection)
    finally:
        stop(pool)
    return {"concurrency": concurrency, "redis_cpu_ms_per_second": round((cpu1 - cpu0) / IDLE_SECONDS * 1e3, 2),
            "commands_per_second": round((commands1 - commands0) / IDLE_SECONDS, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=2000)
    parser.add_argument("--concurrency", default="2,8", help="worker processes, comma-separated")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    with EmbeddedRedis() as server:
        results = [measure(server.url, args.executions, c) for c in levels]
        idle = [idle_cost(server.url, c) for c in levels]
    print(f"{'workers':>7} {'cmds/exec':>10} {'(submit+run)':>13} {'Redis CPU/exec':>15} {'exec/s per Redis core':>22}"
          f" {'Redis busy':>11}")
    for r in results:
        c, u = r["commands_per_execution"], r["redis_cpu_us_per_execution"]
        print(f"{r['concurrency']:>7} {c['total']:>10} {c['submit']:>6}+{c['run']:<6} {u['total']:>12} us"
              f" {r['executions_per_second_per_redis_core']:>22} {r['redis_cpu_share_of_run']:>10.0%}")
    for i in idle:
        print(f"idle pool of {i['concurrency']}: Redis {i['redis_cpu_ms_per_second']} ms CPU/s, "
              f"{i['commands_per_second']} commands/s")
    write_result("redis_ceiling", {"results": results, "idle": idle})


if __name__ == "__main__":
    main()
