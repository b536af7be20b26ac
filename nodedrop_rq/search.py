"""Execution search: newest first, filtered by status, workflow id and creation time, cursor-paged.

Backed by sorted sets of execution ids scored by creation time (``keys.search_*``): one per status,
and one per workflow id and status. Each execution is in exactly one of each (two entries, one without a
workflow id). The submit adds an execution to its indexes in the same transaction that stores it; the
transition scripts move it between them in the same atomic step as its status changes
(``execution/scripts.py``), so a search by status never disagrees with the execution's state.

A query with a status reads one index; without one, it merges the six status indexes newest first. Its
cost is O(log N + page size) per index read, in the size N of that index, never a walk of the keyspace.
Index entries do not expire by themselves: each read first trims the entries older than
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
import math
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis import Redis
from redis.client import Pipeline

from nodedrop_rq import keys
from nodedrop_rq.execution import status as statuses
from nodedrop_rq.settings import Settings
from nodedrop_rq.state import decode_state, iso_epoch, stored_time

MAX_LIMIT = 1000
MAX_WORKFLOW_ID = 200
# Fields of each result (the full state, with node outputs, is at GET /api/executions/{id}).
SUMMARY_FIELDS = ("id", "status", "queue", "workflowName", "workflowId", "attempt", "maxAttempts", "createdAt",
                  "startedAt", "finishedAt", "nextRetryAt", "error")
_INT_FIELDS = ("attempt", "maxAttempts")
# What a summary reads of the state hash: the id is the key's, and an error may be stored in pieces
# (nodedrop_rq.state), up to 32 of them (2 KB; a longer one reads as none).
_STORED_SUMMARY_FIELDS = (*(name for name in SUMMARY_FIELDS if name != "id"), *(f"error#{n}" for n in range(1, 32)))


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
    pipe.hset(keys.execution(execution_id), "createdAt", stored_time(iso_epoch(created)))
    pipe.zadd(keys.search_status(statuses.QUEUED), {execution_id: created})
    if workflow_id:
        pipe.hset(keys.execution(execution_id), "workflowId", workflow_id)
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


def index_keys(status: str | None, workflow_id: str | None) -> list[str]:
    """The indexes whose merge is the answer: one with a status, the six of the statuses without."""
    if status is not None and status not in statuses.ALL:
        raise SearchInvalid("status", f"must be one of {', '.join(sorted(statuses.ALL))}")
    if workflow_id is not None and not 0 < len(workflow_id) <= MAX_WORKFLOW_ID:
        raise SearchInvalid("workflowId", f"must be 1 to {MAX_WORKFLOW_ID} characters")
    chosen = [status] if status else sorted(statuses.ALL)
    if workflow_id:
        return [keys.search_workflow_status(workflow_id, s) for s in chosen]
    return [keys.search_status(s) for s in chosen]


class _Run:
    """A reader of one index, newest first, from a position (``offset`` entries consumed)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.offset = 0
        self.buffer: deque[tuple[str, float]] = deque()
        self.exhausted = False

    @property
    def head(self) -> tuple[float, str]:
        execution_id, score = self.buffer[0]
        return score, execution_id


