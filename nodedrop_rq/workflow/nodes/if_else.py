"""``ifElse``: route the items to ``true`` or ``false`` (NodeDrop's IfElse.node.ts).

As in NodeDrop, the condition is evaluated once, against the FIRST input item, and all items go down
the chosen branch (to route item by item, put a ``switch`` in front, or a ``loop``). Modes: ``simple``
(one ``condition``), ``combine`` (``conditions`` joined by ``combineOperation`` AND/OR) and
``grouped`` (``conditionGroups``, each with its own ``groupOperation``, joined by ``combineGroups``).
An empty list of conditions or groups routes to ``false``. Conditions are parameters, so
``{{ ... }}`` in them is resolved first (with one input item, ``{{json.amount}}`` is already the value);
a key left as ``{{json.path}}`` (several items) or naming a field is read from the first item, any other
key is a literal. Comparisons are JavaScript's: text for equality and text tests, ``Number()`` for
larger/smaller, ``new RegExp`` for regex.

NodeDrop's removed ``if`` node is refused at validation (``registry.REFUSED_TYPES``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nodedrop_rq.workflow.js import UNDEFINED
from nodedrop_rq.workflow.limits import Limits
from nodedrop_rq.workflow.node_type import Inputs, NodeContext, NodeType, Outputs
from nodedrop_rq.workflow.nodes.conditions import (
    IF_OPERATIONS,
    compare,
    condition_of,
    condition_spec,
    field_value,
    pattern_problem,
)
from nodedrop_rq.workflow.nodes.items import data_of
from nodedrop_rq.workflow.params import array, obj, options
from nodedrop_rq.workflow.problems import join_path

CONDITION = condition_spec(IF_OPERATIONS)
ROW = obj({"condition": CONDITION, "values": obj({"condition": CONDITION})})
GROUP_FIELDS = {"groupOperation": options("AND", "OR"), "conditions": array(ROW)}
GROUP = obj({**GROUP_FIELDS, "values": obj(GROUP_FIELDS)})


def _combine(results: list[bool], operation: str) -> bool:
    if operation == "AND":
        return bool(results) and all(results)
    return any(results)


def _regex_problems(condition: Any, path: str) -> list[tuple[str, str]]:
    if isinstance(condition, dict) and condition.get("expression") == "regex":
        problem = pattern_problem(condition.get("value"))
        if problem:
            return [(join_path(path, "value"), problem)]
    return []


class IfElseNode(NodeType):
    type = "ifElse"
    display_name = "If/Else"
    description = "Route the items to 'true' or 'false' by a condition on the first item."
    outputs = ("true", "false")
    pure = True
    params = {
        "mode": options("simple", "combine", "grouped"),
        "condition": CONDITION,
        "combineOperation": options("AND", "OR"),
        "conditions": array(ROW),
        "combineGroups": options("AND", "OR"),
        "conditionGroups": array(GROUP),
    }

    def validate(self, parameters: Mapping[str, Any], limits: Limits) -> list[tuple[str, str]]:
        problems = _regex_problems(parameters.get("condition"), "condition")
        rows = parameters.get("conditions")
        for i, row in enumerate(rows if isinstance(rows, list) else []):
            problems += _regex_problems(condition_of(row), join_path(join_path("conditions", i), "condition"))
        groups = parameters.get("conditionGroups")
        for g, group in enumerate(groups if isinstance(groups, list) else []):
            body = group.get("values", group) if isinstance(group, dict) else {}
            rows = body.get("conditions") if isinstance(body, dict) else None
            for i, row in enumerate(rows if isinstance(rows, list) else []):
                path = join_path(join_path(join_path("conditionGroups", g), "conditions"), i)
                problems += _regex_problems(condition_of(row), join_path(path, "condition"))
        return problems

    def decide(self, ctx: NodeContext) -> bool:
        """IfElse.node.ts execute: conditions resolved as parameters, tested against the first item."""
        first = data_of(ctx.items[0]) if ctx.items else UNDEFINED

        def test(condition: Mapping[str, Any]) -> bool:
            key = condition.get("key", UNDEFINED)
            value = field_value(first, key) if first is not UNDEFINED else key
            return compare(condition.get("expression"), value, condition.get("value", UNDEFINED), ctx.limits.js)

        mode = ctx.parameter("mode", "simple")
        if mode == "simple":
            condition = ctx.parameter("condition")
            if not isinstance(condition, dict):
                raise ValueError("simple mode needs a condition {key, expression, value}")
            return test(condition)
        if mode == "combine":
            rows = ctx.parameter("conditions", [])
            if not rows:
                return False
            results = [test(c) for c in (condition_of(r) for r in rows) if c is not None]
            return _combine(results, ctx.parameter("combineOperation", "AND"))
        groups = ctx.parameter("conditionGroups", [])
        if not groups:
            return False
        results = []
        for group in groups:
            body = group.get("values", group) if isinstance(group, dict) else {}
            rows = body.get("conditions") or []
            if not rows:
                results.append(False)
                continue
            group_results = [test(c) for c in (condition_of(r) for r in rows) if c is not None]
            results.append(_combine(group_results, body.get("groupOperation") or "OR"))
        return _combine(results, ctx.parameter("combineGroups", "AND"))

    def execute(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        items = [{"json": data_of(item)} for item in ctx.items]
        if self.decide(ctx):
            return {"true": items, "false": []}
        return {"true": [], "false": items}
