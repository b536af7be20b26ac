"""What operators and clients do to executions: look them up, cancel them, review and requeue failures."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from redis import Redis

from nodedrop_rq import keys, state
from nodedrop_rq.errors import ExecutionNotFound, InvalidOperation
from nodedrop_rq.execution.transitions import Transitions
from nodedrop_rq.rq_integration import names, queueing
from nodedrop_rq.settings import Settings
from nodedrop_rq.state import ExecutionStore, iso


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
        self.transitions = Transitions(connection, settings, failed_registry=names.failed_registry)

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
        # The flag first: a worker that dequeues the job meanwhile sees it in the start transition and
        # cancels instead of starting.
        self.connection.hset(keys.execution(execution_id), "cancelRequested", "1")
        if current["status"] in (state.QUEUED, state.RETRYING):
            queue = current.get("queue") or self.settings.queue
            if self.transitions.cancel_waiting(execution_id, queue, current.get("attempt") or 0):
                job = queueing.fetch(self.connection, execution_id)
                if job is not None and queueing.is_waiting(job):
                    queueing.cancel(job)
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
        jobs = queueing.fetch_many(self.connection, ids)
        tracebacks = self.store.tracebacks(ids)
        return [self._failed(i, s, j, queue, t) for i, s, j, t in zip(ids, states, jobs, tracebacks, strict=True)]

    def show_failed(self, execution_id: str) -> tuple[FailedExecution, dict[str, Any] | None]:
        job = queueing.fetch(self.connection, execution_id)
        if job is None or not queueing.is_failed(job):
            raise ExecutionNotFound(execution_id)
        found = self.store.get(execution_id)
        (traceback,) = self.store.tracebacks([execution_id])
        return self._failed(execution_id, found, job, job.origin, traceback), found

    def requeue(self, execution_id: str) -> dict[str, Any]:
        """Run a failed execution again, with the full retry schedule, as RQ's own requeue does (the worker
        starts a failed execution's job with a fresh schedule); here the state reads ``queued`` at once."""
        job = queueing.fetch(self.connection, execution_id)
        current = self.store.get(execution_id)
        if job is None or current is None:
            raise ExecutionNotFound(execution_id)
        # The execution reads `failed` a moment before RQ's MULTI moves its job to the failed registry.
        for _ in range(20):
            if current["status"] != state.FAILED or queueing.is_failed(job):
                break
            time.sleep(0.05)
            job = queueing.fetch(self.connection, execution_id) or job
        if current["status"] != state.FAILED or not queueing.is_failed(job):
            raise InvalidOperation(f"execution {execution_id} is not failed (it is {current['status']})")
        if not queueing.requeue(self.connection, job):
            raise InvalidOperation(f"execution {execution_id} is not in the failed registry")
        # A worker may already have started it from `failed` (then this finds it running and does nothing).
        self.transitions.requeue(execution_id, job.origin, current.get("attempt") or 0)
        return self.get(execution_id)

    def requeue_all(self, queue: str | None = None) -> list[str]:
        done = []
        for execution_id in self._failed_registry(queue).get_job_ids(cleanup=False):
            try:
                self.requeue(execution_id)
            except (InvalidOperation, ExecutionNotFound):
                continue  # requeued meanwhile, or its execution did not fail (see docs/reliability.md)
            done.append(execution_id)
        return done

    # -- helpers ------------------------------------------------------------------------------------

    def _failed_registry(self, queue: str | None) -> Any:
        return queueing.failed_registry(self.connection, queue or self.settings.queue)

    def _failed(self, execution_id: str, found: dict[str, Any] | None, job: Any,
                queue: str | None, traceback: str | None = None) -> FailedExecution:
        exc = (queueing.exc_string(job) if job is not None else None) or state.traceback_text(
            traceback, (found or {}).get("error"))
        return FailedExecution(
            id=execution_id,
            queue=(job.origin if job else None) or queue or self.settings.queue,
            failed_at=(found or {}).get("finishedAt") or (iso(job.ended_at) if job and job.ended_at else None),
            workflow_name=(found or {}).get("workflowName"),
            error=(found or {}).get("error"),
            attempts=(found or {}).get("attempt"),
            exc_string=exc,
        )