def search(connection: Redis, settings: Settings, *, status: str | None = None, workflow_id: str | None = None,
           since: datetime | None = None, until: datetime | None = None, limit: int = 50,
           cursor: str | None = None) -> Page:
    """Executions created in ``[since, until)`` matching the filters, newest first, ``limit`` per page."""
    if not 1 <= limit <= MAX_LIMIT:
        raise SearchInvalid("limit", f"must be 1 to {MAX_LIMIT}")
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and moment.tzinfo is None:
            raise SearchInvalid(name, f"needs a UTC offset ({TIME_HELP})")
    runs = [_Run(key) for key in index_keys(status, workflow_id)]
    after = Cursor.decode(cursor) if cursor else None
    upper = "+inf" if until is None else f"({until.timestamp()!r}"
    if after is not None and (until is None or after.score < until.timestamp()):
        upper = repr(after.score)  # inclusive: ties at the cursor's score are told apart by id below
    lower = "-inf" if since is None else repr(since.timestamp())
    with connection.pipeline(transaction=False) as pipe:
        for run in runs:
            pipe.zremrangebyscore(run.key, "-inf", f"({time.time() - retention(settings)!r}")
        pipe.execute()
    found: list[dict[str, Any]] = []
    seen: set[str] = set()
    last: Cursor | None = None
    more = False
    # One beyond the page tells whether there is a next; after a cursor, the range starts with it again.
    batch = limit + 1 + (after is not None)
    while not more:
        _refill(connection, [r for r in runs if not r.buffer and not r.exhausted], upper, lower, batch, after)
        picked = _merged(runs, limit + 1 - len(found))
        if not picked:
            if any(not r.buffer and not r.exhausted for r in runs):
                batch = max(batch, 16)
                continue  # a run read only entries the cursor skips: read on
            break
        summaries = _summaries(connection, [execution_id for _, execution_id, _ in picked])
        dead: dict[_Run, list[str]] = {}
        for (run, execution_id, score), summary in zip(picked, summaries, strict=True):
            if summary is None:
                dead.setdefault(run, []).append(execution_id)
            elif execution_id not in seen and (status is None or summary["status"] == status) and \
                    (workflow_id is None or summary.get("workflowId") == workflow_id):
                if len(found) == limit:
                    more = True  # one beyond the page: there is a next page
                    break
                seen.add(execution_id)
                found.append(summary)
                last = Cursor(score, execution_id)
        if dead:
            with connection.pipeline(transaction=False) as pipe:
                for run, gone in dead.items():
                    pipe.zrem(run.key, *gone)
                    run.offset -= len(gone)
                pipe.execute()
        batch = max(limit + 1 - len(found), 16)
    return Page(found, last.encode() if more and last is not None else None)


def _refill(connection: Redis, runs: list[_Run], upper: str, lower: str, batch: int, after: Cursor | None) -> None:
    if not runs:
        return
    # One MULTI: the indexes as of one moment (an execution moving between them is seen in one only).
    with connection.pipeline(transaction=True) as pipe:
        for run in runs:
            pipe.zrevrangebyscore(run.key, upper, lower, start=run.offset, num=batch, withscores=True)
        replies = pipe.execute()
    for run, entries in zip(runs, replies, strict=True):
        run.offset += len(entries)
        run.exhausted = len(entries) < batch
        for member, score in entries:
            execution_id = _text(member)
            # In reverse order, equal scores come in descending id order: skip up to and with the cursor.
            if after is None or not (score == after.score and execution_id >= after.execution_id):
                run.buffer.append((execution_id, score))


def _merged(runs: list[_Run], wanted: int) -> list[tuple[_Run, str, float]]:
    """Up to ``wanted`` entries in newest-first order across ``runs``, as far as their buffers decide it
    (a run with an empty buffer that has more to read stops the merge until it is refilled)."""
    picked: list[tuple[_Run, str, float]] = []
    while len(picked) < wanted and not any(not r.buffer and not r.exhausted for r in runs):
        ready = [r for r in runs if r.buffer]
        if not ready:
            break
        best = max(ready, key=lambda r: r.head)
        execution_id, score = best.buffer.popleft()
        picked.append((best, execution_id, score))
    return picked


def _summaries(connection: Redis, execution_ids: list[str]) -> list[dict[str, Any] | None]:
    if not execution_ids:
        return []
    with connection.pipeline(transaction=False) as pipe:
        for execution_id in execution_ids:
            pipe.hmget(keys.execution(execution_id), *_STORED_SUMMARY_FIELDS)
        rows = pipe.execute()
    return [_summary(row, execution_id) for row, execution_id in zip(rows, execution_ids, strict=True)]


def _summary(row: list[bytes | None], execution_id: str) -> dict[str, Any] | None:
    stored = {name: value for name, value in zip(_STORED_SUMMARY_FIELDS, row, strict=True) if value is not None}
    if not stored.get("status"):
        return None  # expired (or a leftover flag of an expired state)
    try:
        # Stored compactly (times as Unix ms, the error in pieces): read back as the API shows them.
        state = decode_state(stored, execution_id)
    except ValueError:
        return None  # not a state this version can read
    out: dict[str, Any] = {name: state.get(name) for name in SUMMARY_FIELDS}
    for name in _INT_FIELDS:
        out[name] = int(out[name] or 0)
    if not isinstance(out["error"], dict):
        out["error"] = None
    return out


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
