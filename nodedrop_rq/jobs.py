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

from nodedrop_rq import state
from nodedrop_rq.errors import ExecutionCancelled, ExecutionFailed
from nodedrop_rq.settings import get_settings
from nodedrop_rq.transitions import AttemptFailure, Transitions
from nodedrop_rq.workflow import Limits, NodeEvent, normalize_input, parse_workflow, run_workflow

FUNC_NAME = "nodedrop_rq.jobs.run_execution"
FAILURE_CALLBACK = "nodedrop_rq.jobs.on_execution_failure"


def run_execution(execution_id: str, workflow: dict[str, Any], input: Any = None) -> dict[str, Any]:  # noqa: A002
    """Run one attempt of an execution inside an RQ horse. A node failure raises ExecutionFailed,
    which RQ turns into a retry or a final failure."""
    job = get_current_job()
    if job is None:
        raise RuntimeError("run_execution must be performed by an RQ worker")
    settings = get_settings()
    limits = Limits.from_settings(settings)
    transitions = Transitions(job.connection, settings)
    attempt, cancel_requested = transitions.start_attempt(execution_id, job.worker_name or "")
    if cancel_requested:
        return {"executionId": execution_id, "status": state.CANCELLED}

    nodes: dict[str, dict[str, Any]] = {}

    def on_event(event: NodeEvent) -> None:
        record = nodes.setdefault(event.node_id, {"name": event.node_name, "type": event.node_type})
        status = {"node-started": "running", "node-completed": "succeeded",
                  "node-failed": "failed", "node-skipped": "skipped"}[event.kind]
        record["status"] = status
        if event.kind == "node-started":
            record["startedAt"] = state.iso_epoch(event.at)
        else:
            record["finishedAt"] = state.iso_epoch(event.at)
            record["durationMs"] = event.duration_ms
            record["outputCount"] = event.output_count
            record["error"] = event.error
        payload = {"type": event.kind, "nodeId": event.node_id, "nodeName": event.node_name,
                   "nodeType": event.node_type, "durationMs": event.duration_ms,
                   "outputCount": event.output_count, "error": event.error}
        if transitions.node_event(execution_id, attempt, nodes, payload) and event.kind != "node-started":
            raise ExecutionCancelled(execution_id)

    started = time.monotonic()
    try:
        result = run_workflow(parse_workflow(workflow, limits), normalize_input(input, limits),
                              on_event=on_event, limits=limits)
    except ExecutionCancelled:
        return {"executionId": execution_id, "status": state.CANCELLED, "nodes": nodes}
    if result.status != "succeeded":
        error = result.error.to_dict() if result.error else {"message": "workflow failed"}
        raise ExecutionFailed(error, nodes)
    return {
        "executionId": execution_id,
        "status": state.SUCCEEDED,
        "attempt": attempt,
        "durationMs": round((time.monotonic() - started) * 1000, 3),
        "nodes": nodes,
        "output": result.output,
    }


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
