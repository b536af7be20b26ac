"""What the services ask of RQ: enqueue an execution's job, look jobs up, requeue and cancel them.

Only public RQ API is used here; the services never import RQ themselves.
"""

from __future__ import annotations

from typing import Any

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


def enqueue(pipe: Pipeline, connection: Redis, settings: Settings, queue: str, execution_id: str,
            document: dict[str, Any], items: list[dict[str, Any]], description: str) -> None:
    """Add the execution's RQ job to ``pipe`` (a transaction the caller executes)."""
    execution_queue(connection, settings, queue).enqueue_call(
        FUNC_NAME,
        args=(execution_id, document, items),
        job_id=execution_id,
        timeout=settings.job_timeout,
        result_ttl=settings.completion_ttl,
        failure_ttl=settings.failure_ttl,
        retry=Retry(max=len(settings.retry_intervals), interval=list(settings.retry_intervals))
        if settings.retry_intervals else None,
        on_failure=Callback(FAILURE_CALLBACK),
        description=description,
        pipeline=pipe,
    )


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
    result = job.latest_result()
    return result.exc_string if result is not None else None
