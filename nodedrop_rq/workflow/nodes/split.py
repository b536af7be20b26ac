"""``split`` (NodeDrop's Split node).

``batch`` mode emits one item per batch: ``{"batch": [data, ...], "batchSize": n}``. The other modes
(``byField``, ``evenOdd``, ``percentage``, ``parts``) emit only the FIRST group on ``main``, exactly
as NodeDrop does (its node has a single output): the first distinct value of ``splitField``, the
even positions, the first ``percentage`` %, or the first of ``parts`` parts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from nodedrop_rq.workflow.limits import Limits
from nodedrop_rq.workflow.node_type import Inputs, NodeContext, NodeType, Outputs
from nodedrop_rq.workflow.nodes.items import MISSING, data_of, get_path, wrap
from nodedrop_rq.workflow.params import number, options, string


def _positive(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{what} must be greater than 0")
    return int(value)


class SplitNode(NodeType):
    type = "split"
    display_name = "Split"
    description = "Split items into batches (or keep the first group of a split)."
    pure = True
    params = {
        "mode": options("batch", "byField", "evenOdd", "percentage", "parts"),
        "batchSize": number(),
        "splitField": string(),
        "percentage": number(),
        "parts": number(),
    }

    def validate(self, parameters: Mapping[str, Any], limits: Limits) -> list[tuple[str, str]]:
        problems = []
        for name in ("batchSize", "parts"):
            value = parameters.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0:
                problems.append((name, "must be greater than 0"))
        percentage = parameters.get("percentage")
        if isinstance(percentage, (int, float)) and not 0 <= percentage <= 100:
            problems.append(("percentage", "must be between 0 and 100"))
        return problems

    def execute(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        mode = ctx.parameter("mode", "batch")
        data = [data_of(item) for item in ctx.items]
        if not data:
            return {"main": []}
        if mode == "batch":
            size = _positive(ctx.parameter("batchSize", 10), "Batch size")
            batches = [data[i : i + size] for i in range(0, len(data), size)]
            return {"main": [{"json": {"batch": b, "batchSize": len(b)}} for b in batches]}
        if mode == "byField":
            field = ctx.parameter("splitField", "type")
            if not field:
                raise ValueError("Field name is required for 'By Field Value' mode")
            first = get_path(data[0], str(field))
            key = json.dumps(None if first is MISSING else first, default=str)
            group = [d for d in data if json.dumps(_or_none(get_path(d, str(field))), default=str) == key]
        elif mode == "evenOdd":
            group = data[0::2]
        elif mode == "percentage":
            percentage = ctx.parameter("percentage", 50)
            if not isinstance(percentage, (int, float)) or not 0 <= percentage <= 100:
                raise ValueError("Percentage must be between 0 and 100")
            group = data[: math.floor(len(data) * percentage / 100)]
        elif mode == "parts":
            parts = _positive(ctx.parameter("parts", 2), "Number of parts")
            group = data[: math.ceil(len(data) / parts)]
        else:
            raise ValueError(f"Unknown split mode: {mode}")
        return {"main": [wrap(d) for d in group]}


def _or_none(value: Any) -> Any:
    return None if value is MISSING else value
