"""``json``: emit items from JSON written in the node (NodeDrop's JSON node).

``jsonData`` is JSON text (expressions inside are evaluated first, against the first input item) or
already-parsed data. An array gives one item per element, an object one item; elements that are not
objects are kept under ``value``. The node's input items are not passed on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from nodedrop_rq.workflow.limits import Limits
from nodedrop_rq.workflow.node_type import Inputs, NodeContext, NodeType, Outputs
from nodedrop_rq.workflow.nodes.items import wrap
from nodedrop_rq.workflow.params import Param
from nodedrop_rq.workflow.templates import has_expression


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"Invalid JSON data: {exc}") from None


class JsonNode(NodeType):
    type = "json"
    display_name = "JSON"
    description = "Emit items from JSON data."
    pure = True
    params = {"jsonData": Param(("string", "object", "array"))}

    def validate(self, parameters: Mapping[str, Any], limits: Limits) -> list[tuple[str, str]]:
        data = parameters.get("jsonData", "{}")
        if isinstance(data, str) and not has_expression(data):
            try:
                data = _parse(data or "{}")
            except ValueError as exc:
                return [("jsonData", str(exc))]
        if isinstance(data, list) and len(data) > limits.max_items:
            return [("jsonData", f"{len(data)} items; the limit is {limits.max_items}")]
        return []

    def execute(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        data = ctx.parameter("jsonData", "{}")
        if isinstance(data, str):
            data = _parse(data or "{}")
        if isinstance(data, list):
            return {"main": [wrap(element) for element in data]}
        return {"main": [wrap(data)]}
