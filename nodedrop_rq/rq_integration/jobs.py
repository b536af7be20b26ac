"""The function RQ performs for each execution, and how an attempt that ended outside it is recorded.

Jobs are stored with RQ's JSON serializer as ``nodedrop_rq.jobs.run_execution()`` (that dotted path is
kept as a re-export): the job's id is the execution's, whose state names the workflow document (stored
once per distinct workflow, ``nodedrop_rq.documents``) and holds the input. The older shape
``run_execution(execution_id, workflow, input)``, with the document in the job, still runs. RQ decides
from ``job.retries_left`` whether a failed job is retried; every path here sets it from the transition
that applied, so RQ's retry and our status always agree.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from types import TracebackType
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import get_current_job
from rq.exceptions import AbandonedJobError
from rq.executions import Execution
from rq.job import Job
from rq.timeouts import BaseTimeoutException, JobTimeoutException

from nodedrop_rq import documents, keys, state
from nodedrop_rq.errors import ExecutionCancelled, ExecutionFailed
from nodedrop_rq.execution import status
from nodedrop_rq.execution.transitions import Running, Started, Transitions, failure_target
from nodedrop_rq.progress import NodeProgress
from nodedrop_rq.rq_integration import names
from nodedrop_rq.settings import Settings, get_settings
from nodedrop_rq.workflow import Limits, Workflow, normalize_input, parse_workflow, run_workflow

log = logging.getLogger(__name__)

FUNC_NAME = "nodedrop_rq.jobs.run_execution"
FAILURE_CALLBACK = "nodedrop_rq.jobs.on_execution_failure"
# Set on the Job object by the worker: the start transition's result, and that the attempt's outcome
# has already been written (RQ then only retries or fails the job).
STARTED_ATTR = "nd_started"
RECORDED_ATTR = "nd_recorded"


def run_execution(execution_id: str | None = None, workflow: dict[str, Any] | None = None,
                  input: Any = None) -> dict[str, Any]:  # noqa: A002
    """Run one attempt of an execution inside an RQ worker (arguments only in jobs of the older shape)."""
    job = get_current_job()
    if job is None:
        raise RuntimeError("run_execution must be performed by an RQ worker")
    execution_id = execution_id or job.id
    settings = get_settings()
    transitions = _transitions(job.connection, settings)
    started: Started | None = job.__dict__.pop(STARTED_ATTR, None)
    if started is None:
        raise RuntimeError("run_execution must be performed by nodedrop_rq.worker.ExecutionWorker "
                           "(rq worker -w nodedrop_rq.worker.ExecutionWorker)")
    worker = job.worker_name or ""
    outcome: dict[str, Any] = {"executionId": execution_id, "attempt": started.attempt, "worker": worker}
    if not started.began:
        # Already finished, running elsewhere, or cancelled before it began: this delivery does nothing.
        return dict(outcome, status="cancelled" if started.outcome == "cancelled" else "skipped",
                    found=started.status)
    if started.requeued:
        set_rq_retries(job, settings, status.RETRYING, started.attempt, started.attempt_base)

    limits = Limits.from_settings(settings)
    if workflow is None:
        parsed = _parsed_document(job.connection, started.workflow, limits)
        input = json.loads(started.input) if started.input else None  # noqa: A001
    else:
        parsed = parse_workflow(workflow, limits)
    progress = NodeProgress(job.connection, execution_id, started.attempt, started.token, started.started_at)
    clock = time.monotonic()

    def finish(target: str, **fields: Any) -> bool:
        applied = transitions.finish(execution_id, job.origin, attempt=started.attempt, token=started.token,
                                     target=target, nodes=progress.nodes, events=progress.finish(),
                                     duration=time.monotonic() - clock, workflow=started.workflow,
                                     started_at=started.started_at, **fields)
        if not applied:
            log.warning("execution %s attempt %s: outcome %s not recorded, the execution moved on meanwhile",
                        execution_id, started.attempt, target)
        return applied

    try:
        result = run_workflow(parsed, normalize_input(input, limits),
                              on_event=progress.record, limits=limits, execution_id=execution_id,
                              interrupts=(BaseTimeoutException,))
    except ExecutionCancelled:
        finish(status.CANCELLED)
        return dict(outcome, status=status.CANCELLED)
    except JobTimeoutException:
        error = {"message": f"execution timed out after {job.timeout} s (EXECUTION_JOB_TIMEOUT)", "kind": "timeout"}
        _fail(job, settings, started, _at_current_node(progress, error), finish)
        raise
    except BaseException:  # worker shutdown: the worker's failure handling records it
        progress.finish()
        raise
    if result.status != "succeeded":
        error = dict(result.error.to_dict() if result.error else {"message": "workflow failed"}, kind="node")
        if not _fail(job, settings, started, error, finish):
            return dict(outcome, status="skipped", found="stale")
        raise ExecutionFailed(error, started.attempt)
    applied = finish(status.SUCCEEDED, output=result.output)
    return dict(outcome, status=status.SUCCEEDED if applied else "skipped",
                durationMs=round((time.monotonic() - clock) * 1000, 3))


# Parsed workflows by (document digest, limits). A digest names one document forever and the engine never
# changes a parsed workflow, so a worker, which runs the same few workflows over and over, parses each once
# (parsing the trivial benchmark workflow cost 0.1 ms, about 6 % of its worker CPU).
_parsed: OrderedDict[tuple[str, Limits], Workflow] = OrderedDict()


def _parsed_document(connection: Redis, digest: str, limits: Limits) -> Workflow:
    key = (digest, limits)
    workflow = _parsed.get(key)
    if workflow is not None:
        _parsed.move_to_end(key)
        return workflow
    workflow = _parsed[key] = parse_workflow(documents.load(connection, digest), limits)
    while len(_parsed) > documents.CACHED_DOCUMENTS:
        _parsed.popitem(last=False)
    return workflow


_cached: tuple[Redis, Settings, Transitions] | None = None


def _transitions(connection: Redis, settings: Settings) -> Transitions:
    """One Transitions per worker connection (it registers its scripts once)."""
    global _cached
    if _cached is None or _cached[0] is not connection or _cached[1] is not settings:
        _cached = (connection, settings, Transitions(connection, settings, failed_registry=names.failed_registry))
    return _cached[2]


def _at_current_node(progress: NodeProgress, error: dict[str, Any]) -> dict[str, Any]:
    """The node that was running when the attempt was interrupted gets the error (and ends failed)."""
    node = progress.nodes.get(progress.current) if progress.current else None
    for record in progress.nodes.values():
        if record.get("status") == "running":
            record["status"] = "failed"
    if node is None:
        return error
    return dict(error, nodeId=progress.current, nodeType=node.get("type"), nodeName=node.get("name"))


def _fail(job: Job, settings: Settings, started: Started, error: dict[str, Any], finish: Any) -> bool:
    target, retry_in = failure_target(settings, started.attempt, started.max_attempts,
                                                  started.attempt_base)
    applied = finish(target, error=error, retry_in=retry_in)
    set_rq_retries(job, settings, target if applied else status.FAILED, started.attempt, started.attempt_base)
    job.__dict__[RECORDED_ATTR] = True
    return applied


def set_rq_retries(job: Job, settings: Settings, target: str, attempt: int, attempt_base: int) -> None:
    """Make RQ's retry decision the transition's: retry after this round's next interval, or not at all.

    RQ picks interval ``len(intervals) - retries_left``; attempt ``k`` of a round waits ``intervals[k-1]``.
    """
    # RQ's scheduled-job registry keeps whole seconds, rounded down, so a retry asked for in 2 s could start
    # in 1.1 s; one second more makes it start 2 to 3 s later, never before `nextRetryAt`.
    intervals = [interval + 1 if interval > 0 else 0 for interval in settings.retry_intervals]
    job.retry_intervals = intervals or None  # RQ indexes a list; None means "retry at once"
    if target == status.RETRYING and intervals:
        job.retries_left = max(len(intervals) - (attempt - attempt_base - 1), 1)
    elif target == status.RETRYING:
        job.retries_left = 1
    else:
        job.retries_left = 0


def record_attempt_end(connection: Redis, job: Job, *, token: str | None, error: dict[str, Any],
                       cancelled: bool = False) -> str | None:
    """Record the end of an attempt that ended outside ``run_execution`` (its process was killed, it was
    stopped, or its worker died) and set RQ's retry decision on ``job``. Returns the status the execution
    moved to, or None when no transition applied (nothing was running under that token).

    ``token``: the RQ execution id the attempt ran under, when the caller knows it; without it (RQ's
    abandoned-job cleanup) the running attempt counts as ended only once its RQ execution has expired.
    """
    settings = get_settings()
    transitions = Transitions(connection, settings, failed_registry=names.failed_registry)
    running = transitions.read_running(job.id)
    if token is None and running.token:
        ended = not connection.exists(Execution(running.token, job.id, connection).key)
    else:
        ended = token is not None and running.token == token
    if running.status == status.RUNNING and ended:
        target, retry_in = (status.CANCELLED, None) if cancelled else failure_target(
            settings, running.attempt, running.max_attempts, running.attempt_base)
        nodes, error, started_at = _nodes_and_error(connection, job.id, error)
        applied = transitions.finish(job.id, running.queue, attempt=running.attempt, token=running.token,
                                     target=target, error=error, nodes=nodes, retry_in=retry_in,
                                     workflow=running.workflow, started_at=started_at)
        if applied:
            set_rq_retries(job, settings, target, running.attempt, running.attempt_base)
            return target
        running = transitions.read_running(job.id)
    if cancelled and running.status in (status.QUEUED, status.RETRYING):
        # Stopped after its attempt had already ended as a retry (the horse recorded the failure, then was
        # killed): RQ will not retry a stopped job, so the stop ends the execution.
        if transitions.cancel_waiting(job.id, running.queue, running.attempt):
            return status.CANCELLED
    _not_running(job, settings, running)
    return None


def error_of(exc_string: str, job: Job, stopped: bool = False) -> dict[str, Any]:
    """The execution's error for an attempt that ended outside the job function."""
    text = exc_string.strip()
    if stopped:
        return {"message": "execution stopped on request", "kind": "cancelled"}
    if "terminated unexpectedly" in text:
        return {"message": f"the process running this execution died ({text.rstrip(';')}); "
                           "it may have run out of memory", "kind": "killed"}
    if "stuck in intermediate queue" in text:
        return {"message": "the worker that took this execution died before starting it", "kind": "abandoned"}
    if "JobTimeoutException" in text:
        return {"message": f"execution timed out after {job.timeout} s (EXECUTION_JOB_TIMEOUT)", "kind": "timeout"}
    return {"message": text.splitlines()[-1] if text else "execution failed", "kind": "internal"}


