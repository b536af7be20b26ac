"""Exceptions that cross module boundaries."""

from __future__ import annotations

from typing import Any


class ExecutionFailed(Exception):
    """A node failed, and the attempt's failure transition has been applied (RQ only has to retry or
    fail the job as that transition decided)."""

    def __init__(self, error: dict[str, Any], attempt: int) -> None:
        name = error.get("nodeName") or error.get("nodeId")
        super().__init__(f"node {name!r} ({error.get('nodeType')}) failed: {error.get('message')}")
        self.error = error
        self.attempt = attempt


class ExecutionCancelled(Exception):
    """Raised at a node boundary when a cancel was requested for the running execution."""


class ExecutionNotFound(LookupError):
    def __init__(self, execution_id: str) -> None:
        super().__init__(f"no execution {execution_id!r} (unknown id, or its state has expired)")
        self.execution_id = execution_id


class InvalidOperation(Exception):
    """The execution is not in a state that allows the requested operation."""


class SubmitConflict(Exception):
    """A submit kept meeting concurrent changes to the same execution id or idempotency key."""


class ListenFailed(OSError):
    """A server could not listen on its address (port in use, or not allowed); the message says which."""


class RedisRefused(Exception):
    """Redis answered but refused the client: wrong password or user, or a database index it lacks.
    Retrying does not help; REDIS_URL must change."""
