"""``loop`` (NodeDrop's Loop node), unrolled for a DAG engine.

NodeDrop re-runs the nodes after ``loop`` once per iteration. A workflow here is a DAG (no cycles,
each node runs once), so the loop is unrolled: ``loop`` carries every iteration's items at once, each
annotated as NodeDrop annotates them (``$index``, ``$iteration``, ``$total``, ``$isFirst``,
``$isLast``, ``$batchIndex``, ``$batchSize``), and ``done`` carries NodeDrop's completion item
``{"completed": true, "totalIterations": n}``. Item-by-item nodes after ``loop`` (set, switch,
http-request per item via expressions, ...) behave the same; nodes that act on the whole batch
(a ``delay`` sleeps once, an ``ifElse`` tests the first item) see all iterations together.

``loopOver``: ``items`` (the input items), ``field`` (the array at ``fieldName`` in the first item) or
``repeat`` (``repeatTimes`` items ``{"iteration", "index", "total"}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nodedrop_rq.workflow.limits import Limits
from nodedrop_rq.workflow.node_type import Inputs, NodeContext, NodeType, Outputs
from nodedrop_rq.workflow.nodes.items import MISSING, as_object, data_of, get_path
from nodedrop_rq.workflow.params import number, options, string

MAX_REPEAT = 100_000


class LoopNode(NodeType):
    type = "loop"
    display_name = "Loop"
    description = "Emit every iteration's items on 'loop' and a completion item on 'done'."
    outputs = ("loop", "done")
    pure = True
    params = {
        "loopOver": options("items", "field", "repeat"),
        "repeatTimes": number(),
        "fieldName": string(),
        "batchSize": number(),
    }

    def validate(self, parameters: Mapping[str, Any], limits: Limits) -> list[tuple[str, str]]:
        problems = []
        times = parameters.get("repeatTimes")
        if parameters.get("loopOver") == "repeat" and isinstance(times, (int, float)):
            if times <= 0:
                problems.append(("repeatTimes", "Number of iterations must be greater than 0"))
            elif times > min(MAX_REPEAT, limits.max_items):
                problems.append(("repeatTimes", f"at most {min(MAX_REPEAT, limits.max_items)} iterations"))
        size = parameters.get("batchSize")
        if isinstance(size, (int, float)) and not isinstance(size, bool) and size <= 0:
            problems.append(("batchSize", "must be greater than 0"))
        return problems

    def execute(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        loop_over = ctx.parameter("loopOver", "items")
        if loop_over == "repeat":
            times = ctx.parameter("repeatTimes", 10)
            if isinstance(times, bool) or not isinstance(times, (int, float)) or times <= 0:
                raise ValueError("Number of iterations must be greater than 0")
            times = int(times)
            if times > min(MAX_REPEAT, ctx.limits.max_items):
                raise ValueError(f"Number of iterations cannot exceed {min(MAX_REPEAT, ctx.limits.max_items)}")
            values: list[Any] = [{"iteration": i + 1, "index": i, "total": times} for i in range(times)]
        elif loop_over == "field":
            field = ctx.parameter("fieldName", "")
            if not field:
                raise ValueError("Field name is required when looping over a field")
            if not ctx.items:
                raise ValueError("No input items to extract field from")
            found = get_path(data_of(ctx.items[0]), str(field))
            if not isinstance(found, list):
                kind = "undefined" if found is MISSING else type(found).__name__
                raise ValueError(f"Field '{field}' is not an array. Got: {kind}")
            values = found
        else:
            values = [data_of(item) for item in ctx.items]
        batch_size = ctx.parameter("batchSize", 1)
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, float)) or batch_size < 1:
            batch_size = 1
        batch_size = int(batch_size)
        total = len(values)
        loop_items = []
        for index, value in enumerate(values):
            batch_start = index - index % batch_size
            loop_items.append(
                {
                    "json": {
                        **as_object(value),
                        "$index": index,
                        "$iteration": index + 1,
                        "$total": total,
                        "$isFirst": index == 0,
                        "$isLast": index == total - 1,
                        "$batchIndex": index - batch_start,
                        "$batchSize": min(batch_size, total - batch_start),
                    }
                }
            )
        done = [{"json": {"completed": True, "totalIterations": total}}]
        return {"loop": loop_items, "done": done}
