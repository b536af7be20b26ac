"""Every change of an execution's status, in one place.

Callers pass the pipeline in which RQ makes its own change of the job (the worker's success and
failure hooks, the abandoned-job callback), so that our state and RQ's registries change together.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
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


class Transitions:
    def __init__(self, connection: Redis, settings: Settings) -> None:
        self.connection = connection
        self.settings = settings
        self.store = ExecutionStore(connection, settings)

    # -- in the horse, around the workflow run ---------------------------------------------------

    def start_attempt(self, execution_id: str, worker_name: str) -> tuple[int, bool]:
        """Count a new attempt and mark it running. Returns (attempt number, cancel requested)."""
        key = keys.execution(execution_id)
        with self.connection.pipeline() as pipe:
            pipe.hincrby(key, "attempt", 1)
            pipe.hget(key, "cancelRequested")
            attempt, cancel = pipe.execute()
        now = iso(utc_now())
        with self.connection.pipeline() as pipe:
            self.store.update(pipe, execution_id, {
                "status": state.RUNNING,
                "startedAt": now,
                "nextRetryAt": "",
                "currentNode": "",
                "nodes": {},
                attempt_field(attempt): {
                    "attempt": attempt, "startedAt": now, "finishedAt": None,
                    "status": state.RUNNING, "error": None, "worker": worker_name,
                },
            })
            events.publish(pipe, events.STARTED, execution_id, attempt=attempt)
            pipe.execute()
        return int(attempt), cancel in (b"1", "1")

    def node_event(self, execution_id: str, attempt: int, nodes: dict[str, Any], event: dict[str, Any]) -> bool:
        """Record a node event and publish it. Returns True when a cancel was requested meanwhile."""
        key = keys.execution(execution_id)
        current = event["nodeId"] if event["type"] == "node-started" else ""
        with self.connection.pipeline(transaction=False) as pipe:
            pipe.hset(key, mapping={"currentNode": current, "nodes": state.dumps(nodes)})
            events.publish(pipe, event.pop("type"), execution_id, attempt=attempt, **event)
            pipe.hget(key, "cancelRequested")
            cancel = pipe.execute()[-1]
        return cancel in (b"1", "1")

    # -- in RQ's pipelines -------------------------------------------------------------------------

    def succeeded(self, pipe: Pipeline, job: Job, result: dict[str, Any], duration: float | None) -> None:
        attempt = self._attempt(job.id)
        cancelled = result.get("status") == state.CANCELLED
        status = state.CANCELLED if cancelled else state.SUCCEEDED
        now = iso(utc_now())
        fields: dict[str, Any] = {"status": status, "finishedAt": now, "currentNode": "", "nextRetryAt": ""}
        if "nodes" in result:
            fields["nodes"] = result["nodes"]
        if not cancelled:
            fields["output"] = result.get("output")
        fields.update(self._close_attempt(job.id, attempt, status, None, now))
        self.store.update(pipe, job.id, fields)
        counters.record_outcome(pipe, job.origin, counters.CANCELLED if cancelled else counters.COMPLETED,
                                None if cancelled else duration)
        events.publish(pipe, events.CANCELLED if cancelled else events.COMPLETED, job.id, attempt=attempt)

    def attempt_failed(self, pipe: Pipeline, job: Job, failure: AttemptFailure, duration: float | None) -> None:
        key = keys.execution(job.id)
        attempt_raw, current_node, nodes_raw = self.connection.hmget(key, "attempt", "currentNode", "nodes")
        attempt = int(attempt_raw or 0)
        nodes = failure.nodes if failure.nodes is not None else _mark_running_failed(nodes_raw)
        error = dict(failure.error)
        if not error.get("nodeId") and current_node:
            error["nodeId"] = current_node.decode() if isinstance(current_node, bytes) else current_node
            node = nodes.get(error["nodeId"], {}) if isinstance(nodes, dict) else {}
            error.setdefault("nodeType", node.get("type"))
            error.setdefault("nodeName", node.get("name"))
        now = iso(utc_now())
        if failure.cancelled:
            status, outcome, event = state.CANCELLED, counters.CANCELLED, events.CANCELLED
        elif failure.retry:
            status, outcome, event = state.RETRYING, counters.RETRIED, events.RETRYING
        else:
            status, outcome, event = state.FAILED, counters.FAILED, events.FAILED
        fields: dict[str, Any] = {"status": status, "currentNode": "", "error": error, "nodes": nodes}
        if status == state.RETRYING:
            next_at = utc_now() + timedelta(seconds=failure.retry_in or 0)
            fields["nextRetryAt"] = iso(next_at)
        else:
            fields["finishedAt"] = now
            fields["nextRetryAt"] = ""
        fields.update(self._close_attempt(job.id, attempt, state.FAILED, error, now))
        self.store.update(pipe, job.id, fields)
        counters.record_outcome(pipe, job.origin, outcome, duration)
        events.publish(pipe, event, job.id, attempt=attempt, error=error.get("message"),
                       nextRetryAt=fields.get("nextRetryAt") or None)

    # -- helpers -----------------------------------------------------------------------------------

    def _attempt(self, execution_id: str) -> int:
        return int(self.connection.hget(keys.execution(execution_id), "attempt") or 0)

    def _close_attempt(self, execution_id: str, attempt: int, status: str, error: dict | None,
                       now: str) -> dict[str, Any]:
        if attempt <= 0:
            return {}
        raw = self.connection.hget(keys.execution(execution_id), attempt_field(attempt))
        record = json.loads(raw) if raw else {"attempt": attempt, "startedAt": None}
        record.update({"finishedAt": now, "status": status, "error": error})
        return {attempt_field(attempt): record}


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
