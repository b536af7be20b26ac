"""Exceptions that cross module boundaries."""

from __future__ import annotations

from typing import Any


class ExecutionFailed(Exception):
    """A node failed; carries what the failure transition writes: the node error, every node's record,
    the attempt, and the node events not yet published."""

    def __init__(self, error: dict[str, Any], nodes: dict[str, Any], attempt: int, started_at: str,
                 worker: str | None = None, events: list[str] | None = None) -> None:
        name = error.get("nodeName") or error.get("nodeId")
        super().__init__(f"node {name!r} ({error.get('nodeType')}) failed: {error.get('message')}")
        self.error = error
        self.nodes = nodes
        self.attempt = attempt
        self.started_at = started_at
        self.worker = worker
        self.events = events or []


class ExecutionCancelled(Exception):
    """Raised at a node boundary when a cancel was requested for the running execution."""


class ExecutionNotFound(LookupError):
    def __init__(self, execution_id: str) -> None:
        super().__init__(f"no execution {execution_id!r} (unknown id, or its state has expired)")
        self.execution_id = execution_id


class InvalidOperation(Exception):
    """The execution is not in a state that allows the requested operation."""
