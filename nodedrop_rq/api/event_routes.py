"""``GET /api/executions/{id}/events``: an execution's events as Server-Sent Events.

The stream begins with the current state (``event: state``), then every event of the execution's event
log (:mod:`nodedrop_rq.event_log`: the events published on ``execution-events``, each with its log id as
the SSE ``id:``), and ends after the terminal one. A client that reconnects with ``Last-Event-ID`` reads
on after that event, missing none and seeing none twice; if the log no longer holds what followed (it is
kept ``keys.EVENT_LOG_TERMINAL_TTL`` s after the end, and capped), it gets the state again. A client
that reconnects after it saw the end gets ``204`` (which tells an ``EventSource`` to stop).

Streams are served on the event loop with an asyncio Redis client: a waiting stream holds one Redis
connection and no thread, so it never delays other requests. Each stream is closed after
``NODEDROP_SSE_MAX_SECONDS`` (the client reconnects), sends a comment every ``NODEDROP_SSE_HEARTBEAT``
seconds (proxies keep it open; a gone client is noticed), and at most ``NODEDROP_SSE_MAX_CONNECTIONS`` are
open at once per process (``503`` beyond).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Response
from fastapi.responses import StreamingResponse
from redis import asyncio as aioredis
from redis.exceptions import RedisError

from nodedrop_rq import event_log
from nodedrop_rq.api.answers import state_answer
from nodedrop_rq.api.errors import ApiError
from nodedrop_rq.api.models import ErrorResponse
from nodedrop_rq.errors import ExecutionNotFound
from nodedrop_rq.settings import Settings

log = logging.getLogger(__name__)

# Milliseconds an EventSource waits before it reconnects (the SSE `retry:` field).
RECONNECT_MS = 1000

EVENT_TYPES = ("state", "started", "node-started", "node-completed", "node-failed", "node-skipped", "retrying",
               "completed", "failed", "cancelled")

STREAM_DESCRIPTION = (
    "`text/event-stream`. First `event: state` with the execution's state (as `GET /api/executions/{id}`), "
    "then one message per event: `event:` its type (" + ", ".join(f"`{t}`" for t in EVENT_TYPES[1:]) + "), "
    "`data:` the JSON event as published on `execution-events`, `id:` its id. The stream ends after "
    "`completed`, `failed` or `cancelled` (or a terminal state). Comments (`: heartbeat`) keep it open. "
    "Reconnect with `Last-Event-ID` to read on without missing or repeating an event.")


def sse(event_id: str | None, event: str, data: str) -> str:
    lines = [f"id: {event_id}"] if event_id is not None else []
    lines.append(f"event: {event}")
    lines += [f"data: {line}" for line in data.split("\n")]
    return "\n".join(lines) + "\n\n"


def build_event_router(client: aioredis.Redis, settings: Settings, dependencies: list[Any],
                       responses: dict[int | str, dict[str, Any]]) -> APIRouter:
    router = APIRouter(prefix="/api/executions", tags=["executions"], dependencies=dependencies,
                       responses=responses)
    open_streams = {"count": 0}

    @router.get(
        "/{execution_id}/events",
        summary="Follow an execution's events (Server-Sent Events)",
        response_class=StreamingResponse,
        responses={
            200: {"description": STREAM_DESCRIPTION,
                  "content": {"text/event-stream": {"schema": {"type": "string"}}}},
            204: {"description": "The client's Last-Event-ID is the end of the stream: nothing more will come"},
            404: {"model": ErrorResponse, "description": "Unknown id, or its state has expired"},
            503: {"model": ErrorResponse, "description": "Redis is unreachable, or NODEDROP_SSE_MAX_CONNECTIONS "
                                                         "streams are open"},
        },
    )
    async def follow(
        execution_id: str,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=100)] = None,
    ) -> Response:
        if open_streams["count"] >= settings.sse_max_connections:
            raise ApiError(503, "too many event streams",
                           f"{settings.sse_max_connections} are open (NODEDROP_SSE_MAX_CONNECTIONS)",
                           headers={"Retry-After": "5"})
        snapshot = await event_log.read_snapshot_async(client, execution_id)
        if snapshot.state is None or not snapshot.state.get("id"):
            raise ExecutionNotFound(execution_id)
        start = event_log.begin(snapshot, last_event_id)
        if start.done:
            return Response(status_code=204)
        open_streams["count"] += 1
        return StreamingResponse(
            _stream(client, settings, execution_id, snapshot, start, open_streams),
            media_type="text/event-stream",
            # No caching, and no buffering by nginx-style proxies: events must arrive as they happen.
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router


async def _stream(client: aioredis.Redis, settings: Settings, execution_id: str, snapshot: event_log.Snapshot,
                  start: event_log.Start, open_streams: dict[str, int]) -> AsyncIterator[str]:
    deadline = time.monotonic() + settings.sse_max_seconds
    try:
        yield f"retry: {RECONNECT_MS}\n\n"
        cursor = start.cursor
        if start.send_state:
            yield sse(start.cursor, "state", _state_json(snapshot))
            if snapshot.terminal:
                return
        while (left := deadline - time.monotonic()) > 0:
            events = await event_log.read_after_async(client, execution_id, cursor,
                                                      int(min(left, settings.sse_heartbeat) * 1000))
            for event in events:
                yield sse(event.id, event.type, event.data)
                cursor = event.id
                if event.terminal:
                    return
            if events:
                continue
            yield ": heartbeat\n\n"
            current = await event_log.read_snapshot_async(client, execution_id)
            if current.state is None:
                return  # expired meanwhile
            if current.terminal and (not current.log_exists or current.head == cursor):
                # Ended without a terminal event after the cursor (its log was removed): the state says how.
                yield sse(event_log.END_ID, "state", _state_json(current))
                return
    except RedisError as exc:
        # The client reconnects with its Last-Event-ID and reads on once Redis answers again.
        log.warning("event stream of %s ends: %s", execution_id, type(exc).__name__)
    finally:
        open_streams["count"] -= 1


def _state_json(snapshot: event_log.Snapshot) -> str:
    return json.dumps(state_answer(snapshot.state or {}), separators=(",", ":"), allow_nan=False)
