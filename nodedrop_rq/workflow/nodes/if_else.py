"""``ifElse`` (and NodeDrop's legacy ``if``): route the items to ``true`` or ``false``.

As in NodeDrop, the condition is evaluated once, against the FIRST input item, and all items go down
the chosen branch (to route item by item, put a ``switch`` in front, or a ``loop``). Modes: ``simple``
(one ``condition``), ``combine`` (``conditions`` joined by ``combineOperation`` AND/OR) and
``grouped`` (``conditionGroups``, each with its own ``groupOperation``, joined by ``combineGroups``).
An empty list of conditions or groups routes to ``false``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nodedrop_rq.workflow.limits import Limits
from nodedrop_rq.workflow.node_type import Inputs, NodeContext, NodeType, Outputs
from nodedrop_rq.workflow.nodes.conditions import (
    IF_OPERATIONS,
    condition_of,
    condition_spec,
    pattern_problem,
    test_condition,
)
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
        mode = ctx.raw_parameter("mode", "simple")
        if mode == "combine":
            rows = ctx.raw_parameter("conditions", []) or []
            conditions = [c for c in (condition_of(r) for r in rows) if c is not None]
            results = [test_condition(ctx, c, 0) for c in conditions]
            return _combine(results, ctx.parameter("combineOperation", "AND"))
        if mode == "grouped":
            results = []
            for group in ctx.raw_parameter("conditionGroups", []) or []:
                body = group.get("values", group) if isinstance(group, dict) else {}
                rows = body.get("conditions") or []
                conditions = [c for c in (condition_of(r) for r in rows) if c is not None]
                group_results = [test_condition(ctx, c, 0) for c in conditions]
                results.append(_combine(group_results, str(body.get("groupOperation", "OR"))))
            return _combine(results, ctx.parameter("combineGroups", "AND"))
        condition = ctx.raw_parameter("condition") or {}
        return test_condition(ctx, condition, 0)

    def execute(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        items = list(ctx.items)
        if self.decide(ctx):
            return {"true": items, "false": []}
        return {"true": [], "false": items}


class IfNode(IfElseNode):
    """NodeDrop's older ``if`` node: one ``condition``, outputs ``true``/``false``."""

    type = "if"
    display_name = "If"
    params = {"condition": CONDITION}

    def decide(self, ctx: NodeContext) -> bool:
        return test_condition(ctx, ctx.raw_parameter("condition") or {}, 0)
