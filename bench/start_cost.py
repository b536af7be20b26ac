"""What the queue wait histogram costs the start transition: Redis commands, CPU time and memory.

    python -m bench.start_cost [--executions 2000]

Starts the same number of fresh executions twice against its own redis-server: once with the enqueue time
(the wait is observed: a bucket increment and the sum), once without it (the script skips the histogram),
and compares Redis' INFO commandstats (commands, and the microseconds Redis spent in the script) and the
counters hash's memory. Commands and bytes do not depend on the machine; the microseconds do.
"""

from __future__ import annotations

import argparse
import time

from redis import Redis

from bench.common import trivial_workflow, write_result
from nodedrop_rq import keys
from nodedrop_rq.embedded_redis import EmbeddedRedis
from nodedrop_rq.execution.transitions import Transitions
from nodedrop_rq.rq_integration import names
from nodedrop_rq.settings import Settings
from nodedrop_rq.submit import submit_execution


def measure(connection: Redis, settings: Settings, count: int, observe: bool) -> dict[str, float]:
    connection.flushall()
    ids = [submit_execution(trivial_workflow(), connection=connection, settings=settings) for _ in range(count)]
    transitions = Transitions(connection, settings, failed_registry=names.failed_registry)
    transitions.start(ids[0], settings.queue, "bench", "warm-up", enqueued_at=time.time() if observe else None)
    connection.config_resetstat()
    for n, execution_id in enumerate(ids[1:]):
        transitions.start(execution_id, settings.queue, "bench", f"t{n}",
                          enqueued_at=time.time() - 0.01 * (n % 500) if observe else None)
    stats = connection.info("commandstats")
    script = stats["cmdstat_evalsha"]
    started = count - 1
    return {"commands_per_start": sum(v["calls"] for v in stats.values()) / started,
            "script_usec_per_start": script["usec"] / started,
            "counters_hash_bytes": connection.memory_usage(keys.counters(settings.queue)) or 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=2000)
    args = parser.parse_args()
    with EmbeddedRedis() as server:
        connection = Redis.from_url(server.url)
        settings = Settings(redis_url=server.url)
        rows = {"without the wait histogram": measure(connection, settings, args.executions, observe=False),
                "with the wait histogram": measure(connection, settings, args.executions, observe=True)}
    print(f"{'start transition':<30}{'commands':>10}{'script µs':>11}{'counters hash bytes':>21}")
    for label, row in rows.items():
        print(f"{label:<30}{row['commands_per_start']:>10.2f}{row['script_usec_per_start']:>11.2f}"
              f"{row['counters_hash_bytes']:>21}")
    write_result("start_cost", {"executions": args.executions, "rows": rows})


if __name__ == "__main__":
    main()
