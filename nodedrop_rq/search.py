"""Execution search: newest first, filtered by status, workflow id and creation time, cursor-paged.

Backed by sorted sets of execution ids scored by creation time (``keys.search_*``): one for all
executions, one per status, one per workflow id and one per workflow id and status. The submit adds an
execution to its indexes in the same transaction that stores it; the transition scripts move it between
status indexes in the same atomic step as its status changes (``execution/scripts.py``), so a search by
status never disagrees with the execution's state.

A query reads one index, so its cost is O(log N + page size) in the size N of that index, never a walk
of the keyspace. Index entries do not expire by themselves: each read first trims the entries older than
the longest an execution can live (:func:`retention`, one ZREMRANGEBYSCORE), and removes the entries it
meets whose state has expired earlier (a succeeded execution lives ``EXECUTION_COMPLETION_TTL``): each
such entry costs one read once, not at every query.

The cursor is opaque to clients: the (score, id) of the last execution of the page. The next page
starts strictly after it, so executions submitted meanwhile (newer, so before the cursor) neither shift
nor repeat a page.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis import Redis
from redis.client import Pipeline

from nodedrop_rq import keys
from nodedrop_rq.execution import status as statuses
from nodedrop_rq.settings import Settings
from nodedrop_rq.state import iso_epoch

MAX_LIMIT = 1000
MAX_WORKFLOW_ID = 200
# Fields of each result (the full state, with node outputs, is at GET /api/executions/{id}).
SUMMARY_FIELDS = ("id", "status", "queue", "workflowName", "workflowId", "attempt", "maxAttempts", "createdAt",
                  "startedAt", "finishedAt", "nextRetryAt", "error")
_INT_FIELDS = ("attempt", "maxAttempts")


class SearchInvalid(ValueError):
    """A filter or cursor that cannot be used; the message says which and why."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


@dataclass(frozen=True)
class Cursor:
    score: float
    execution_id: str

    def encode(self) -> str:
        raw = f"{self.score!r}|{self.execution_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            score_text, _, execution_id = raw.partition("|")
            score = float(score_text)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise SearchInvalid("cursor", "not a cursor returned by this API") from None
        if not execution_id or not math.isfinite(score):
            raise SearchInvalid("cursor", "not a cursor returned by this API")
        return cls(score, execution_id)


@dataclass(frozen=True)
class Page:
    executions: list[dict[str, Any]]
    next_cursor: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"executions": self.executions, "nextCursor": self.next_cursor}


def retention(settings: Settings) -> int:
    """Seconds after its creation beyond which no execution's state can still exist in practice: the
    longest it can wait active (each transition renews ``state_ttl``) plus the longest it stays once
    finished. An execution requeued or retried for longer drops out of search (not out of Redis)."""
    return settings.state_ttl + max(settings.completion_ttl, settings.failure_ttl)


def index_new(pipe: Pipeline, execution_id: str, workflow_id: str | None, created: float) -> None:
    """Add a submitted (``queued``) execution to its indexes, inside the submit's transaction; also
    records ``workflowId`` on its state (the transition scripts read it there), and ``createdAt`` from
    the same clock reading as the index score, so ``since``/``until`` agree with it to the millisecond."""
    pipe.hset(keys.execution(execution_id), "createdAt", iso_epoch(created))
    pipe.zadd(keys.search_all(), {execution_id: created})
    pipe.zadd(keys.search_status(statuses.QUEUED), {execution_id: created})
    if workflow_id:
        pipe.hset(keys.execution(execution_id), "workflowId", workflow_id)
        pipe.zadd(keys.search_workflow(workflow_id), {execution_id: created})
        pipe.zadd(keys.search_workflow_status(workflow_id, statuses.QUEUED), {execution_id: created})


def workflow_id_of(document: dict[str, Any]) -> str | None:
    """The id a workflow document carries (NodeDrop's exports have one), when it is a usable one."""
    value = document.get("id")
    if isinstance(value, (str, int)) and not isinstance(value, bool) and 0 < len(str(value)) <= MAX_WORKFLOW_ID:
        return str(value)
    return None


TIME_HELP = "ISO 8601 time with a UTC offset, e.g. 2025-01-31T12:00:00Z"


