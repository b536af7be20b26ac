"""What the supervisor of long-lived worker processes does about them (``EXECUTION_ISOLATION=supervised``).

Executions run inside long-lived worker processes, so a crash, an OOM kill or a hang of one execution
would take the worker process with it. The supervisor (the pool's, see ``pool.py``) notices a dead child
within its one-second check and ends the child's attempt at once through RQ's failure path, exactly as a
fork worker does when its horse dies: the attempt is recorded as ``killed`` (a fenced transition, see
``nodedrop_rq.execution``) and RQ retries the job on the normal schedule. Without this, the execution
would wait for abandoned-job recovery (heartbeat expiry, 15 to 30 s).

It also kills a child whose execution outlives the job timeout by ``timeout_kill_grace`` seconds: the
in-process timeout (SIGALRM) cannot interrupt a node blocked in C code.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import time
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError
from rq.executions import Execution
from rq.job import Job
from rq.queue import Queue
from rq.utils import now
from rq.worker import Worker

from nodedrop_rq.rq_integration import names
from nodedrop_rq.rq_integration.execution_job import ExecutionJob
from nodedrop_rq.rq_integration.jobs import error_of, record_attempt_end

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Running:
    """An execution a worker process is running, as its RQ execution record says."""

    worker_name: str
    job_id: str
    execution_id: str
    started: float


def death_reason(exitcode: int | None) -> str:
    """RQ's wording for a dead work horse, so the execution's error reads as in fork isolation."""
    signal_part = f" (signal {-exitcode})" if exitcode is not None and exitcode < 0 else ""
    return f"Work-horse terminated unexpectedly; exit code {exitcode}{signal_part};"


def timeout_reason(job_timeout: int | None) -> str:
    return f"JobTimeoutException: execution ran past its timeout of {job_timeout} s and was killed"


def fail_attempts_of(connection: Redis, worker_name: str, reason: str) -> list[str]:
    """End, as failed attempts, the executions the dead worker process ``worker_name`` was running, and
    remove its registration. Returns the ids of the executions whose attempt this ended."""
    worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + worker_name, connection=connection,
                                job_class=ExecutionJob, serializer=names.SERIALIZER)
    if worker is None:
        return []  # it said goodbye (warm shutdown, recycling), or its key expired long ago
    ended = []
    for execution in worker.get_current_executions(refresh=True):
        try:
            # Our job class, as the worker's: a final failure is recorded without RQ's results stream.
            job = ExecutionJob.fetch(execution.job_id, connection=connection, serializer=names.SERIALIZER)
        except NoSuchJobError:
            continue  # deleted meanwhile: the maintenance sweep ends its execution
        job.ended_at = now()
        # Our transition first (fenced by this RQ execution's id: a stale record changes nothing), then
        # RQ's own failure path, which retries or fails the job as the transition decided.
        if record_attempt_end(connection, job, token=execution.id, error=error_of(reason, job)) is not None:
            ended.append(job.id)
        worker.handle_job_failure(job, Queue(job.origin, connection=connection, serializer=names.SERIALIZER),
                                  exc_string=reason, execution=execution)
    worker.register_death()
    return ended


def running(connection: Redis, worker_names: list[str]) -> list[Running]:
    """The executions the named worker processes are running (two pipelined round trips)."""
    with connection.pipeline(transaction=False) as pipe:
        for name in worker_names:
            pipe.smembers(names.worker_executions(name))
        members = pipe.execute()
    executions = [(name, Execution.from_composite_key(raw.decode(), connection))
                  for name, found in zip(worker_names, members, strict=True) for raw in found]
    if not executions:
        return []
    with connection.pipeline(transaction=False) as pipe:
        for _, execution in executions:
            pipe.hget(execution.key, "created_at")
        created = pipe.execute()
    return [Running(name, execution.job_id, execution.id, float(at))
            for (name, execution), at in zip(executions, created, strict=True) if at]


def overrunning(connection: Redis, current: list[Running], grace: int,
                clock: float | None = None) -> list[tuple[Running, int]]:
    """Of ``current``, those running longer than their job's timeout plus ``grace`` seconds, with that
    timeout."""
    if not current:
        return []
    with connection.pipeline(transaction=False) as pipe:
        for item in current:
            pipe.hget(Job.key_for(item.job_id), "timeout")
        timeouts = pipe.execute()
    clock = time.time() if clock is None else clock
    return [(item, int(float(timeout))) for item, timeout in zip(current, timeouts, strict=True)
            if timeout and float(timeout) > 0 and clock - item.started > float(timeout) + grace]


def kill_group(pid: int) -> None:
    """SIGKILL what is left of a worker process's group (its work horse or RQ scheduler process): a
    child of a dead worker would otherwise run on unsupervised."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def safely(action: str, function, *args):  # noqa: ANN001, ANN201 - a small guard for the pool's loop
    """Run one supervisor action; a Redis outage must not stop the supervisor (recovery then falls back
    to abandoned-job detection once Redis answers)."""
    try:
        return function(*args)
    except (RedisError, OSError, ValueError) as exc:
        log.warning("supervisor: could not %s: %s: %s", action, type(exc).__name__, exc)
        return None


def peak_resident_mb() -> float:
    """The most resident memory this process has had, in MB (``getrusage``: a system call, not a file
    read after every execution). The peak, not the current size: memory a process once grew to is
    rarely returned to the system, so the peak is what the next execution starts from."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux
