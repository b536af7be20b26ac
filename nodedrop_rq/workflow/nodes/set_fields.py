"""``set``: add or overwrite fields of each item (NodeDrop's Set node).

``values`` is a list of rows ``{"keyValue": {"key": "user.address.city", "value": ...}}`` (NodeDrop
also nests rows as ``{"values": {"keyValue": ...}}``; a flat ``{"key", "value"}`` row works too).
Keys are dotted paths (``items[0].name`` works). Expressions in keys and values are evaluated per
item, with ``$json`` the item being changed (NodeDrop evaluates them once, against the first item;
for a single item the result is the same). With no input items, one item is built from scratch.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from nodedrop_rq.workflow.limits import Limits
from nodedrop_rq.workflow.node_type import Inputs, NodeContext, NodeType, Outputs
from nodedrop_rq.workflow.nodes.items import as_object, data_of, set_path
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
        rows = [row_key_value(row)[0] for row in ctx.raw_parameter("values", []) or []]
        rows = [r for r in rows if r is not None]
        items = ctx.items or [{"json": {}}]
        out = []
        for index, item in enumerate(items):
            data = copy.deepcopy(as_object(data_of(item)))
            for row_index, row in enumerate(rows):
                label = f"parameter 'values[{row_index}]'"
                key = ctx.render(row.get("key", ""), item_index=index, label=label)
                if key is None or key == "":
                    continue
                value = ctx.render(row.get("value"), item_index=index, label=label)
                set_path(data, str(key), value)
            out.append({"json": data})
        return {"main": out}
