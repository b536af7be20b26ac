"""Submitting an execution: validate, then write its state and enqueue one RQ job, all or nothing and once."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

from redis import Redis
from redis.exceptions import ConnectionError, TimeoutError, WatchError

from nodedrop_rq import documents, keys, routing, search
from nodedrop_rq.errors import SubmitConflict
from nodedrop_rq.rq_integration import queueing
from nodedrop_rq.settings import Settings, get_settings
from nodedrop_rq.state import ExecutionStore
from nodedrop_rq.workflow import Limits, Problem, Workflow, WorkflowInvalid, normalize_input, parse_workflow

MAX_IDEMPOTENCY_KEY = 200
MAX_SUBMIT_TRIES = 20
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def submit_execution(
    workflow: Any,
    input: Any = None,  # noqa: A002 - the public name clients use
    *,
    idempotency_key: str | None = None,
    connection: Redis | None = None,
    settings: Settings | None = None,
    queue: str | None = None,
    execution_id: str | None = None,
    router: routing.QueueRouter | None = None,
    shard_key: str | None = None,
    workflow_id: str | None = None,
    workflow_version: int | None = None,
) -> str:
    """Validate ``workflow`` and ``input``, store the execution as ``queued`` and enqueue it, exactly once.

    Returns the execution id (also the RQ job id). Raises :class:`WorkflowInvalid` (listing every
    problem) before anything is written to Redis. Submitting again with the same ``idempotency_key``
    (or the same ``execution_id``) returns the first execution's id while its state exists.
    ``workflow_id`` and ``workflow_version`` (a stored workflow's, :mod:`nodedrop_rq.workflows_store`) are
    recorded on the execution; the id wins over the document's own ``id``.

    The write is one WATCHed transaction, so redis-py never re-sends it after a lost reply (a re-sent
    MULTI would enqueue the job twice). After a connection error the outcome is read back: the id is
    returned if the execution was stored, and the error is raised only if it was not.

    Without ``connection``, the execution goes to its queue's Redis (``router``, default: one for the
    settings; see :mod:`nodedrop_rq.routing`); a queue of EXECUTION_QUEUE_SHARDS becomes the shard that
    ``shard_key`` (default: the workflow's id, else its name) hashes to.
    """
    settings = settings or get_settings()
    if connection is None:
        return routing.submit_routed(submit_execution, router or routing.default_router(settings), settings,
                                     workflow, input, queue, shard_key, idempotency_key=idempotency_key,
                                     execution_id=execution_id, workflow_id=workflow_id,
                                     workflow_version=workflow_version)
    parsed, items = _validated(workflow, input, settings)
    if idempotency_key is not None and not (0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY):
        raise WorkflowInvalid([Problem("idempotencyKey", f"must be 1 to {MAX_IDEMPOTENCY_KEY} characters")])
    if execution_id is not None and not _ID.fullmatch(execution_id):
        raise WorkflowInvalid([Problem("id", "must be 1 to 64 letters, digits, '-' or '_'")])
    queue_name = routing.shard_queue(settings, queue or settings.queue, shard_key or routing.workflow_key(workflow))
    execution_id = execution_id or uuid.uuid4().hex
    for _ in range(MAX_SUBMIT_TRIES):
        try:
            stored = _write_once(connection, settings, parsed, items, queue_name, execution_id, idempotency_key,
                                 workflow_id, workflow_version)
        except WatchError:
            stored = None  # a concurrent submit with the same key or id, or the connection broke while watching
        except (ConnectionError, TimeoutError):
            stored = _stored(connection, execution_id, idempotency_key)
            if stored is None:
                raise
        if stored is not None:
            return stored
        existing = _stored(connection, execution_id, idempotency_key)
        if existing is not None:
            return existing
    raise SubmitConflict(f"gave up after {MAX_SUBMIT_TRIES} concurrent changes to execution {execution_id}")


def _write_once(connection: Redis, settings: Settings, parsed: Workflow, items: list[dict], queue_name: str,
                execution_id: str, idempotency_key: str | None, workflow_id: str | None = None,
                workflow_version: int | None = None) -> str | None:
    """One WATCHed try. Returns the id stored (ours or the idempotency key's), or None if nothing is."""
    store = ExecutionStore(connection, settings)
    document_text = documents.canonical(parsed.to_document())
    ikey = keys.idempotency(idempotency_key) if idempotency_key is not None else None
    with connection.pipeline() as pipe:
        pipe.watch(keys.execution(execution_id), *([ikey] if ikey else []))
        if pipe.exists(keys.execution(execution_id)):
            return execution_id
        if ikey is not None:
            existing = pipe.get(ikey)
            if existing and pipe.exists(keys.execution(_text(existing))):
                return _text(existing)
        pipe.multi()
        if ikey is not None:
            # As long as the execution can live (a failed one waits failure_ttl for review).
            pipe.set(ikey, execution_id, ex=max(settings.state_ttl, settings.failure_ttl))
        digest = documents.keep(pipe, document_text, settings)
        queueing.enqueue(pipe, connection, settings, queue_name, execution_id, description=parsed.name)
        store.create(pipe, execution_id, queue=queue_name, workflow_name=parsed.name,
                     max_attempts=settings.max_attempts, idempotency_key=idempotency_key, workflow=digest,
                     items=items)
        pipe.zadd(keys.active(queue_name), {execution_id: time.time()})
        search.index_new(pipe, execution_id, workflow_id or search.workflow_id_of(parsed.extra), time.time())
        if workflow_version is not None:
            pipe.hset(keys.execution(execution_id), "workflowVersion", workflow_version)
        pipe.sadd(keys.queues(), queue_name)
        pipe.execute()
    return execution_id


def _stored(connection: Redis, execution_id: str, idempotency_key: str | None) -> str | None:
    """The id under which this submit is stored, read after an error (raises if Redis is still away)."""
    if connection.exists(keys.execution(execution_id)):
        return execution_id
    if idempotency_key is not None:
        existing = connection.get(keys.idempotency(idempotency_key))
        if existing and connection.exists(keys.execution(_text(existing))):
            return _text(existing)
    return None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


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