def parse_moment(parameter: str, text: str | None) -> datetime | None:
    """``since``/``until`` as given by a client; :class:`SearchInvalid` naming ``parameter`` if unusable."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise SearchInvalid(parameter, f"not an ISO 8601 time ({TIME_HELP})") from None
    if moment.tzinfo is None:
        raise SearchInvalid(parameter, f"needs a UTC offset ({TIME_HELP})")
    try:
        moment.timestamp()
    except (OverflowError, ValueError, OSError):
        raise SearchInvalid(parameter, "out of range") from None
    return moment


def index_key(status: str | None, workflow_id: str | None) -> str:
    if status is not None and status not in statuses.ALL:
        raise SearchInvalid("status", f"must be one of {', '.join(sorted(statuses.ALL))}")
    if workflow_id is not None and not 0 < len(workflow_id) <= MAX_WORKFLOW_ID:
        raise SearchInvalid("workflowId", f"must be 1 to {MAX_WORKFLOW_ID} characters")
    if status and workflow_id:
        return keys.search_workflow_status(workflow_id, status)
    if status:
        return keys.search_status(status)
    if workflow_id:
        return keys.search_workflow(workflow_id)
    return keys.search_all()


def search(connection: Redis, settings: Settings, *, status: str | None = None, workflow_id: str | None = None,
           since: datetime | None = None, until: datetime | None = None, limit: int = 50,
           cursor: str | None = None) -> Page:
    """Executions created in ``[since, until)`` matching the filters, newest first, ``limit`` per page."""
    if not 1 <= limit <= MAX_LIMIT:
        raise SearchInvalid("limit", f"must be 1 to {MAX_LIMIT}")
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and moment.tzinfo is None:
            raise SearchInvalid(name, "needs a UTC offset, e.g. 2025-01-31T12:00:00Z")
    key = index_key(status, workflow_id)
    after = Cursor.decode(cursor) if cursor else None
    upper = "+inf" if until is None else f"({until.timestamp()!r}"
    if after is not None and (until is None or after.score < until.timestamp()):
        upper = repr(after.score)  # inclusive: ties at the cursor's score are told apart by id below
    lower = "-inf" if since is None else repr(since.timestamp())
    connection.zremrangebyscore(key, "-inf", f"({time.time() - retention(settings)!r}")
    found: list[dict[str, Any]] = []
    last: Cursor | None = None
    more = False
    # One beyond the page tells whether there is a next; after a cursor, the range starts with it again.
    offset, batch = 0, limit + 1 + (after is not None)
    while not more:
        entries = connection.zrevrangebyscore(key, upper, lower, start=offset, num=batch, withscores=True)
        candidates = [(_text(member), score) for member, score in entries]
        if after is not None:
            # In reverse order, equal scores come in descending id order: skip up to and with the cursor.
            candidates = [(i, s) for i, s in candidates if not (s == after.score and i >= after.execution_id)]
        dead = []
        for (execution_id, score), summary in zip(candidates, _summaries(connection, [i for i, _ in candidates]),
                                                  strict=True):
            if summary is None:
                dead.append(execution_id)
            elif (status is None or summary["status"] == status) and \
                    (workflow_id is None or summary.get("workflowId") == workflow_id):
                if len(found) == limit:
                    more = True  # one beyond the page: there is a next page
                    break
                found.append(summary)
                last = Cursor(score, execution_id)
        if dead:
            connection.zrem(key, *dead)
        offset += len(entries) - len(dead)
        if len(entries) < batch:
            break
        batch = max(limit + 1 - len(found), 16)
    return Page(found, last.encode() if more and last is not None else None)


def _summaries(connection: Redis, execution_ids: list[str]) -> list[dict[str, Any] | None]:
    if not execution_ids:
        return []
    with connection.pipeline(transaction=False) as pipe:
        for execution_id in execution_ids:
            pipe.hmget(keys.execution(execution_id), *SUMMARY_FIELDS)
        rows = pipe.execute()
    return [_summary(row) for row in rows]


def _summary(row: list[bytes | None]) -> dict[str, Any] | None:
    values = dict(zip(SUMMARY_FIELDS, (_text(v) if v is not None else None for v in row), strict=True))
    if not values["id"] or not values["status"]:
        return None  # expired (or a leftover flag of an expired state)
    out: dict[str, Any] = {k: (v or None) for k, v in values.items()}
    for name in _INT_FIELDS:
        out[name] = int(values[name] or 0)
    out["error"] = _json_or_none(values["error"])
    return out


def _json_or_none(text: str | None) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
