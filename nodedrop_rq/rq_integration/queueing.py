"""What the services ask of RQ: enqueue an execution's job, look jobs up, requeue and cancel them.

Only public RQ API is used here; the services never import RQ themselves.
"""

from __future__ import annotations

import warnings

from redis import Redis
from redis.client import Pipeline
from rq import Queue, Retry
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Callback, Job, JobStatus
from rq.registry import FailedJobRegistry

from nodedrop_rq.connection import SERIALIZER
from nodedrop_rq.rq_integration.jobs import FAILURE_CALLBACK, FUNC_NAME
from nodedrop_rq.settings import Settings


def execution_queue(connection: Redis, settings: Settings, name: str | None = None) -> Queue:
    return Queue(name or settings.queue, connection=connection, serializer=SERIALIZER,
                 default_timeout=settings.job_timeout)


# RQ keeps a hash of values no longer than this (hash-max-listpack-value) in a third of the memory.
_SHORT = 64


def enqueue(pipe: Pipeline, connection: Redis, settings: Settings, queue: str, execution_id: str,
            description: str) -> None:
    """Add the execution's RQ job to ``pipe`` (a transaction the caller executes).

    The job is ``run_execution()`` without arguments: its id is the execution's, whose state names the
    workflow document (stored once for all its executions) and holds the input. So every field of RQ's
    job hash stays short, and Redis keeps it in its compact encoding."""
    execution_queue(connection, settings, queue).enqueue_call(
        FUNC_NAME,
        job_id=execution_id,
        timeout=settings.job_timeout,
        result_ttl=settings.completion_ttl,
        failure_ttl=settings.failure_ttl,
        retry=Retry(max=len(settings.retry_intervals), interval=list(settings.retry_intervals))
        if settings.retry_intervals else None,
        on_failure=Callback(FAILURE_CALLBACK),
        description=short_description(description),
        pipeline=pipe,
    )


def short_description(name: str) -> str:
    """``workflow 'name'``, cut to fit a short hash value (RQ shows it in ``rq info`` and rq-dashboard)."""
    text = f"workflow {name!r}"
    if len(text.encode()) <= _SHORT:
        return text
    while len(text.encode()) > _SHORT - 3:
        text = text[:-1]
    return text + "..."


def fetch(connection: Redis, execution_id: str) -> Job | None:
    try:
        return Job.fetch(execution_id, connection=connection, serializer=SERIALIZER)
    except (NoSuchJobError, ValueError):  # RQ refuses ids with characters it never generates
        return None


def fetch_many(connection: Redis, ids: list[str]) -> list[Job | None]:
    return Job.fetch_many(ids, connection=connection, serializer=SERIALIZER)


def is_waiting(job: Job) -> bool:
    return job.get_status(refresh=False) in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED)


def is_failed(job: Job) -> bool:
    return job.get_status(refresh=False) in (JobStatus.FAILED, JobStatus.STOPPED)


def cancel(job: Job) -> None:
    """Take a waiting job off its queue or schedule (the execution is already ``cancelled``)."""
    try:
        job.cancel()
    except InvalidJobOperation:  # already cancelled
        pass


def failed_registry(connection: Redis, queue: str) -> FailedJobRegistry:
    return FailedJobRegistry(queue, connection=connection, serializer=SERIALIZER)


def requeue(connection: Redis, job: Job) -> bool:
    """Move a failed job back to its queue, as ``rq requeue`` does. False if it was not in the registry."""
    try:
        failed_registry(connection, job.origin).requeue(job)
    except InvalidJobOperation:
        return False
    return True


def exc_string(job: Job) -> str | None:
    """The exception of the job's last failure: its Result's, or (ExecutionJob writes no Result) the
    job's ``exc_info`` field, which RQ itself falls back to."""
    result = job.latest_result()
    if result is not None:
        return result.exc_string
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return job.exc_info