def _not_running(job: Job, settings: Settings, running: Running) -> None:
    if running.status in (status.QUEUED, status.RETRYING):
        # Cut off before its attempt began (or the attempt is someone else's and alive): deliver it again;
        # the start transition lets exactly one delivery run.
        job.retry_intervals = list(settings.retry_intervals) or [0]
        job.retries_left = max(job.retries_left or 0, 1)
        return
    if running.status in (status.SUCCEEDED, status.CANCELLED, status.RUNNING):
        # A delivery of an execution that is done or runs elsewhere: one more delivery is skipped at its start,
        # so RQ's job ends finished instead of in the failed registry.
        job.retries_left = max(job.retries_left or 0, 1)
        return
    job.retries_left = 0  # failed, or gone: a retry would be read as a requeue


def _nodes_and_error(connection: Redis, execution_id: str,
                     error: dict[str, Any]) -> tuple[dict[str, Any], dict, str | None]:
    fields = state.joined(connection.hgetall(keys.execution(execution_id)))
    started_at = fields.get("startedAt")
    nodes = state.decode_nodes(fields.get("nodes"), started_at)
    for node in nodes.values():
        if node.get("status") == "running":
            node["status"] = "failed"
    current_node = fields.get("currentNode", "")
    error = dict(error)
    if current_node and not error.get("nodeId"):
        node = nodes.get(current_node, {})
        error.update(nodeId=current_node, nodeType=node.get("type"), nodeName=node.get("name"))
    return nodes, error, started_at


ABANDONED = {"message": "the worker running this execution died (its heartbeat expired); the execution was "
                        "abandoned", "kind": "abandoned"}


def on_execution_failure(job: Job, connection: Redis, exc_type: type, exc_value: BaseException,
                         tb: TracebackType | Any) -> None:
    """RQ calls this on every failed attempt; only RQ's abandoned-job cleanup (a worker died with its
    job, seen by another worker) needs it: every other path is recorded by the worker."""
    if not (isinstance(exc_type, type) and issubclass(exc_type, AbandonedJobError)):
        return
    try:
        record_attempt_end(connection, job, token=None, error=ABANDONED)
    except RedisError as exc:
        log.warning("execution %s: could not record its abandoned attempt: %s", job.id, exc)
