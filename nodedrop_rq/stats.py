"""Queue statistics with O(1) Redis work per queue, in one round trip.

The numbers behind ``nodedrop-rq stats``, ``/api/health`` and the exporter's queue gauges:
``waiting`` (LLEN of the queue), ``active`` (started registry), ``scheduled`` (waiting for a retry),
``completed`` (finished registry, kept for EXECUTION_COMPLETION_TTL), ``failed`` (failed registry).
No registry cleanup runs here: counting must not change what it counts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from redis import Redis
from redis.client import Pipeline

from nodedrop_rq import keys
from nodedrop_rq.rq_integration import names


@dataclass(frozen=True)
class QueueStats:
    queue: str
    waiting: int
    active: int
    completed: int
    failed: int
    scheduled: int

    def as_health(self) -> dict[str, int]:
        return {"waiting": self.waiting, "active": self.active, "completed": self.completed,
                "failed": self.failed}

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def queue_keys(queue: str) -> tuple[str, str, str, str, str]:
    return (names.queue(queue), *names.registries(queue))


def add_count_commands(pipe: Pipeline, queue: str) -> None:
    waiting, active, finished, failed, scheduled = queue_keys(queue)
    pipe.llen(waiting)
    pipe.zcard(active)
    pipe.zcard(finished)
    pipe.zcard(failed)
    pipe.zcard(scheduled)


def known_queues(connection: Redis, default: str) -> list[str]:
    names = {m.decode() if isinstance(m, bytes) else m for m in connection.smembers(keys.queues())}
    names.add(default)
    return sorted(names)


def queue_stats(connection: Redis, queues: list[str]) -> list[QueueStats]:
    with connection.pipeline(transaction=False) as pipe:
        for queue in queues:
            add_count_commands(pipe, queue)
        values = pipe.execute()
    return [QueueStats(queue, *map(int, values[i * 5:(i + 1) * 5])) for i, queue in enumerate(queues)]
