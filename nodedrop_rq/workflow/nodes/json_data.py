"""``json``: emit items from JSON written in the node (NodeDrop's Json.node.ts).

Mode ``json`` (the default): ``jsonData`` is JSON text (its expressions resolved first) or already
parsed data. Mode ``keyValue``: ``keyValuePairs`` rows ``{"keyValue": {"key", "value"}}`` (or nested
under ``values``) build one object; keys are dotted paths and a leading ``=`` on a key or value is
dropped. An array gives one item per element, whatever the element is (a number stays a number); any
other value is one item. The node's input items are not passed on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from nodedrop_rq.workflow.expressions import has_expression
from nodedrop_rq.workflow.js import UNDEFINED
from nodedrop_rq.workflow.js.values import to_text, truthy
from nodedrop_rq.workflow.limits import Limits
from nodedrop_rq.workflow.node_type import Inputs, NodeContext, NodeType, Outputs
from nodedrop_rq.workflow.nodes.items import set_path
from nodedrop_rq.workflow.nodes.set_fields import ROW, row_key_value
from nodedrop_rq.workflow.params import Param, array, options


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
    params = {
        "mode": options("json", "keyValue"),
        "jsonData": Param(("string", "object", "array")),
        "keyValuePairs": array(ROW),
    }

    def validate(self, parameters: Mapping[str, Any], limits: Limits) -> list[tuple[str, str]]:
        if parameters.get("mode", "json") == "keyValue":
            return []
        data = parameters.get("jsonData", "{}")
        if isinstance(data, str) and not has_expression(data):
            try:
                data = _parse(data)
            except ValueError as exc:
                return [("jsonData", str(exc))]
        if isinstance(data, list) and len(data) > limits.max_items:
            return [("jsonData", f"{len(data)} items; the limit is {limits.max_items}")]
        return []

    def execute(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        if ctx.parameter("mode", "json") == "keyValue":
            data: Any = {}
            for row in ctx.parameter("keyValuePairs", []) or []:
                pair, _ = row_key_value(row)
                if pair is None or not truthy(pair.get("key", UNDEFINED)):
                    continue
                key, value = pair["key"], pair.get("value")
                key = key[1:] if isinstance(key, str) and key.startswith("=") else key
                value = value[1:] if isinstance(value, str) and value.startswith("=") else value
                set_path(data, to_text(key), value)
        else:
            data = ctx.parameter("jsonData", "{}")
            if isinstance(data, str):
                data = _parse(data)
        if isinstance(data, list):
            return {"main": [{"json": element} for element in data]}
        return {"main": [{"json": data}]}
