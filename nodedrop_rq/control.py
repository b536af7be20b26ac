"""What operators and clients do to executions: look them up, cancel them, review and requeue failures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis import Redis
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry

from nodedrop_rq import counters, events, keys, state
from nodedrop_rq.connection import SERIALIZER
from nodedrop_rq.errors import ExecutionNotFound, InvalidOperation
from nodedrop_rq.settings import Settings
from nodedrop_rq.state import ExecutionStore, iso, utc_now


@dataclass(frozen=True)
class FailedExecution:
    id: str
    queue: str
    failed_at: str | None
    workflow_name: str | None
    error: dict[str, Any] | None
    attempts: int | None
    exc_string: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "queue": self.queue, "failedAt": self.failed_at,
                "workflowName": self.workflow_name, "error": self.error, "attempts": self.attempts,
                "excString": self.exc_string}


class ExecutionControl:
    def __init__(self, connection: Redis, settings: Settings) -> None:
        self.connection = connection
        self.settings = settings
        self.store = ExecutionStore(connection, settings)

    def get(self, execution_id: str) -> dict[str, Any]:
        found = self.store.get(execution_id)
        if found is None:
            raise ExecutionNotFound(execution_id)
        return found

    def cancel(self, execution_id: str) -> dict[str, Any]:
        """Cancel a queued, retrying or running execution. Queued and retrying ones are cancelled at
        once; a running one stops at its next node boundary. Returns the state after the request."""
        current = self.get(execution_id)
        if current["status"] in state.TERMINAL:
            raise InvalidOperation(f"execution {execution_id} already {current['status']}")
        key = keys.execution(execution_id)
        # The flag first: a worker that dequeues the job meanwhile sees it and does not run it.
        self.connection.hset(key, "cancelRequested", "1")
        job = self._job(execution_id)
        if job is not None and job.get_status(refresh=False) in (JobStatus.QUEUED, JobStatus.SCHEDULED,
                                                                 JobStatus.DEFERRED):
            with self.connection.pipeline() as pipe:
                job.cancel(pipeline=pipe)
                self.store.update(pipe, execution_id, {"status": state.CANCELLED, "finishedAt": iso(utc_now()),
                                                       "nextRetryAt": ""})
                counters.record_outcome(pipe, job.origin, counters.CANCELLED, None)
                events.publish(pipe, events.CANCELLED, execution_id)
                pipe.execute()
        return self.get(execution_id)

    # -- manual review of the failed registry -------------------------------------------------

    def failed_ids(self, queue: str | None = None, limit: int = 100, offset: int = 0) -> list[str]:
        registry = self._failed_registry(queue)
        return registry.get_job_ids(offset, offset + limit - 1, desc=True, cleanup=False)

    def failed_count(self, queue: str | None = None) -> int:
        return self._failed_registry(queue).get_job_count(cleanup=False)

    def list_failed(self, queue: str | None = None, limit: int = 100, offset: int = 0) -> list[FailedExecution]:
        ids = self.failed_ids(queue, limit, offset)
        states = self.store.get_many(ids)
        jobs = Job.fetch_many(ids, connection=self.connection, serializer=SERIALIZER)
        return [self._failed(i, s, j, queue) for i, s, j in zip(ids, states, jobs, strict=True)]

    def show_failed(self, execution_id: str) -> tuple[FailedExecution, dict[str, Any] | None]:
        job = self._job(execution_id)
        if job is None or job.get_status(refresh=False) != JobStatus.FAILED:
            raise ExecutionNotFound(execution_id)
        found = self.store.get(execution_id)
        return self._failed(execution_id, found, job, job.origin), found

    def requeue(self, execution_id: str) -> dict[str, Any]:
        """Run a failed execution again, with the full retry schedule."""
        job = self._job(execution_id)
        if job is None:
            raise ExecutionNotFound(execution_id)
        if job.get_status(refresh=False) != JobStatus.FAILED:
            raise InvalidOperation(f"execution {execution_id} is not in the failed registry")
        job.retries_left = len(job.retry_intervals or ()) or None
        current = self.store.get(execution_id)
        retries = len(self.settings.retry_intervals) + 1
        with self.connection.pipeline() as pipe:
            if current is None:
                self.store.create(pipe, execution_id, queue=job.origin,
                                  workflow_name=str((job.args[1] or {}).get("name", "")),
                                  max_attempts=retries, idempotency_key=None)
            else:
                pipe.hincrby(keys.execution(execution_id), "maxAttempts", retries)
                pipe.hincrby(keys.execution(execution_id), "requeues", 1)
                self.store.update(pipe, execution_id, {"status": state.QUEUED, "finishedAt": "",
                                                       "nextRetryAt": "", "error": None, "cancelRequested": ""})
            pipe.execute()
        FailedJobRegistry(job.origin, connection=self.connection, serializer=SERIALIZER).requeue(job)
        return self.get(execution_id)

    def requeue_all(self, queue: str | None = None) -> list[str]:
        done = []
        for execution_id in self._failed_registry(queue).get_job_ids(cleanup=False):
            self.requeue(execution_id)
            done.append(execution_id)
        return done

    # -- helpers ------------------------------------------------------------------------------------

    def _failed_registry(self, queue: str | None) -> FailedJobRegistry:
        return FailedJobRegistry(queue or self.settings.queue, connection=self.connection, serializer=SERIALIZER)

    def _job(self, execution_id: str) -> Job | None:
        try:
            return Job.fetch(execution_id, connection=self.connection, serializer=SERIALIZER)
        except (NoSuchJobError, ValueError):  # RQ refuses ids with characters it never generates
            return None

    def _failed(self, execution_id: str, found: dict[str, Any] | None, job: Job | None,
                queue: str | None) -> FailedExecution:
        exc = None
        if job is not None:
            result = job.latest_result()
            exc = result.exc_string if result is not None else None
        return FailedExecution(
            id=execution_id,
            queue=(job.origin if job else None) or queue or self.settings.queue,
            failed_at=(found or {}).get("finishedAt") or (iso(job.ended_at) if job and job.ended_at else None),
            workflow_name=(found or {}).get("workflowName"),
            error=(found or {}).get("error"),
            attempts=(found or {}).get("attempt"),
            exc_string=exc,
        )
