"""nodedrop-rq: NodeDrop-compatible workflow executions on an RQ worker pool.

``nodedrop_rq.submit_execution(workflow, input=None, idempotency_key=None) -> execution id``
"""

from __future__ import annotations

from typing import Any

__all__ = ["submit_execution"]


def __getattr__(name: str) -> Any:
    # Lazy, so that the pure engine (nodedrop_rq.workflow) can be imported without RQ and Redis.
    if name == "submit_execution":
        from nodedrop_rq.submit import submit_execution

        return submit_execution
    raise AttributeError(f"module 'nodedrop_rq' has no attribute {name!r}")
