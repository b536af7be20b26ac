"""The function RQ performs for each execution, and the failure callback for abandoned jobs.

Jobs are stored with RQ's JSON serializer as ``nodedrop_rq.jobs.run_execution(execution_id,
workflow, input)``, so producers in other languages can enqueue the same shape.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from redis import Redis
from rq import get_current_job
from rq.exceptions import AbandonedJobError
from rq.job import Job
from rq.timeouts import BaseTimeoutException

from nodedrop_rq import state
from nodedrop_rq.errors import ExecutionCancelled, ExecutionFailed
from nodedrop_rq.progress import NodeProgress
from nodedrop_rq.settings import get_settings
from nodedrop_rq.transitions import AttemptFailure, Transitions
from nodedrop_rq.workflow import Limits, normalize_input, parse_workflow, run_workflow

FUNC_NAME = "nodedrop_rq.jobs.run_execution"
FAILURE_CALLBACK = "nodedrop_rq.jobs.on_execution_failure"
# Set on the Job object by a worker that has already run Transitions.start_attempt for this attempt.
ATTEMPT_STARTED_ATTR = "nd_attempt_started"


def run_execution(execution_id: str, workflow: dict[str, Any], input: Any = None) -> dict[str, Any]:  # noqa: A002
    """Run one attempt of an execution inside an RQ worker. A node failure raises ExecutionFailed,
    which RQ turns into a retry or a final failure."""
    job = get_current_job()
    if job is None:
        raise RuntimeError("run_execution must be performed by an RQ worker")
    settings = get_settings()
    limits = Limits.from_settings(settings)
    worker = job.worker_name or ""
    # An inline worker starts the attempt in its preparation pipeline (round_trips.py) and leaves the result.
    started = job.__dict__.pop(ATTEMPT_STARTED_ATTR, None)
    if started is None:
        started = Transitions(job.connection, settings).start_attempt(execution_id, worker)
    attempt, started_at, cancel_requested = started
    outcome: dict[str, Any] = {"executionId": execution_id, "attempt": attempt, "startedAt": started_at,
                               "worker": worker}
    if cancel_requested:
        return dict(outcome, status=state.CANCELLED)

    progress = NodeProgress(job.connection, execution_id, attempt)
    started = time.monotonic()
    try:
        result = run_workflow(parse_workflow(workflow, limits), normalize_input(input, limits),
                              on_event=progress.record, limits=limits, execution_id=execution_id,
                              interrupts=(BaseTimeoutException,))
    except ExecutionCancelled:
        return dict(outcome, status=state.CANCELLED, nodes=progress.nodes, events=progress.finish())
    except BaseException:  # a job timeout or worker shutdown: stop the writer thread, then let RQ handle it
        progress.finish()
        raise
    pending = progress.finish()
    if result.status != "succeeded":
        error = result.error.to_dict() if result.error else {"message": "workflow failed"}
        raise ExecutionFailed(error, progress.nodes, attempt, started_at, worker, pending)
    return dict(outcome, status=state.SUCCEEDED, durationMs=round((time.monotonic() - started) * 1000, 3),
                nodes=progress.nodes, output=result.output, events=pending)


def on_execution_failure(job: Job, connection: Redis, exc_type: type, exc_value: BaseException,
                         tb: TracebackType | Any) -> None:
    """RQ calls this on every failed attempt. Attempts that fail inside a worker are recorded by
    ExecutionWorker; this records only the one path no worker hook sees: a job abandoned by a
    worker that died (RQ's StartedJobRegistry cleanup, run by another worker)."""
    if not (isinstance(exc_type, type) and issubclass(exc_type, AbandonedJobError)):
        return
    retry = bool(job.retries_left and job.retries_left > 0)
    failure = AttemptFailure(
        error={"message": "the worker running this execution died (its heartbeat expired); "
                          "the execution was abandoned", "kind": "abandoned"},
        retry=retry,
        retry_in=job.get_retry_interval() if retry else None,
    )
    transitions = Transitions(connection, get_settings())
    with connection.pipeline() as pipe:
        transitions.attempt_failed(pipe, job, failure, duration=None)
        pipe.execute()
