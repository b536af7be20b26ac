"""Validation problems: every problem of a document is collected and reported at once."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Problem:
    """One thing wrong with a workflow document.

    ``path`` points into the submitted document, e.g. ``nodes[2].parameters.values[0].keyValue.key``
    (prefixed with ``workflow.`` when the document was an export envelope).
    """

    path: str
    message: str
    node_id: str | None = None

    def to_dict(self) -> dict:
        return {"path": self.path, "message": self.message, "nodeId": self.node_id}

    def __str__(self) -> str:
        return f"{self.path or '(document)'}: {self.message}"


class WorkflowInvalid(ValueError):
    """The document (or execution input) cannot run; ``problems`` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def to_dict(self) -> dict:
        return {"error": "workflow invalid", "problems": [p.to_dict() for p in self.problems]}


def join_path(base: str, key: str | int) -> str:
    """``join_path("nodes", 2) == "nodes[2]"``, ``join_path("nodes[2]", "id") == "nodes[2].id"``."""
    if isinstance(key, int):
        return f"{base}[{key}]"
    return f"{base}.{key}" if base else key
