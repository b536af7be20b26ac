"""``function``: call a Python function the operator registered (see ``nodedrop_rq.workflow.functions``).

``functionName`` names it; it is called as ``fn(items, params)`` with deep copies of the input items
(``[{"json": {...}}, ...]``) and the node's parameters (expressions evaluated against the first
item), and returns a list of items or of plain dicts (wrapped as ``{"json": dict}``), one dict, or
None (no items). What it returns must be JSON data.
"""

from __future__ import annotations

import json
from typing import Any

from nodedrop_rq.workflow.functions import get_function, registered_functions
from nodedrop_rq.workflow.node_type import Inputs, NodeContext, NodeType, Outputs
from nodedrop_rq.workflow.params import string


def _as_item(value: Any, name: str) -> dict:
    if isinstance(value, dict):
        if set(value) <= {"json", "binary"} and isinstance(value.get("json"), dict):
            return {"json": value["json"]}
        return {"json": value}
    raise TypeError(f"function {name!r} returned {type(value).__name__} in its list; expected dicts (items)")


class FunctionNode(NodeType):
    type = "function"
    display_name = "Function"
    description = "Call a Python function registered by the operator."
    params = {"functionName": string(required=True, description="name given to register_function")}

    def execute(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        name = ctx.parameter("functionName")
        fn = get_function(str(name))
        if fn is None:
            known = ", ".join(registered_functions()) or "none"
            raise LookupError(
                f"no Python function is registered as {name!r} (registered: {known}); the operator "
                "registers them with register_function() in a module listed in NODEDROP_FUNCTION_MODULES"
            )
        # Our own node, not NodeDrop's: $json is the first item even when there are several.
        result = fn(ctx.items, ctx.parameters(item_index=0))
        if result is None:
            result = []
        elif isinstance(result, dict):
            result = [result]
        elif not isinstance(result, (list, tuple)):
            raise TypeError(f"function {name!r} returned {type(result).__name__}; expected a list of items")
        items = [_as_item(value, str(name)) for value in result]
        try:
            # A copy through JSON proves the data is JSON and detaches it from the function's objects.
            return {"main": json.loads(json.dumps(items, allow_nan=False))}
        except (TypeError, ValueError) as exc:
            raise TypeError(f"function {name!r} returned data that is not JSON: {exc}") from None
