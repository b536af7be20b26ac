"""Every change of an execution's status, in one place.

Callers pass the pipeline in which RQ makes its own change of the job (the worker's success and
failure hooks, the abandoned-job callback), so that our state and RQ's registries change together.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from redis import Redis
from redis.client import Pipeline
from rq.job import Job

from nodedrop_rq import counters, events, keys, state
from nodedrop_rq.settings import Settings
from nodedrop_rq.state import ExecutionStore, attempt_field, iso, utc_now


@dataclass
class AttemptFailure:
    """Why an attempt ended without success, and what RQ will do next."""

    error: dict[str, Any]
    retry: bool
    retry_in: int | None = None
    cancelled: bool = False
    nodes: dict[str, Any] | None = None
    # Known when the attempt failed inside run_execution; read from the state otherwise.
    attempt: int | None = None
    started_at: str | None = None
    worker: str | None = None
    events: list[str] = field(default_factory=list)


class Transitions:
    def __init__(self, connection: Redis, settings: Settings) -> None:
        self.connection = connection
        self.settings = settings
        self.store = ExecutionStore(connection, settings)
        self._start_script = connection.register_script(_START_ATTEMPT)

    # -- in the horse, around the workflow run ---------------------------------------------------

    def start_attempt(self, execution_id: str, worker_name: str) -> tuple[int, str, bool]:
        """Count a new attempt and mark it running, in one round trip.

        Returns (attempt number, its start time, whether a cancel was requested)."""
        now = iso(utc_now())
        reply = self._start_script(keys=[keys.execution(execution_id)],
                                   args=[now, worker_name, self.settings.state_ttl, execution_id, keys.EVENTS_CHANNEL])
        return attempt_started(reply, now)

    def queue_start_attempt(self, pipe: Pipeline, execution_id: str, worker_name: str) -> str:
        """``start_attempt`` as one more command of ``pipe``; returns the start time, to pass with the
        command's reply to :func:`attempt_started`. EVAL, not EVALSHA: after a Redis restart the script
        cache is empty, and a NOSCRIPT inside a MULTI would fail this command alone."""
        now = iso(utc_now())
        pipe.eval(_START_ATTEMPT, 1, keys.execution(execution_id), now, worker_name, self.settings.state_ttl,
                  execution_id, keys.EVENTS_CHANNEL)
        return now

    # -- in RQ's pipelines -------------------------------------------------------------------------

    def succeeded(self, pipe: Pipeline, job: Job, result: dict[str, Any], duration: float | None) -> None:
        """``result`` is what run_execution returned: status, attempt, startedAt, nodes, output, and the
        node events not yet published (``events``, removed here so RQ does not store them)."""
        attempt = int(result.get("attempt") or 0)
        cancelled = result.get("status") == state.CANCELLED
        status = state.CANCELLED if cancelled else state.SUCCEEDED
        now = iso(utc_now())
        fields: dict[str, Any] = {"status": status, "finishedAt": now, "currentNode": "", "nextRetryAt": ""}
        if "nodes" in result:
            fields["nodes"] = result["nodes"]
        if not cancelled:
            fields["output"] = result.get("output")
        if attempt:
            fields[attempt_field(attempt)] = _attempt_record(attempt, result.get("startedAt"), now, status, None,
                                                             result.get("worker"))
        self.store.update(pipe, job.id, fields)
        counters.record_outcome(pipe, job.origin, counters.CANCELLED if cancelled else counters.COMPLETED,
                                None if cancelled else duration)
        _publish_pending(pipe, result.pop("events", ()))
        events.publish(pipe, events.CANCELLED if cancelled else events.COMPLETED, job.id, attempt=attempt)

    def attempt_failed(self, pipe: Pipeline, job: Job, failure: AttemptFailure, duration: float | None) -> None:
        error = dict(failure.error)
        if failure.attempt is not None and failure.nodes is not None:
            attempt, nodes = failure.attempt, failure.nodes
            record = _attempt_record(attempt, failure.started_at, None, state.RUNNING, None, failure.worker)
        else:
            # The attempt ended outside run_execution (killed, timed out, abandoned): read what it left.
            key = keys.execution(job.id)
            attempt_raw, current, nodes_raw = self.connection.hmget(key, "attempt", "currentNode", "nodes")
            attempt = int(attempt_raw or 0)
            nodes = _mark_running_failed(nodes_raw)
            raw = self.connection.hget(key, attempt_field(attempt)) if attempt else None
            record = json.loads(raw) if raw else _attempt_record(attempt, None, None, state.RUNNING, None, None)
            current_node = current.decode() if isinstance(current, bytes) else (current or "")
            if current_node and not error.get("nodeId"):
                node = nodes.get(current_node, {})
                error.update(nodeId=current_node, nodeType=node.get("type"), nodeName=node.get("name"))
        now = iso(utc_now())
        if failure.cancelled:
            status, outcome, event = state.CANCELLED, counters.CANCELLED, events.CANCELLED
        elif failure.retry:
            status, outcome, event = state.RETRYING, counters.RETRIED, events.RETRYING
        else:
            status, outcome, event = state.FAILED, counters.FAILED, events.FAILED
        fields: dict[str, Any] = {"status": status, "currentNode": "", "error": error, "nodes": nodes}
        if status == state.RETRYING:
            fields["nextRetryAt"] = iso(utc_now() + timedelta(seconds=failure.retry_in or 0))
        else:
            fields["finishedAt"] = now
            fields["nextRetryAt"] = ""
        if attempt:
            record.update(finishedAt=now, status=state.FAILED, error=error)
            fields[attempt_field(attempt)] = record
        self.store.update(pipe, job.id, fields)
        counters.record_outcome(pipe, job.origin, outcome, duration)
        _publish_pending(pipe, failure.events)
        events.publish(pipe, event, job.id, attempt=attempt, error=error.get("message"),
                       nextRetryAt=fields.get("nextRetryAt") or None)


def _attempt_record(attempt: int, started_at: str | None, finished_at: str | None, status: str,
                    error: dict[str, Any] | None, worker: str | None) -> dict[str, Any]:
    return {"attempt": attempt, "startedAt": started_at, "finishedAt": finished_at, "status": status,
            "error": error, "worker": worker}


def _publish_pending(pipe: Pipeline, messages: list[str] | tuple[str, ...]) -> None:
    for message in messages:
        pipe.publish(keys.EVENTS_CHANNEL, message)


# Counts the attempt, marks it running and publishes `started` atomically; returns the attempt number
# and the cancel flag. KEYS[1]: execution hash. ARGV: now, worker, state TTL, execution id, channel.
_START_ATTEMPT = """
local n = redis.call('HINCRBY', KEYS[1], 'attempt', 1)
redis.call('HSET', KEYS[1], 'status', 'running', 'startedAt', ARGV[1], 'nextRetryAt', '', 'currentNode', '',
  'nodes', '{}', 'attempt:' .. n, cjson.encode({attempt = n, startedAt = ARGV[1], finishedAt = cjson.null,
  status = 'running', error = cjson.null, worker = ARGV[2]}))
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[5], cjson.encode({type = 'started', executionId = ARGV[4], timestamp = ARGV[1],
  attempt = n}))
return {n, redis.call('HGET', KEYS[1], 'cancelRequested')}
"""


def attempt_started(reply: Any, started_at: str) -> tuple[int, str, bool]:
    """(attempt number, start time, whether a cancel was requested) from the start script's reply."""
    attempt, cancel = reply
    return int(attempt), started_at, cancel in (b"1", "1")


def _mark_running_failed(nodes_raw: bytes | str | None) -> dict[str, Any]:
    nodes = json.loads(nodes_raw) if nodes_raw else {}
    for node in nodes.values():
        if node.get("status") == "running":
            node["status"] = "failed"
    return nodes


def job_duration(job: Job) -> float | None:
    if job.started_at and job.ended_at:
        return max(0.0, (job.ended_at - job.started_at).total_seconds())
    return None
