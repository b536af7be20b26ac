"""The parsed form of a NodeDrop workflow: nodes, connections and settings.

Only :func:`nodedrop_rq.workflow.parse_workflow` builds these from user input, after validation; the
engine trusts them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Node:
    id: str
    type: str
    name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    disabled: bool = False
    # NodeDrop's per-node "Settings" tab: continueOnFail, alwaysOutputData, timeout (ms), notes, ...
    settings: dict[str, Any] = field(default_factory=dict)
    # UI-only fields (position, icon, color, mockData, credentials, ...): ignored, kept for round trips.
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def continue_on_fail(self) -> bool:
        return bool(self.settings.get("continueOnFail", False))

    @property
    def always_output_data(self) -> bool:
        return bool(self.settings.get("alwaysOutputData", False))

    @property
    def timeout_seconds(self) -> float | None:
        """NodeDrop's ``settings.timeout`` is in milliseconds; 0 or absent means no timeout."""
        value = self.settings.get("timeout")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            return None
        return value / 1000.0

    def to_document(self) -> dict[str, Any]:
        doc: dict[str, Any] = dict(copy.deepcopy(self.extra))
        doc.update(
            {
                "id": self.id,
                "type": self.type,
                "name": self.name,
                "parameters": copy.deepcopy(self.parameters),
                "disabled": self.disabled,
            }
        )
        if self.settings:
            doc["settings"] = copy.deepcopy(self.settings)
        return doc


@dataclass
class Connection:
    id: str
    source_node_id: str
    target_node_id: str
    source_output: str = "main"
    target_input: str = "main"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_document(self) -> dict[str, Any]:
        doc: dict[str, Any] = dict(copy.deepcopy(self.extra))
        doc.update(
            {
                "id": self.id,
                "sourceNodeId": self.source_node_id,
                "sourceOutput": self.source_output,
                "targetNodeId": self.target_node_id,
                "targetInput": self.target_input,
            }
        )
        return doc


@dataclass
class Workflow:
    name: str
    nodes: list[Node]
    connections: list[Connection]
    settings: dict[str, Any] = field(default_factory=dict)
    # Other workflow fields (id, description, metadata, tags, ...): ignored, kept for round trips.
    extra: dict[str, Any] = field(default_factory=dict)

    def node(self, node_id: str) -> Node:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)

    def to_document(self) -> dict[str, Any]:
        """The bare workflow as plain JSON data; ``parse_workflow`` accepts it again."""
        doc: dict[str, Any] = dict(copy.deepcopy(self.extra))
        doc.update(
            {
                "name": self.name,
                "nodes": [n.to_document() for n in self.nodes],
                "connections": [c.to_document() for c in self.connections],
                "settings": copy.deepcopy(self.settings),
            }
        )
        return doc
