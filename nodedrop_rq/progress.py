"""Node progress of one attempt: the `nodes` record, `currentNode` and node events, written in batches.

Each node start and end updates the record in memory. One writer thread per process writes what is new
(one pipeline per execution: the state fields, every pending event on the pub/sub channel, and a read of
the cancel flag) at most every ``FLUSH_INTERVAL`` seconds, and reads the cancel flag of executions whose
node runs long without events. A workflow that ends sooner costs no round trip here: its remaining events
are handed to the final transition, which writes them into RQ's own pipeline.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from nodedrop_rq import keys, state
from nodedrop_rq.errors import ExecutionCancelled
from nodedrop_rq.execution import scripts
from nodedrop_rq.workflow import NodeEvent

FLUSH_INTERVAL = 0.02
# While a node runs without events, how often the cancel flag is read.
CANCEL_POLL_INTERVAL = 0.5

_STATUS = {"node-started": "running", "node-completed": "succeeded", "node-failed": "failed",
           "node-skipped": "skipped"}


class NodeProgress:
    def __init__(self, connection: Redis, execution_id: str, attempt: int, token: str,
                 started_at: str | None = None) -> None:
        self.connection = connection
        self.started_at = started_at
        self.execution_id = execution_id
        self.attempt = attempt
        self.token = token
        self.nodes: dict[str, dict[str, Any]] = {}
        self.current = ""
        self.dirty_since: float | None = None
        self.checked_at = time.monotonic()
        self._pending: list[str] = []
        self._lock = threading.Lock()
        # Held for a whole flush, so finish() never overtakes events that are on their way to Redis.
        self._flushing = threading.Lock()
        self._cancelled = threading.Event()
        self._writer = _writer()
        self._writer.watch(self)

    def record(self, event: NodeEvent) -> None:
        """The engine's event callback. Once a cancel was seen, refuses to start another node."""
        if event.kind == "node-started" and self._cancelled.is_set():
            raise ExecutionCancelled(self.execution_id)
        with self._lock:
            node = self.nodes.setdefault(event.node_id, {"name": event.node_name, "type": event.node_type})
            node["status"] = _STATUS[event.kind]
            if event.kind == "node-started":
                node["startedAt"] = state.iso_epoch(event.at)
                self.current = event.node_id
            else:
                node.update(finishedAt=state.iso_epoch(event.at), durationMs=event.duration_ms,
                            outputCount=event.output_count, error=event.error)
                self.current = ""
            self._pending.append(self._event_message(event))
            first = self.dirty_since is None
            if first:
                self.dirty_since = time.monotonic()
        if first:
            self._writer.poke()

    def finish(self) -> list[str]:
        """Stop writing and return the events not published yet (JSON messages)."""
        self._writer.unwatch(self)
        with self._flushing, self._lock:
            pending, self._pending = self._pending, []
            self.dirty_since = None
        return pending

    def flush(self) -> None:
        with self._flushing:
            with self._lock:
                if self.dirty_since is None:
                    return
                pending, self._pending = self._pending, []
                fields = {"nodes": state.dumps_nodes(self.nodes, self.started_at), "currentNode": self.current}
                self.dirty_since = None
            key = keys.execution(self.execution_id)
            try:
                # Fenced on the attempt's token, as every write of the execution is: a zombie attempt (its
                # worker declared dead, a newer attempt running) changes nothing and publishes nothing.
                cancel = self.connection.eval(scripts.PROGRESS, 1, key, self.token, fields["nodes"],
                                              fields["currentNode"], keys.EVENTS_CHANNEL, *pending)
            except RedisError:
                with self._lock:  # kept for the next flush or the final transition
                    self._pending[:0] = pending
                    self.dirty_since = self.dirty_since or time.monotonic()
                return
        self._note_cancel(cancel)

    def poll_cancel(self) -> None:
        try:
            self._note_cancel(self.connection.hget(keys.execution(self.execution_id), "cancelRequested"))
        except RedisError:
            pass

    def _note_cancel(self, flag: bytes | str | None) -> None:
        self.checked_at = time.monotonic()
        if flag in (b"1", "1"):
            self._cancelled.set()

    def _event_message(self, event: NodeEvent) -> str:
        message = {"type": event.kind, "executionId": self.execution_id, "timestamp": state.iso_epoch(event.at),
                   "attempt": self.attempt, "nodeId": event.node_id, "nodeName": event.node_name,
                   "nodeType": event.node_type, "durationMs": event.duration_ms,
                   "outputCount": event.output_count, "error": event.error}
        return json.dumps({k: v for k, v in message.items() if v is not None}, separators=(",", ":"))


class _Writer:
    """The one thread per process that flushes every running execution's progress."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._cond = threading.Condition()
        self._active: set[NodeProgress] = set()
        threading.Thread(target=self._loop, daemon=True, name="nodedrop-progress").start()

    def watch(self, progress: NodeProgress) -> None:
        with self._cond:
            self._active.add(progress)

    def unwatch(self, progress: NodeProgress) -> None:
        with self._cond:
            self._active.discard(progress)

    def poke(self) -> None:
        with self._cond:
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait(FLUSH_INTERVAL if self._active else None)
                active = list(self._active)
            now = time.monotonic()
            for progress in active:
                if progress.dirty_since is not None:
                    # Gather what arrives within one interval into a single round trip.
                    delay = FLUSH_INTERVAL - (now - progress.dirty_since)
                    if delay > 0:
                        time.sleep(delay)
                    progress.flush()
                elif now - progress.checked_at >= CANCEL_POLL_INTERVAL:
                    progress.poll_cancel()  # a long node: no events, but a cancel must still be noticed


_the_writer: _Writer | None = None
_writer_lock = threading.Lock()


def _writer() -> _Writer:
    global _the_writer
    with _writer_lock:
        # Threads do not survive fork: a forked work horse starts its own writer.
        if _the_writer is None or _the_writer.pid != os.getpid():
            _the_writer = _Writer()
        return _the_writer
