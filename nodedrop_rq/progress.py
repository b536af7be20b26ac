"""Node progress of one attempt: the `nodes` record, `currentNode` and node events, written in batches.

Each node start and end updates the record in memory. A background thread writes what is new (one
pipeline: the state fields, every pending event on the pub/sub channel, and a read of the cancel flag)
at most every ``FLUSH_INTERVAL`` seconds. A workflow that ends sooner costs no round trip here: its
remaining events are handed to the final transition, which writes them into RQ's own pipeline.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from nodedrop_rq import keys, state
from nodedrop_rq.errors import ExecutionCancelled
from nodedrop_rq.workflow import NodeEvent

FLUSH_INTERVAL = 0.02
# While a node runs without events, how often the cancel flag is read.
CANCEL_POLL_INTERVAL = 0.5

_STATUS = {"node-started": "running", "node-completed": "succeeded", "node-failed": "failed",
           "node-skipped": "skipped"}


class NodeProgress:
    def __init__(self, connection: Redis, execution_id: str, attempt: int) -> None:
        self.connection = connection
        self.execution_id = execution_id
        self.attempt = attempt
        self.nodes: dict[str, dict[str, Any]] = {}
        self.current = ""
        self._pending: list[str] = []
        self._dirty = False
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._cancelled = threading.Event()
        self._thread: threading.Thread | None = None

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
            self._dirty = True
        if self._thread is None:
            self._thread = threading.Thread(target=self._flush_loop, daemon=True, name="nodedrop-progress")
            self._thread.start()
        self._wake.set()

    def finish(self) -> list[str]:
        """Stop the writer and return the events it has not published yet (JSON messages)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            pending, self._pending = self._pending, []
        return pending

    def _flush_loop(self) -> None:
        while not self._stopping.is_set():
            if not self._wake.wait(CANCEL_POLL_INTERVAL):
                self._poll_cancel()  # a long node: no events, but a cancel must still be noticed
                continue
            # Gather what arrives within one interval into a single round trip.
            if self._stopping.wait(FLUSH_INTERVAL):
                return
            self._wake.clear()
            try:
                self._flush()
            except RedisError:
                continue  # kept pending; the next flush or the final transition writes it

    def _poll_cancel(self) -> None:
        try:
            if self.connection.hget(keys.execution(self.execution_id), "cancelRequested") in (b"1", "1"):
                self._cancelled.set()
        except RedisError:
            pass

    def _flush(self) -> None:
        with self._lock:
            if not self._dirty:
                return
            pending, self._pending = self._pending, []
            fields = {"nodes": state.dumps(self.nodes), "currentNode": self.current}
            self._dirty = False
        key = keys.execution(self.execution_id)
        with self.connection.pipeline(transaction=False) as pipe:
            pipe.hset(key, mapping=fields)
            for message in pending:
                pipe.publish(keys.EVENTS_CHANNEL, message)
            pipe.hget(key, "cancelRequested")
            try:
                cancel = pipe.execute()[-1]
            except RedisError:
                with self._lock:
                    self._pending[:0] = pending
                    self._dirty = True
                raise
        if cancel in (b"1", "1"):
            self._cancelled.set()

    def _event_message(self, event: NodeEvent) -> str:
        message = {"type": event.kind, "executionId": self.execution_id, "timestamp": state.iso_epoch(event.at),
                   "attempt": self.attempt, "nodeId": event.node_id, "nodeName": event.node_name,
                   "nodeType": event.node_type, "durationMs": event.duration_ms,
                   "outputCount": event.output_count, "error": event.error}
        return json.dumps({k: v for k, v in message.items() if v is not None}, separators=(",", ":"))
