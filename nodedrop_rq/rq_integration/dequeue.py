"""``ExecutionQueue``: RQ's Queue whose dequeue takes the next job and reads it in one round trip.

RQ 3 moves the next job id into the queue's intermediate list (LMOVE) and then reads the job's hash
(HGETALL): two round trips before a job can start, each about 80 µs of the worker's CPU on this machine.
One Lua script does both, with the same effect on Redis as RQ's two commands, so RQ's intermediate-queue
cleanup and every RQ tool see exactly what they would. When the queue is empty the worker falls back to
RQ's own blocking wait (BLMOVE), so an idle worker still wakes the moment a job arrives.

The worker uses this class only for its dequeue (``ExecutionWorker.queue_class``); queues stay RQ's.
"""

from __future__ import annotations

from collections.abc import Iterable
from hashlib import sha1
from typing import Any

from redis import Redis
from redis.exceptions import NoScriptError
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job
from rq.queue import Queue
from rq.utils import as_text, get_version

# KEYS: the queue, its intermediate list. ARGV: the job key prefix. Returns false when the queue is empty,
# else {job id, the job hash as HGETALL returns it (empty when the job is gone)}.
TAKE = """
local id = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
if not id then return false end
return {id, redis.call('HGETALL', ARGV[1] .. id)}
"""
_TAKE_SHA = sha1(TAKE.encode(), usedforsecurity=False).hexdigest()  # the name Redis caches it by
# LMOVE, and so RQ's intermediate queue, came with Redis 6.2; before it RQ pops, which this leaves to RQ.
_LMOVE_SINCE = (6, 2, 0)


class ExecutionQueue(Queue):
    @classmethod
    def dequeue_any(cls, queues: Iterable[Queue], timeout: int | None, connection: Redis,
                    job_class: type[Job] | None = None, serializer: Any = None,
                    death_penalty_class: Any = None) -> tuple[Job, Queue] | None:
        queues = list(queues)
        if len(queues) != 1 or get_version(connection) < _LMOVE_SINCE:
            return super().dequeue_any(queues, timeout, connection=connection, job_class=job_class,
                                       serializer=serializer, death_penalty_class=death_penalty_class)
        queue = queues[0]
        job_cls = job_class or queue.job_class
        while True:
            reply = _take(connection, queue.key, job_cls.redis_job_namespace_prefix)
            if not reply:
                break
            job_id = as_text(reply[0])
            try:
                job = _job_from(reply, job_cls, connection, serializer)
            except Exception as exc:
                # As RQ: the worker reads these to fail the job it could not load.
                exc.job_id = job_id  # type: ignore[attr-defined]
                exc.queue = queue  # type: ignore[attr-defined]
                raise
            if job is None:
                continue  # the job is gone (deleted meanwhile): RQ passes over it as well
            return job, queue
        if timeout is None:
            return None
        # Empty: wait the way RQ's worker does (BLMOVE), which returns as soon as a job is pushed.
        return super().dequeue_any(queues, timeout, connection=connection, job_class=job_class,
                                   serializer=serializer, death_penalty_class=death_penalty_class)


def _job_from(reply: Any, job_class: type[Job], connection: Redis, serializer: Any) -> Job | None:
    """The job of a TAKE reply (None when its hash is gone)."""
    job_id, flat = as_text(reply[0]), reply[1]
    if not flat:
        return None
    job = job_class(job_id, connection=connection, serializer=serializer)
    job.restore(dict(zip(flat[::2], flat[1::2], strict=True)))
    return job


def _take(connection: Redis, queue_key: str, job_prefix: str) -> Any:
    intermediate = IntermediateQueue.get_intermediate_queue_key(queue_key)
    try:
        return connection.evalsha(_TAKE_SHA, 2, queue_key, intermediate, job_prefix)
    except NoScriptError:  # a restarted or flushed Redis: EVAL caches the script again
        return connection.eval(TAKE, 2, queue_key, intermediate, job_prefix)
