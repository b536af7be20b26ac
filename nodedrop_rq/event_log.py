"""Reading an execution's event log (``keys.execution_events``): what a follower of one execution reads.

The transition and progress scripts append every event they publish on ``execution-events`` to the
execution's Redis stream in the same atomic step (``execution/scripts.py``), so the log holds exactly
the published events, in order, and a stream id names each one. A follower starts with the current
state and the log position it corresponds to (read in one MULTI, so no event falls between them), then
reads the log after that position with XREAD BLOCK, and stops at a terminal event (``completed``,
``failed``, ``cancelled``). A follower that reconnects gives the id of the last event it saw and reads on
from there, as long as the log still holds everything after it; otherwise it gets the state again.

Ids, as SSE ids and ``Last-Event-ID``: a stream id (``1712345678901-0``) for an event and for a state
(the log position it corresponds to, ``0-0`` before the first event), and ``end`` for a state that was
already terminal. They are opaque to clients. Used by ``GET /api/executions/{id}/events`` (async
client) and ``nodedrop-rq submit --wait`` (sync client); the decisions are the pure functions below.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis import asyncio as aioredis
from redis.exceptions import ResponseError

from nodedrop_rq import keys
from nodedrop_rq.execution.status import TERMINAL
from nodedrop_rq.state import decode_state

TERMINAL_EVENTS = frozenset({"completed", "failed", "cancelled"})
START_ID = "0-0"
END_ID = "end"
READ_COUNT = 100
_STREAM_ID = re.compile(r"\d{1,20}-\d{1,20}")


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    data: str  # the published JSON message

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL_EVENTS


@dataclass(frozen=True)
class Snapshot:
    """The execution's state and its log's position, read together."""

    state: dict[str, Any] | None  # None: unknown, or expired
    head: str  # id of the last event written (START_ID when there is no log)
    log_exists: bool
    deleted_up_to: str  # the newest id trimmed from the log (START_ID when nothing was)

    @property
    def terminal(self) -> bool:
        return self.state is not None and self.state.get("status") in TERMINAL


@dataclass(frozen=True)
class Start:
    """How a follower begins: ``send_state`` (then read after ``cursor``), or ``done`` (it has seen the end)."""

    send_state: bool
    cursor: str  # the state's SSE id when send_state, else the id to read after
    done: bool = False


def begin(snapshot: Snapshot, last_event_id: str | None) -> Start:
    """Where a follower that last saw ``last_event_id`` (None: a new follower) begins."""
    state_id = END_ID if snapshot.terminal else snapshot.head
    if last_event_id is None:
        return Start(True, state_id)
    if last_event_id == END_ID:
        return Start(False, state_id, done=True) if snapshot.terminal else Start(True, state_id)
    if not _STREAM_ID.fullmatch(last_event_id):
        return Start(True, state_id)
    if snapshot.log_exists:
        resumable = (_order(last_event_id) <= _order(snapshot.head)
                     and _order(snapshot.deleted_up_to) <= _order(last_event_id))
        if resumable:
            # A terminal execution whose log holds nothing after the id: the follower saw the end.
            done = snapshot.terminal and _order(snapshot.head) <= _order(last_event_id)
            return Start(False, last_event_id, done=done)
        return Start(True, state_id)
    if last_event_id == START_ID and not snapshot.terminal:
        return Start(False, START_ID)  # nothing happened yet
    return Start(True, state_id)


def parse_entries(reply: Any) -> list[Event]:
    """Events of an XREAD reply of one stream (``[[stream, [(id, fields), ...]]]``)."""
    if not reply:
        return []
    events = []
    for entry_id, fields in reply[0][1]:
        data = _text(fields.get(b"e", fields.get("e", b"{}")))
        events.append(Event(_text(entry_id), _event_type(data), data))
    return events


def _event_type(data: str) -> str:
    try:
        found = json.loads(data).get("type")
    except (ValueError, AttributeError):
        return "unknown"
    return found if isinstance(found, str) else "unknown"


def _order(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _snapshot(replies: list[Any], execution_id: str) -> Snapshot:
    raw, info = replies
    state = decode_state(raw, execution_id) if raw else None
    if state is not None and not state.get("status"):
        state = None  # a leftover flag of an expired state
    if isinstance(info, ResponseError) or not info:
        return Snapshot(state, START_ID, False, START_ID)
    return Snapshot(state, _text(info.get("last-generated-id") or START_ID), True,
                    _text(info.get("max-deleted-entry-id") or START_ID))


def read_snapshot(connection: Redis, execution_id: str) -> Snapshot:
    with connection.pipeline(transaction=True) as pipe:
        pipe.hgetall(keys.execution(execution_id))
        pipe.xinfo_stream(keys.execution_events(execution_id))
        return _snapshot(pipe.execute(raise_on_error=False), execution_id)


def read_after(connection: Redis, execution_id: str, cursor: str, block_ms: int) -> list[Event]:
    """Events after ``cursor``, waiting up to ``block_ms`` for the first one."""
    return parse_entries(connection.xread({keys.execution_events(execution_id): cursor}, count=READ_COUNT,
                                          block=max(block_ms, 1)))


async def read_snapshot_async(connection: aioredis.Redis, execution_id: str) -> Snapshot:
    async with connection.pipeline(transaction=True) as pipe:
        pipe.hgetall(keys.execution(execution_id))
        pipe.xinfo_stream(keys.execution_events(execution_id))
        return _snapshot(await pipe.execute(raise_on_error=False), execution_id)


async def read_after_async(connection: aioredis.Redis, execution_id: str, cursor: str,
                           block_ms: int) -> list[Event]:
    return parse_entries(await connection.xread({keys.execution_events(execution_id): cursor},
                                                count=READ_COUNT, block=max(block_ms, 1)))
