"""``set``: add or overwrite fields of each item (NodeDrop's Set node).

``values`` is a list of rows ``{"keyValue": {"key": "user.address.city", "value": ...}}`` (NodeDrop
also nests rows as ``{"values": {"keyValue": ...}}``; a flat ``{"key", "value"}`` row works too).
Keys are dotted paths (``items[0].name`` works). As in NodeDrop, ``values`` is resolved once for the
node and the same fields are set on every item; with no input items, one item is built from scratch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nodedrop_rq.workflow.js import UNDEFINED
from nodedrop_rq.workflow.js.values import to_text, truthy
from nodedrop_rq.workflow.limits import Limits
from nodedrop_rq.workflow.node_type import Inputs, NodeContext, NodeType, Outputs
from nodedrop_rq.workflow.nodes.items import copied, data_of, set_path, spread
from nodedrop_rq.workflow.params import any_value, array, obj, string
from nodedrop_rq.workflow.problems import join_path

_KEY_VALUE = obj({"key": string(), "value": any_value()})
ROW = obj({"keyValue": _KEY_VALUE, "values": obj({"keyValue": _KEY_VALUE}), "key": string()})


def row_key_value(row: Any) -> tuple[dict | None, str]:
    """The ``{key, value}`` of a row and its path inside the row."""
    if not isinstance(row, dict):
        return None, ""
    nested = row.get("values")
    if isinstance(nested, dict) and isinstance(nested.get("keyValue"), dict):
        return nested["keyValue"], "values.keyValue"
    if isinstance(row.get("keyValue"), dict):
        return row["keyValue"], "keyValue"
    if "key" in row:
        return row, ""
    return None, ""


class SetNode(NodeType):
    type = "set"
    display_name = "Set"
    description = "Add or update fields on each item."
    pure = True
    params = {"values": array(ROW)}

    def validate(self, parameters: Mapping[str, Any], limits: Limits) -> list[tuple[str, str]]:
        problems = []
        rows = parameters.get("values", [])
        if not isinstance(rows, list):
            return []
        for index, row in enumerate(rows):
            key_value, _ = row_key_value(row)
            if key_value is None and isinstance(row, dict):  # non-objects are reported by the spec check
                problems.append((join_path("values", index), 'a row is {"keyValue": {"key": "field", "value": ...}}'))
        return problems

    def execute(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        # NodeDrop resolves `values` once for the node (Set.node.ts execute): with several input items
        # `$json` is their array, so `{{ $json.x }}` stays text and `{{ $json[1].x }}` reads item 1.
        rows = ctx.parameter("values", [])
        if not isinstance(rows, list):
            raise ValueError("values must be a list of {keyValue: {key, value}} rows")
        pairs = [row_key_value(row)[0] for row in rows]
        pairs = [p for p in pairs if p is not None and truthy(p.get("key", UNDEFINED))]
        out = []
        for data in [data_of(item) for item in ctx.items] or [{}]:
            fields = copied(spread(data))
            for pair in pairs:
                set_path(fields, to_text(pair["key"]), copied(pair.get("value")))
            out.append({"json": fields})
        return {"main": out}
