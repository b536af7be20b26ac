"""Submitting an execution: validate, write its state, enqueue one RQ job, all or nothing."""

from __future__ import annotations

import json
import uuid
from typing import Any

from redis import Redis
from rq import Queue, Retry
from rq.job import Callback

from nodedrop_rq import keys
from nodedrop_rq.connection import SERIALIZER, redis_from_settings
from nodedrop_rq.jobs import FAILURE_CALLBACK, FUNC_NAME
from nodedrop_rq.settings import Settings, get_settings
from nodedrop_rq.state import ExecutionStore
from nodedrop_rq.workflow import Limits, Problem, Workflow, WorkflowInvalid, normalize_input, parse_workflow

MAX_IDEMPOTENCY_KEY = 200


def execution_queue(connection: Redis, settings: Settings, name: str | None = None) -> Queue:
    return Queue(name or settings.queue, connection=connection, serializer=SERIALIZER,
                 default_timeout=settings.job_timeout)


def submit_execution(
    workflow: Any,
    input: Any = None,  # noqa: A002 - the public name clients use
    *,
    idempotency_key: str | None = None,
    connection: Redis | None = None,
    settings: Settings | None = None,
    queue: str | None = None,
) -> str:
    """Validate ``workflow`` and ``input``, store the execution as ``queued`` and enqueue it.

    Returns the execution id (also the RQ job id). Raises :class:`WorkflowInvalid` (listing every
    problem) before anything is written to Redis. Submitting again with the same ``idempotency_key``
    returns the first execution's id while its state exists.
    """
    settings = settings or get_settings()
    parsed, items = _validated(workflow, input, settings)
    if idempotency_key is not None and not (0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY):
        raise WorkflowInvalid([Problem("idempotencyKey", f"must be 1 to {MAX_IDEMPOTENCY_KEY} characters")])
    connection = connection or redis_from_settings(settings)
    queue_name = queue or settings.queue
    execution_id = uuid.uuid4().hex

    if idempotency_key is not None:
        ikey = keys.idempotency(idempotency_key)
        # SET NX makes two concurrent submits with one key agree on a single execution.
        if not connection.set(ikey, execution_id, nx=True, ex=settings.state_ttl):
            existing = connection.get(ikey)
            if existing:
                return existing.decode() if isinstance(existing, bytes) else existing

    store = ExecutionStore(connection, settings)
    q = execution_queue(connection, settings, queue_name)
    with connection.pipeline() as pipe:
        # RQ opens the MULTI itself (it must come first); our writes join the same transaction.
        q.enqueue_call(
            FUNC_NAME,
            args=(execution_id, parsed.to_document(), items),
            job_id=execution_id,
            timeout=settings.job_timeout,
            result_ttl=settings.completion_ttl,
            failure_ttl=settings.failure_ttl,
            retry=Retry(max=len(settings.retry_intervals), interval=list(settings.retry_intervals)),
            on_failure=Callback(FAILURE_CALLBACK),
            description=f"workflow {parsed.name!r}",
            pipeline=pipe,
        )
        store.create(pipe, execution_id, queue=queue_name, workflow_name=parsed.name,
                     max_attempts=settings.max_attempts, idempotency_key=idempotency_key)
        pipe.sadd(keys.queues(), queue_name)
        pipe.execute()
    return execution_id


def check_submission(workflow: Any, input: Any, settings: Settings) -> tuple[dict[str, Any], list[dict]]:  # noqa: A002
    """Validate as :func:`submit_execution` does; returns the normalized document and input items."""
    parsed, items = _validated(workflow, input, settings)
    return parsed.to_document(), items


def _validated(workflow: Any, input: Any, settings: Settings) -> tuple[Workflow, list[dict]]:  # noqa: A002
    limits = Limits.from_settings(settings)
    for path, document in (("workflow", workflow), ("input", input)):
        if _depth(document, settings.max_depth) > settings.max_depth:
            raise WorkflowInvalid([Problem(path, f"nested deeper than {settings.max_depth} levels "
                                                 "(WORKFLOW_MAX_DEPTH)")])
    _check_size(workflow, input, limits)
    return parse_workflow(workflow, limits), normalize_input(input, limits)


def _depth(document: Any, stop_at: int) -> int:
    """Nesting depth of lists and dicts, computed without recursion and abandoned past ``stop_at``."""
    deepest, todo = 0, [(document, 1)]
    while todo:
        value, depth = todo.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > stop_at:
            return deepest
        todo.extend((child, depth + 1) for child in children)
    return deepest


def _check_size(workflow: Any, input: Any, limits: Limits) -> None:  # noqa: A002
    # Measured on the JSON we would store, so a huge document is refused before it reaches Redis.
    try:
        size = len(json.dumps([workflow, input], separators=(",", ":")))
    except (TypeError, ValueError) as exc:
        raise WorkflowInvalid([Problem("", f"not JSON-serialisable: {exc}")]) from None
    if size > limits.max_document_bytes:
        raise WorkflowInvalid([Problem(
            "", f"workflow and input are {size} bytes, over the limit of {limits.max_document_bytes} "
                "(WORKFLOW_MAX_DOCUMENT_BYTES)")])
