"""``switch``: route each item to the output of the first rule it matches.

NodeDrop's current format (``rules``, ``outputExpression``/``outputsCount``; outputs ``output0`` ...) is
in :mod:`switch_current`. The rest of this docstring is the format from before December 2025, still
accepted:

Rules mode: ``outputs`` is a list of rules ``{"rule": {"key", "expression", "value"}}`` (or nested
under ``values``, or NodeDrop's legacy flat ``{"field", "condition", "value"}``). Items matching no
rule are dropped, as in NodeDrop. With no rules, all items go to ``main``.

Output names: NodeDrop names rule i's output after the rule's ``key`` (the field name), or
``output<i>`` when the key is empty; two rules testing the same field therefore share one output
name, and a connection from it carries the items of both. To address one rule exactly, a connection
may also use ``output<i>`` (0-based), or the rule's ``id`` or ``outputName`` when it has one. The
recorded node output lists the items per rule as ``output0``, ``output1``, ...

Expression mode (a stub in NodeDrop, which sends everything to ``main``): ``expression`` is evaluated
per item (a plain field name such as ``priority`` reads that field) and must give an output index;
the item goes to ``output<index>``. ``main`` still carries all items, as in NodeDrop.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from nodedrop_rq.workflow.expressions import has_expression
from nodedrop_rq.workflow.limits import Limits
from nodedrop_rq.workflow.node_type import Inputs, Item, NodeContext, NodeType, Outputs
from nodedrop_rq.workflow.nodes import switch_current
from nodedrop_rq.workflow.nodes.conditions import (
    IF_OPERATIONS,
    SWITCH_OPERATIONS,
    condition_of,
    condition_spec,
    pattern_problem,
    test_condition,
)
from nodedrop_rq.workflow.nodes.items import MISSING, data_of, get_path
from nodedrop_rq.workflow.params import Param, any_value, array, number, obj, options, string
from nodedrop_rq.workflow.problems import join_path

RULE = condition_spec(SWITCH_OPERATIONS)
OUTPUT = obj(
    {
        "rule": RULE,
        "values": obj({"rule": RULE}),
        "id": string(),
        "outputName": string(),
        "field": any_value(),
        "condition": options(*SWITCH_OPERATIONS),
        "value": any_value(),
    }
)
_INDEXED = re.compile(r"output(\d+)")


def _rule(entry: Any) -> dict | None:
    rule = condition_of(entry, "rule")
    if rule is None and isinstance(entry, dict) and ("field" in entry or "condition" in entry):
        body = entry.get("values", entry) if isinstance(entry.get("values"), dict) else entry
        rule = {"key": body.get("field"), "expression": body.get("condition"), "value": body.get("value")}
    return rule


def _aliases(entry: Any, index: int) -> set[str]:
    names = {f"output{index}"}
    rule = _rule(entry) or {}
    key = rule.get("key")
    if isinstance(key, str) and key:
        names.add(key)
    if isinstance(entry, dict):
        for field in ("id", "outputName"):
            if isinstance(entry.get(field), str) and entry[field]:
                names.add(entry[field])
    return names


class SwitchNode(NodeType):
    type = "switch"
    display_name = "Switch"
    description = "Route each item to the output of the first matching rule."
    outputs = ("main",)
    pure = True
    params = {
        "mode": options("rules", "expression"),
        "outputs": array(OUTPUT),
        "expression": any_value(),
        "numberOutputs": number(minimum=1),
        "rules": array(obj({"values": obj({"condition": condition_spec(IF_OPERATIONS)}),
                            "condition": condition_spec(IF_OPERATIONS)})),
        "outputExpression": any_value(),
        "outputsCount": Param(("number", "string")),
    }

    def _entries(self, parameters: Mapping[str, Any]) -> list[Any]:
        entries = parameters.get("outputs")
        return entries if isinstance(entries, list) else []

    def output_names(self, parameters: Mapping[str, Any]) -> tuple[str, ...]:
        if switch_current.is_current(parameters):
            return tuple(f"output{i}" for i in range(switch_current.declared_outputs(parameters)))
        if parameters.get("mode") == "expression":
            return ("main", "output0", "output1", "...")
        entries = self._entries(parameters)
        if not entries:
            return ("main",)
        names: list[str] = []
        for index, entry in enumerate(entries):
            names.extend(sorted(_aliases(entry, index)))
        return tuple(dict.fromkeys(names))

    def accepts_output(self, name: str, parameters: Mapping[str, Any]) -> bool:
        if switch_current.is_current(parameters):
            return name in self.output_names(parameters)
        if parameters.get("mode") == "expression":
            return name == "main" or _INDEXED.fullmatch(name) is not None
        return name in self.output_names(parameters)

    def validate(self, parameters: Mapping[str, Any], limits: Limits) -> list[tuple[str, str]]:
        if switch_current.is_current(parameters):
            return []
        problems = []
        for index, entry in enumerate(self._entries(parameters)):
            rule = _rule(entry)
            path = join_path("outputs", index)
            if rule is None:
                problems.append((path, 'a rule is {"rule": {"key": "field", "expression": "equals", "value": ...}}'))
            elif rule.get("expression") == "regex" and pattern_problem(rule.get("value")):
                problems.append((path, str(pattern_problem(rule.get("value")))))
        if parameters.get("mode") == "expression" and not parameters.get("expression"):
            problems.append(("expression", "expression mode needs an expression giving the output index"))
        return problems

    def route(self, parameters: Mapping[str, Any], outputs: Outputs, name: str) -> list[Item]:
        if name in outputs:
            return outputs[name]
        items: list[Item] = []
        for index, entry in enumerate(self._entries(parameters)):
            if name in _aliases(entry, index):
                items.extend(outputs.get(f"output{index}", []))
        return items

    def execute(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        if switch_current.is_current(ctx.node.parameters):
            return switch_current.route(ctx)
        items = list(ctx.items)
        if ctx.raw_parameter("mode", "rules") == "expression":
            return self._by_expression(ctx, items)
        entries = self._entries(ctx.node.parameters)
        if not entries:
            return {"main": items}
        rules = [_rule(entry) or {} for entry in entries]
        routed: Outputs = {f"output{i}": [] for i in range(len(rules))}
        for index, item in enumerate(items):
            for rule_index, rule in enumerate(rules):
                if test_condition(ctx, rule, index, switch=True):
                    routed[f"output{rule_index}"].append(item)
                    break
        return routed

    def _by_expression(self, ctx: NodeContext, items: list[Item]) -> Outputs:
        raw = ctx.raw_parameter("expression", "")
        routed: Outputs = {"main": items}
        for index, item in enumerate(items):
            if isinstance(raw, str) and not has_expression(raw):
                value = get_path(data_of(item), raw.strip())
                value = None if value is MISSING else value
            else:
                value = ctx.render(raw, item_index=index, label="parameter 'expression'")
            try:
                target = int(value)
            except (TypeError, ValueError):
                raise ValueError(f"switch expression gave {value!r} for item {index}, not an output index") from None
            if target < 0:
                raise ValueError(f"switch expression gave a negative output index ({target})")
            routed.setdefault(f"output{target}", []).append(item)
        return routed
