"""One execution's state: a Redis hash at ``nodedrop:execution:<id>``.

Fields (all strings in Redis; JSON where noted):

===============  ==============================================================================
id, queue        execution id (= RQ job id) and the queue it runs on
workflowName     the workflow's name
status           queued | running | retrying | succeeded | failed | cancelled
attempt          number of the current or last attempt (1-based); maxAttempts: 1 + retries
createdAt, startedAt, finishedAt, nextRetryAt   ISO 8601 UTC timestamps ('' when unset)
currentNode      id of the node running now ('' between nodes)
nodes            JSON: {nodeId: {name, type, status, startedAt, finishedAt, durationMs, outputCount, error}}
attempt:<n>      JSON {attempt, startedAt, finishedAt, status, error, worker}: one field per attempt,
                 returned by :meth:`ExecutionStore.get` as the list ``attempts``
output           JSON list of items of the final node(s), once succeeded
error            JSON {nodeId, nodeType, nodeName, message} of the last failure
cancelRequested  "1" once a cancel was asked for a running execution
idempotencyKey   the key it was submitted with, if any
requeues         how often it was requeued from the failed registry by hand
workflowId       the stored workflow's id (or the document's own ``id``); workflowVersion: the stored
                 workflow's version it ran (absent for a document submitted whole)
===============  ==============================================================================

The key lives EXECUTION_STATE_TTL seconds while the execution is active and EXECUTION_COMPLETION_TTL
seconds once it reaches a terminal state.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from redis import Redis
from redis.client import Pipeline

from nodedrop_rq import jsontext, keys

# The statuses and their transitions live in nodedrop_rq.execution.status; re-exported for readers.
from nodedrop_rq.execution.status import (  # noqa: E402,F401
    ACTIVE,
    CANCELLED,
    FAILED,
    QUEUED,
    RETRYING,
    RUNNING,
    SUCCEEDED,
    TERMINAL,
)
from nodedrop_rq.settings import Settings

_JSON_FIELDS = ("nodes", "output", "error")
_INT_FIELDS = ("attempt", "maxAttempts", "requeues", "attemptBase", "workflowVersion")
# Internal to the state machine: the running attempt's fencing token is not part of the public record.
_HIDDEN_FIELDS = ("token",)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime | None) -> str:
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def dumps(value: object) -> str:
    """Strict JSON for Redis (other readers, rq-dashboard and other languages, get no NaN or lone
    surrogates; an output nested too deep is kept as its JSON text)."""
    return json.dumps(jsontext.readable(value), separators=(",", ":"), default=str, allow_nan=False)


class ExecutionStore:
    """Creates and reads execution state hashes. Every later write is a fenced transition
    (``nodedrop_rq.execution.transitions``)."""

    def __init__(self, connection: Redis, settings: Settings) -> None:
        self.connection = connection
        self.settings = settings

    # -- the submit transition's writes (into the submit transaction) ---------------------------

    def create(self, pipeline: Pipeline, execution_id: str, *, queue: str, workflow_name: str,
               max_attempts: int, idempotency_key: str | None) -> None:
        key = keys.execution(execution_id)
        pipeline.hset(key, mapping={
            "id": execution_id,
            "queue": queue,
            "workflowName": workflow_name,
            "status": QUEUED,
            "attempt": 0,
            "maxAttempts": max_attempts,
            "createdAt": iso(utc_now()),
            "startedAt": "",
            "finishedAt": "",
            "nextRetryAt": "",
            "currentNode": "",
            "nodes": "{}",
            "output": "null",
            "error": "null",
            "idempotencyKey": idempotency_key or "",
            "requeues": 0,
            "attemptBase": 0,
            "token": "",
        })
        pipeline.expire(key, self.settings.state_ttl)

    # -- reads -----------------------------------------------------------------------------------

    def get(self, execution_id: str) -> dict[str, Any] | None:
        raw = self.connection.hgetall(keys.execution(execution_id))
        return decode_state(raw) if raw else None

    def get_many(self, execution_ids: list[str]) -> list[dict[str, Any] | None]:
        with self.connection.pipeline(transaction=False) as pipe:
            for execution_id in execution_ids:
                pipe.hgetall(keys.execution(execution_id))
            raws = pipe.execute()
        return [decode_state(raw) if raw else None for raw in raws]



def attempt_field(number: int) -> str:
    return f"attempt:{number}"


def decode_state(raw: dict[bytes | str, bytes | str]) -> dict[str, Any]:
    state: dict[str, Any] = {}
    attempts: list[dict[str, Any]] = []
    for k, v in raw.items():
        name = k.decode() if isinstance(k, bytes) else k
        text = v.decode() if isinstance(v, bytes) else v
        if name in _HIDDEN_FIELDS:
            continue
        if name.startswith("attempt:"):
            attempts.append(json.loads(text))
        elif name in _JSON_FIELDS:
            state[name] = json.loads(text) if text else None
        elif name in _INT_FIELDS:
            state[name] = int(text or 0)
        elif name == "cancelRequested":
            state[name] = text == "1"
        else:
            state[name] = text or None
    state.setdefault("cancelRequested", False)
    state["attempts"] = sorted(attempts, key=lambda a: a.get("attempt", 0))
    return state


def iso_epoch(seconds: float | None) -> str:
    return iso(datetime.fromtimestamp(seconds, timezone.utc)) if seconds is not None else ""
