"""``loop`` (NodeDrop's Loop.node.ts): iterations in sequence.

The node computes its batches of ``batchSize`` items, each item annotated as NodeDrop annotates it
(``$index``, ``$iteration``, ``$total``, ``$isFirst``, ``$isLast``, ``$batchIndex``, ``$batchSize``). The
engine then runs the nodes after the ``loop`` output once per batch, one batch after the other (a
``delay`` in the body sleeps once per iteration), like NodeDrop's ``executeLoopNode``; ``done`` then
carries ``{"completed": true, "totalIterations": n}`` to the nodes after it. The recorded output of the
``loop`` output lists every iteration's items.

``loopOver``: ``items`` (the input items), ``field`` (the array at ``fieldName`` in the first item) or
``repeat`` (``repeatTimes`` items ``{"iteration", "index", "total"}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nodedrop_rq.workflow.limits import Limits
from nodedrop_rq.workflow.node_type import Inputs, NodeContext, NodeType, Outputs
from nodedrop_rq.workflow.nodes.items import MISSING, data_of, get_path, spread
from nodedrop_rq.workflow.params import number, options, string

MAX_REPEAT = 100_000


class LoopNode(NodeType):
    type = "loop"
    display_name = "Loop"
    description = "Emit every iteration's items on 'loop' and a completion item on 'done'."
    outputs = ("loop", "done")
    pure = True
    # The engine runs the nodes after `loop` once per batch (engine._Run.iterate).
    iterates = True
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
                        **spread(value),
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

    def batches(self, loop_items: list[dict]) -> list[list[dict]]:
        """The ``loop`` items of :meth:`execute`, batch by batch."""
        batches: list[list[dict]] = []
        for item in loop_items:
            if item["json"].get("$batchIndex") == 0 or not batches:
                batches.append([])
            batches[-1].append(item)
        return batches
