"""One execution's state: a Redis hash at ``nodedrop:execution:<id>``.

Fields (all strings in Redis; JSON where noted; an absent field reads as its default):

===============  ==============================================================================
queue            the queue it runs on (the id is the key's, and the RQ job's)
workflowName     the workflow's name
workflow         digest of the workflow document, stored once at ``nodedrop:document:<digest>``
input            JSON list of the input items
status           queued | running | retrying | succeeded | failed | cancelled
attempt          number of the current or last attempt (1-based); maxAttempts: 1 + retries
createdAt, startedAt, finishedAt, nextRetryAt   Unix milliseconds, read back as ISO 8601 UTC
currentNode      id of the node running now
nodes            JSON: {nodeId: [status, type, name or null when it is the id, startedAt, finishedAt (both
                 ms after the attempt's startedAt), durationMs, outputCount, error]} with trailing nulls
                 left out; read back as {nodeId: {name, type, status, startedAt, finishedAt, durationMs,
                 outputCount, error}}
excString        the innermost frame's location of a failed node's traceback (``failed show``; the header
                 and the exception line are put back by :func:`traceback_text`); other failures keep their
                 traceback in the RQ job
attempt:<n>      JSON {r: startedAt (ms after createdAt), d: finishedAt (ms after the start), st: status
                 (left out for a failed attempt, which has e), e: {m: message, k: kind, n: nodeId} (1 when it is the
                 previous attempt's), w: worker (left out when it is the previous attempt's)}: one field
                 per attempt, read back as the list ``attempts`` of {attempt, startedAt, finishedAt, status,
                 error, worker}
output           JSON list of items of the final node(s), once succeeded
error            JSON {nodeId, nodeType, nodeName, message, kind} of the last failure
cancelRequested  "1" once a cancel was asked for a running execution
idempotencyKey   the key it was submitted with, if any
requeues         how often it was requeued from the failed registry by hand
workflowId       the stored workflow's id (or the document's own ``id``); workflowVersion: the stored
                 workflow's version it ran (absent for a document submitted whole)
===============  ==============================================================================

Values longer than 64 bytes are stored in pieces (``output``, ``output#1``, ...; see
``nodedrop_rq.execution.scripts.CHUNK``) and empty ones not at all, so that Redis keeps the hash in its
compact encoding. The key lives EXECUTION_STATE_TTL seconds while the execution is active,
EXECUTION_COMPLETION_TTL seconds once it succeeded or was cancelled, EXECUTION_FAILURE_TTL once failed.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from redis import Redis
from redis.client import Pipeline

from nodedrop_rq import jsontext, keys
from nodedrop_rq.errors import ExecutionFailed
from nodedrop_rq.execution.scripts import CHUNK

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
_TIME_FIELDS = ("createdAt", "startedAt", "finishedAt", "nextRetryAt")
# Internal to the state machine and the worker: the running attempt's fencing token, the workflow's digest
# and the input are not part of the public record.
_HIDDEN_FIELDS = ("token", "workflow", "input", "excString")
# Pieces of a traceback read back at most (CHUNK bytes each).
_TRACEBACK_PIECES = 64
# What an absent field reads as.
_DEFAULTS: dict[str, Any] = {
    "queue": None, "workflowName": None, "attempt": 0, "maxAttempts": 0, "createdAt": None, "startedAt": None,
    "finishedAt": None, "nextRetryAt": None, "currentNode": None, "nodes": {}, "output": None, "error": None,
    "idempotencyKey": None, "requeues": 0, "attemptBase": 0, "cancelRequested": False,
}
# Order of a node record's stored fields (see the module's docstring).
_NODE_FIELDS = ("status", "type", "name", "startedAt", "finishedAt", "durationMs", "outputCount", "error")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime | None) -> str:
    if moment is None:
        return ""
    if moment.tzinfo is not timezone.utc:
        moment = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"  # without its "+00:00"


def stored_time(text: str) -> str:
    """An ISO 8601 time as the state stores it: Unix milliseconds (13 digits instead of 24 characters)."""
    moment = parse_iso(text)
    return str(round(moment.timestamp() * 1000)) if moment is not None else ""


def iso_of_stored(text: str | None) -> str | None:
    """A stored time read back as ISO 8601 (states written before stored ISO text, which is kept)."""
    if not text:
        return None
    return iso_epoch(int(text) / 1000) if text.isdigit() else text


def parse_iso(text: str) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def dumps(value: object) -> str:
    """Strict JSON for Redis (other readers, rq-dashboard and other languages, get no NaN or lone
    surrogates; an output nested too deep is kept as its JSON text)."""
    return jsontext.dumps_compact(value)


class ExecutionStore:
    """Creates and reads execution state hashes. Every later write is a fenced transition
    (``nodedrop_rq.execution.transitions``)."""

    def __init__(self, connection: Redis, settings: Settings) -> None:
        self.connection = connection
        self.settings = settings

    # -- the submit transition's writes (into the submit transaction) ---------------------------

    def create(self, pipeline: Pipeline, execution_id: str, *, queue: str, workflow_name: str,
               max_attempts: int, idempotency_key: str | None, workflow: str, items: list[dict]) -> None:
        key = keys.execution(execution_id)
        pipeline.hset(key, mapping=pieces({
            "queue": queue,
            "workflowName": workflow_name,
            "workflow": workflow,
            "input": dumps(items),
            "status": QUEUED,
            "attempt": "0",
            "maxAttempts": str(max_attempts),
            "createdAt": stored_time(iso(utc_now())),
            "idempotencyKey": idempotency_key or "",
        }))
        pipeline.expire(key, self.settings.state_ttl)

    # -- reads -----------------------------------------------------------------------------------

    def get(self, execution_id: str) -> dict[str, Any] | None:
        raw = self.connection.hgetall(keys.execution(execution_id))
        return decode_state(raw, execution_id) if raw else None

    def get_many(self, execution_ids: list[str]) -> list[dict[str, Any] | None]:
        with self.connection.pipeline(transaction=False) as pipe:
            for execution_id in execution_ids:
                pipe.hgetall(keys.execution(execution_id))
            raws = pipe.execute()
        return [decode_state(raw, i) if raw else None for raw, i in zip(raws, execution_ids, strict=True)]

    def tracebacks(self, execution_ids: list[str]) -> list[str | None]:
        """What each execution's state keeps of a node failure's traceback (``excString``; read it with
        :func:`traceback_text`), or None."""
        names = ["excString", *(f"excString#{n}" for n in range(1, _TRACEBACK_PIECES))]
        with self.connection.pipeline(transaction=False) as pipe:
            for execution_id in execution_ids:
                pipe.hmget(keys.execution(execution_id), names)
            replies = pipe.execute()
        return [joined({n: v for n, v in zip(names, reply, strict=True) if v is not None}).get("excString")
                for reply in replies]



def attempt_field(number: int) -> str:
    return f"attempt:{number}"


def pieces(fields: dict[str, str]) -> dict[str, bytes]:
    """``fields`` as stored: empty values left out, long ones in pieces of CHUNK bytes (``name``,
    ``name#1`` ...). For a new key; the scripts also delete the pieces an earlier, longer value left."""
    stored: dict[str, bytes] = {}
    for name, value in fields.items():
        data = value.encode()
        for index in range(0, len(data), CHUNK):
            stored[name if index == 0 else f"{name}#{index // CHUNK}"] = data[index:index + CHUNK]
    return stored


def joined(raw: dict[bytes | str, bytes | str]) -> dict[str, str]:
    """The stored hash with each field's pieces put back together (before decoding: a piece may end
    inside a UTF-8 sequence)."""
    whole: dict[str, bytes] = {}
    rest: dict[str, dict[int, bytes]] = {}
    for k, v in raw.items():
        name = k.decode() if isinstance(k, bytes) else k
        data = v if isinstance(v, bytes) else v.encode()
        base, sep, number = name.rpartition("#")
        if sep and number.isdigit():
            rest.setdefault(base, {})[int(number)] = data
        else:
            whole[name] = data
    for name, parts in rest.items():
        if name in whole:
            whole[name] += b"".join(parts[n] for n in sorted(parts))
    return {name: data.decode() for name, data in whole.items()}


def dumps_nodes(nodes: dict[str, dict[str, Any]], since: str | None) -> str:
    """The nodes record in its compact stored form (see the module's docstring); ``since``: the
    attempt's ``startedAt``, which node times are counted from."""
    base = _epoch_ms(since) if since else 0
    compact = {}
    for node_id, node in nodes.items():
        values = [node.get(name) for name in _NODE_FIELDS]
        if values[2] == node_id:
            values[2] = None
        for index in (3, 4):
            moment = _epoch_ms(values[index])
            values[index] = moment - base if isinstance(moment, int) else moment
        while values and values[-1] is None:
            values.pop()
        compact[node_id] = values
    return dumps(compact)


def _epoch_ms(moment: Any) -> Any:
    if isinstance(moment, str) and moment.isdigit():
        return int(moment)
    parsed = parse_iso(moment) if isinstance(moment, str) and moment else None
    return round(parsed.timestamp() * 1000) if parsed is not None else moment


def _from_ms(value: Any, base: int = 0) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return iso_epoch((base + value) / 1000)
    return value


def _node(node_id: str, stored: Any, base: int) -> Any:
    if not isinstance(stored, list):
        return stored  # written before the compact form, or by hand
    node = dict(zip(_NODE_FIELDS, stored + [None] * (len(_NODE_FIELDS) - len(stored)), strict=False))
    if node["name"] is None:
        node["name"] = node_id
    node["startedAt"], node["finishedAt"] = _from_ms(node["startedAt"], base), _from_ms(node["finishedAt"], base)
    return {"name": node.pop("name"), "type": node.pop("type"), **node}


def decode_nodes(text: str | None, since: str | None) -> dict[str, Any]:
    """The stored nodes record, read back as {nodeId: {name, type, status, ...}}; ``since`` as for
    :func:`dumps_nodes`."""
    nodes = json.loads(text) if text else {}
    if not isinstance(nodes, dict):
        return nodes
    base = _epoch_ms(since) if since else 0
    base = base if isinstance(base, int) else 0
    return {node_id: _node(node_id, stored, base) for node_id, stored in nodes.items()}


TRACEBACK_HEADER = "Traceback (most recent call last):"


def traceback_text(stored: str | None, error: Any) -> str | None:
    """A node failure's traceback kept in the state (``excString``: where ExecutionFailed was raised), with
    the header line and the exception line it is stored without; the latter is ExecutionFailed's text for
    the execution's ``error``, the error it was raised with."""
    if not stored:
        return None
    lines = [stored] if stored.startswith(TRACEBACK_HEADER) else [TRACEBACK_HEADER, stored]
    if isinstance(error, dict) and len(stored.splitlines()) == 1:
        lines.append(f"{ExecutionFailed.__module__}.{ExecutionFailed.__qualname__}: {ExecutionFailed(error, 0)}")
    return "\n".join(lines)


# Stored keys of an attempt record, and the names it is read back with.
_ATTEMPT_KEYS = {"s": "startedAt", "f": "finishedAt", "st": "status", "e": "error", "w": "worker"}
_ERROR_KEYS = {"m": "message", "k": "kind", "n": "nodeId"}


def attempt_patch(finished_at: str, status: str, error: dict[str, Any] | None) -> dict[str, Any]:
    """What an attempt's end adds to its stored record (the script keeps ``f`` as ``d``, ms after ``s``)."""
    patch: dict[str, Any] = {"f": _epoch_ms(finished_at), "st": status}
    if error is not None:
        # The node's type and name are in the execution's `error` and its node record.
        patch["e"] = {short: error[name] for short, name in _ERROR_KEYS.items() if name in error}
    return patch


def _attempt(number: str, stored: Any, created_ms: int | None) -> Any:
    if not isinstance(stored, dict):
        return stored
    record: dict[str, Any] = {"attempt": int(number) if number.isdigit() else number, "startedAt": None,
                              "finishedAt": None, "status": None, "error": None, "worker": None}
    start = stored.get("s")
    if isinstance(stored.get("r"), (int, float)) and created_ms is not None:
        start = created_ms + stored["r"]
    for key, value in stored.items():
        if key in ("r", "d"):
            continue
        name = _ATTEMPT_KEYS.get(key, key)
        if name in ("startedAt", "finishedAt"):
            value = _from_ms(value)
        elif key == "e" and isinstance(value, dict):
            value = {_ERROR_KEYS.get(k, k): v for k, v in value.items()}
        record[name] = value
    if isinstance(start, (int, float)):
        record["startedAt"] = _from_ms(start)
        if isinstance(stored.get("d"), (int, float)):
            record["finishedAt"] = _from_ms(start + stored["d"])
    if record["status"] is None and "e" in stored:
        record["status"] = "failed"  # stored as its error alone
    return record


def _attempt_number(record: Any) -> int:
    number = record.get("attempt") if isinstance(record, dict) else None
    return number if isinstance(number, int) else 0


def _carry_workers(attempts: list[Any]) -> list[Any]:
    """An attempt's record names its worker only when it differs from the previous attempt's, and its error
    is 1 when it is the previous attempt's."""
    worker = error = None
    for record in attempts:
        if isinstance(record, dict):
            worker = record["worker"] = record.get("worker") or worker
            if record.get("error") == 1:
                record["error"] = dict(error) if isinstance(error, dict) else error
            error = record.get("error")
    return attempts


def decode_state(raw: dict[bytes | str, bytes | str], execution_id: str | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {"id": execution_id, **_DEFAULTS}
    attempt_texts: list[tuple[str, str]] = []
    nodes_text = None
    fields = joined(raw)
    for name, text in fields.items():
        if name in _HIDDEN_FIELDS:
            continue
        if name.startswith("attempt:"):
            attempt_texts.append((name.partition(":")[2], text))
        elif name == "nodes":
            nodes_text = text
        elif name in _JSON_FIELDS:
            state[name] = json.loads(text) if text else None
        elif name in _INT_FIELDS:
            state[name] = int(text or 0)
        elif name == "cancelRequested":
            state[name] = text == "1"
        elif name in _TIME_FIELDS:
            state[name] = iso_of_stored(text)
        else:
            state[name] = text or None
    state["nodes"] = decode_nodes(nodes_text, state["startedAt"])
    created = _epoch_ms(fields.get("createdAt"))
    attempts = [_attempt(number, json.loads(text), created if isinstance(created, int) else None)
                for number, text in attempt_texts]
    state["attempts"] = _carry_workers(sorted(attempts, key=_attempt_number))
    return state


def iso_epoch(seconds: float | None) -> str:
    return iso(datetime.fromtimestamp(seconds, timezone.utc)) if seconds is not None else ""
