"""What a run reports: events as nodes start and end, and the final result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class NodeEvent:
    """Passed to ``run_workflow``'s ``on_event`` as each node starts and ends (or is skipped).

    ``kind`` is ``node-started``, ``node-completed``, ``node-failed`` or ``node-skipped``.
    """

    kind: str
    node_id: str
    node_name: str
    node_type: str
    at: float
    duration_ms: float | None = None
    output_count: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "nodeId": self.node_id,
            "nodeName": self.node_name,
            "nodeType": self.node_type,
            "at": self.at,
            "durationMs": self.duration_ms,
            "outputCount": self.output_count,
            "error": self.error,
        }


@dataclass
class NodeRun:
    """One node's part in a run. ``error`` is also set when ``continueOnFail`` turned a failure into
    output (the status is then ``succeeded``); ``skip_reason`` says why a node was skipped."""

    node_id: str
    name: str
    type: str
    status: str = "pending"  # pending | running | succeeded | failed | skipped
    started_at: float | None = None
    finished_at: float | None = None
    duration_ms: float | None = None
    input_count: int = 0
    output_count: int = 0
    output: dict[str, list[dict]] = field(default_factory=dict)
    error: str | None = None
    skip_reason: str | None = None

    def items(self) -> list[dict]:
        """All output items, output by output (each item once)."""
        seen: set[int] = set()
        items = []
        for output_items in self.output.values():
            for item in output_items:
                if id(item) not in seen:
                    seen.add(id(item))
                    items.append(item)
        return items

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodeId": self.node_id,
            "name": self.name,
            "type": self.type,
            "status": self.status,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "durationMs": self.duration_ms,
            "inputCount": self.input_count,
            "outputCount": self.output_count,
            "output": self.output,
            "error": self.error,
            "skipReason": self.skip_reason,
        }


@dataclass
class NodeError:
    node_id: str
    node_type: str
    node_name: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"nodeId": self.node_id, "nodeType": self.node_type, "nodeName": self.node_name, "message": self.message}

    def __str__(self) -> str:
        return f"node '{self.node_name}' ({self.node_type}) failed: {self.message}"


@dataclass
class RunResult:
    """The outcome of :func:`run_workflow`.

    ``nodes`` is in execution order (skipped nodes where the engine reached them). ``output`` is the
    run's result: the items of the leaf nodes (nodes without outgoing connections) that succeeded,
    concatenated in execution order; when no leaf ran (say every branch after an ifElse was skipped),
    the items of the last node that succeeded. A failed run has no output.
    """

    status: str  # succeeded | failed
    nodes: dict[str, NodeRun]
    output: list[dict]
    error: NodeError | None
    started_at: float
    finished_at: float

    @property
    def duration_ms(self) -> float:
        return round((self.finished_at - self.started_at) * 1000, 3)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "durationMs": self.duration_ms,
            "error": self.error.to_dict() if self.error else None,
            "nodes": [run.to_dict() for run in self.nodes.values()],
            "output": self.output,
        }
