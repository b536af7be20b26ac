"""Every status write of an execution, each one fenced Lua script call (see ``status.py`` for the
table and ``scripts.py`` for the scripts).

The writer says which statuses it expects to leave and, for an attempt's outcome, the attempt number
and the token its start wrote (the RQ execution id of the run). A refused write returns ``False`` and
changed nothing: no field, no counter, no event.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from redis import Redis
from redis.client import Pipeline

from nodedrop_rq import counters, documents, keys
from nodedrop_rq.execution import scripts, status
from nodedrop_rq.execution.status import Transition
from nodedrop_rq.settings import Settings
from nodedrop_rq.state import (
    attempt_patch,
    dumps,
    dumps_nodes,
    iso,
    iso_epoch,
    iso_of_stored,
    stored_time,
    utc_now,
)


@dataclass(frozen=True)
class Started:
    """What the start script found and did."""

    outcome: str  # started | skip | cancelled | missing
    status: str
    attempt: int
    max_attempts: int
    attempt_base: int
    requeued: bool
    started_at: str
    token: str
    # When it began: the digest of the workflow document to run, and the input items (JSON).
    workflow: str = ""
    input: str = ""

    @property
    def began(self) -> bool:
        return self.outcome == "started"


@dataclass(frozen=True)
class Running:
    """The attempt an execution is running (or last ran), read before a fenced write."""

    status: str | None
    attempt: int
    max_attempts: int
    attempt_base: int
    token: str
    queue: str
    workflow: str = ""


class Transitions:
    def __init__(self, connection: Redis, settings: Settings, *, failed_registry: Callable[[str], str]) -> None:
        # The key of RQ's failed registry of a queue, from the RQ layer (this package imports no RQ): the
        # start tells a requeued failed execution from a leftover delivery by it.
        self.failed_registry = failed_registry
        self.connection = connection
        self.settings = settings
        self._start = connection.register_script(scripts.START)
        self._transition = connection.register_script(scripts.TRANSITION)

    # -- start ------------------------------------------------------------------------------------

    def _start_args(self, execution_id: str, queue: str, worker: str, token: str,
                    enqueued_at: float | None) -> tuple[list[str], list[Any]]:
        moment = time.time()
        return ([keys.execution(execution_id), keys.counters(queue), keys.active(queue), self.failed_registry(queue)],
                [iso_epoch(moment), worker, token, self.settings.state_ttl, execution_id, keys.EVENTS_CHANNEL,
                 len(self.settings.retry_intervals), self.settings.completion_ttl, moment,
                 self.settings.failure_ttl, "" if enqueued_at is None else repr(enqueued_at)])

    def start(self, execution_id: str, queue: str, worker: str, token: str,
              enqueued_at: float | None = None) -> Started:
        """Begin the next attempt (or find that this delivery must not run). ``enqueued_at`` (epoch
        seconds of the delivery's last enqueue) is where its queue wait starts, unless it is a retry,
        which waited from its due time."""
        script_keys, args = self._start_args(execution_id, queue, worker, token, enqueued_at)
        return parse_start(self._start(keys=script_keys, args=args), args[0], token)

    def queue_start(self, pipe: Pipeline, execution_id: str, queue: str, worker: str, token: str,
                    enqueued_at: float | None = None) -> tuple[str, str]:
        """The start as one more command of ``pipe``; pass its reply and the returned pair to
        :func:`parse_start`."""
        script_keys, args = self._start_args(execution_id, queue, worker, token, enqueued_at)
        pipe.evalsha(self._start.sha, len(script_keys), *script_keys, *args)
        return args[0], token

    def start_again(self, execution_id: str, queue: str, worker: str, token: str, started_at: str,
                    enqueued_at: float | None = None) -> Started:
        """The start of :meth:`queue_start` on its own, after Redis answered that pipeline's EVALSHA with
        NOSCRIPT (its script cache was emptied by a restart): this call loads the script."""
        script_keys, args = self._start_args(execution_id, queue, worker, token, enqueued_at)
        args[0] = started_at
        return parse_start(self._start(keys=script_keys, args=args), started_at, token)

    # -- an attempt's outcome ------------------------------------------------------------------

    def read_running(self, execution_id: str) -> Running:
        raw = self.connection.hmget(keys.execution(execution_id), "status", "attempt", "maxAttempts",
                                    "attemptBase", "token", "queue", "workflow")
        text = [v.decode() if isinstance(v, bytes) else v for v in raw]
        return Running(text[0], int(text[1] or 0), int(text[2] or 0), int(text[3] or 0), text[4] or "",
                       text[5] or self.settings.queue, text[6] or "")

    def finish(self, execution_id: str, queue: str, *, attempt: int, token: str, target: str,
               error: dict[str, Any] | None = None, nodes: dict[str, Any] | None = None,
               output: Any = None, duration: float | None = None, retry_in: int | None = None,
               events: list[str] | tuple[str, ...] = (), workflow: str = "", started_at: str | None = None) -> bool:
        """End attempt ``attempt`` (started with ``token`` at ``started_at``, which node times are stored
        relative to) as ``target``. ``workflow``: the digest of the document it ran, kept as long as the
        outcome can still lead to another attempt."""
        now = iso(utc_now())
        fields: dict[str, str] = {"currentNode": ""}
        if nodes is not None:
            fields["nodes"] = dumps_nodes(nodes, started_at)
        if target == status.SUCCEEDED:
            fields["output"] = dumps(output)
        if error is not None:
            fields["error"] = dumps(error)
        if target == status.RETRYING:
            fields["nextRetryAt"] = stored_time(iso(utc_now() + timedelta(seconds=retry_in or 0)))
        else:
            fields.update(finishedAt=stored_time(now), nextRetryAt="")
        record = attempt_patch(now, status.SUCCEEDED if target == status.SUCCEEDED
                               else (status.CANCELLED if target == status.CANCELLED else status.FAILED), error)
        event = {status.SUCCEEDED: "completed", status.RETRYING: "retrying", status.FAILED: "failed",
                 status.CANCELLED: "cancelled"}[target]
        message = _event(event, execution_id, now, attempt=attempt,
                         error=(error or {}).get("message") if target != status.SUCCEEDED else None,
                         nextRetryAt=iso_of_stored(fields.get("nextRetryAt")))
        return self._apply(status.FINISH, execution_id, queue, target, fields, attempt=attempt, token=token,
                           record=record, duration=duration if target != status.CANCELLED else None,
                           messages=[*events, message], workflow=workflow)

    # -- from outside an attempt ---------------------------------------------------------------

    def cancel_waiting(self, execution_id: str, queue: str, attempt: int, *, removed: bool = False) -> bool:
        """A queued or retrying execution ends ``cancelled`` (``removed``: its RQ job was deleted or
        cancelled with RQ's own tools)."""
        now = iso(utc_now())
        transition = status.JOB_REMOVED if removed else status.CANCEL_WAITING
        fields = {"finishedAt": stored_time(now), "nextRetryAt": "", "currentNode": ""}
        if removed:
            fields["error"] = dumps({"message": "the RQ job of this execution was deleted or cancelled with "
                                                "RQ's tools", "kind": "cancelled"})
        return self._apply(transition, execution_id, queue, status.CANCELLED, fields, attempt=attempt,
                           messages=[_event("cancelled", execution_id, now, attempt=attempt)])

    def requeue(self, execution_id: str, queue: str, attempt: int) -> bool:
        """A failed execution goes back to ``queued`` with a fresh retry schedule (as many attempts
        again as a new execution gets); attempt numbers continue."""
        fields = {"finishedAt": "", "nextRetryAt": "", "error": "", "currentNode": "",
                  "maxAttempts": str(attempt + self.settings.max_attempts), "attemptBase": str(attempt)}
        # Read outside the script; only one of two concurrent requeues passes the fence on `failed`.
        current, workflow = self.connection.hmget(keys.execution(execution_id), "requeues", "workflow")
        fields["requeues"] = str(int(current or 0) + 1)
        return self._apply(status.REQUEUE, execution_id, queue, status.QUEUED, fields, attempt=attempt,
                           active="add", clear_cancel=True, workflow=(workflow or b"").decode())

    # -- the one writer -----------------------------------------------------------------------

    def _apply(self, transition: Transition, execution_id: str, queue: str, target: str,
               fields: dict[str, str], *, attempt: int | None = None, token: str | None = None,
               record: dict[str, Any] | None = None, duration: float | None = None,
               messages: list[str] | None = None, active: str | None = None, clear_cancel: bool = False,
               workflow: str = "") -> bool:
        if target not in transition.targets:
            raise ValueError(f"transition {transition.name} cannot lead to {target}")
        if transition.fenced_on_attempt and (attempt is None or not token):
            raise ValueError(f"transition {transition.name} needs the attempt and its token")
        if clear_cancel:
            fields = dict(fields, cancelRequested="")
        terminal = target in status.TERMINAL
        if active is None:
            active = "remove" if terminal else ""
        # A failed execution waits for manual review as long as its job stays in RQ's failed registry.
        ttl = (self.settings.failure_ttl if target == status.FAILED
               else self.settings.completion_ttl if terminal else self.settings.state_ttl)
        counter = transition.counter_for(target) or ""
        timed = duration is not None and duration >= 0
        script_keys = [keys.execution(execution_id), keys.counters(queue), keys.active(queue)]
        # The workflow document must outlive every execution that may still run it: one that waits or
        # failed (and may be requeued); one that succeeded or was cancelled will not run again.
        document_ttl = documents.needed_for(self.settings, target)
        if workflow and document_ttl:
            script_keys.append(keys.document(workflow))
        reply = self._transition(
            keys=script_keys,
            args=[",".join(sorted(transition.sources)), "" if attempt is None else str(attempt), token or "",
                  target, ttl, json.dumps(fields), dumps(record) if record is not None else "", counter,
                  repr(float(duration)) if timed else "", counters.bucket_for(duration) if timed else "",
                  keys.EVENTS_CHANNEL, active, execution_id, time.time(), document_ttl or "", *(messages or ())])
        return bool(reply[0])


def failure_target(settings: Settings, attempt: int, max_attempts: int, attempt_base: int) -> tuple[str, int | None]:
    """(retrying, seconds until the retry) while attempts are left, else (failed, None). The schedule
    restarts at each requeue: ``attempt_base`` attempts came before this round."""
    if attempt < max_attempts:
        intervals = settings.retry_intervals
        index = min(max(attempt - attempt_base - 1, 0), len(intervals) - 1)
        return status.RETRYING, intervals[index] if intervals else 0
    return status.FAILED, None


def parse_start(reply: Any, started_at: str, token: str) -> Started:
    outcome, current, attempt, max_attempts, base, requeued, *began = reply
    text = [v.decode() if isinstance(v, bytes) else v for v in (outcome, current, *began)]
    workflow, items = (text[2], text[3]) if began else ("", "")
    return Started(text[0], text[1], int(attempt), int(max_attempts), int(base), bool(int(requeued)),
                   started_at, token, workflow, items)


def _event(kind: str, execution_id: str, timestamp: str, **fields: Any) -> str:
    message = {"type": kind, "executionId": execution_id, "timestamp": timestamp}
    message.update({k: v for k, v in fields.items() if v is not None})
    return json.dumps(message, separators=(",", ":"), default=str)
