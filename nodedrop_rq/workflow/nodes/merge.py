"""``merge``: combine the items of several incoming connections (NodeDrop's Merge node).

The engine runs it once every upstream node has finished, with the connections that delivered items,
in the order of the workflow's connections. Modes: ``append`` (all items, in order),
``mergeByPosition`` (item i of every input merged into one; later inputs win), ``mergeByKey``
(items with the same value at the ``mergeByKey`` path merged; items without it are dropped),
``keepFirst`` / ``keepLast`` (only the first / last delivering input).
"""

from __future__ import annotations

import json
from typing import Any

from nodedrop_rq.workflow.node_type import Inputs, NodeContext, NodeType, Outputs
from nodedrop_rq.workflow.nodes.items import MISSING, as_object, data_of, get_path
from nodedrop_rq.workflow.params import boolean, options, string


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


class MergeNode(NodeType):
    type = "merge"
    display_name = "Merge"
    description = "Merge the items of several inputs."
    pure = True
    params = {
        "mode": options("append", "mergeByPosition", "mergeByKey", "keepFirst", "keepLast"),
        "mergeByKey": string(),
        "waitForAll": boolean(),
    }

    def execute(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        mode = ctx.parameter("mode", "append")
        groups = [[as_object(data_of(item)) for item in group] for group in inputs.get("main", [])]
        if mode == "append":
            merged = [data for group in groups for data in group]
        elif mode == "mergeByPosition":
            merged = []
            for position in range(max((len(g) for g in groups), default=0)):
                combined: dict = {}
                for group in groups:
                    if position < len(group):
                        combined.update(group[position])
                if combined:
                    merged.append(combined)
        elif mode == "mergeByKey":
            path = ctx.parameter("mergeByKey", "id")
            if not path:
                raise ValueError("Merge key is required for 'Merge by Key' mode")
            by_key: dict[str, dict] = {}
            for group in groups:
                for data in group:
                    value = get_path(data, str(path))
                    if value is MISSING:
                        continue
                    key = _key(value)
                    by_key[key] = {**by_key[key], **data} if key in by_key else dict(data)
            merged = list(by_key.values())
        elif mode == "keepFirst":
            merged = groups[0] if groups else []
        elif mode == "keepLast":
            merged = groups[-1] if groups else []
        else:
            raise ValueError(f"Unknown merge mode: {mode}")
        return {"main": [{"json": data} for data in merged]}
