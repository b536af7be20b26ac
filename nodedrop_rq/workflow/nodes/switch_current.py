"""The Switch format NodeDrop uses since December 2025 (Switch.node.ts): outputs ``output0`` ...

- ``mode: "rules"``: ``rules`` is a list of ``{"values": {"condition": {key, expression, value}}}`` (or the
  condition without ``values``); rule i feeds ``output<i>``. Each item goes to the first rule it matches
  and is dropped when it matches none; a rule without a key is skipped. Conditions are IfElse's
  (:func:`conditions.field_value`, :func:`conditions.compare`), but tested per item.
- ``mode: "expression"``: ``outputsCount`` outputs (2 to 10, default 3); ``outputExpression`` gives each
  item's output index: a number, a field name, or ``{{json.field}}``; any other template counts as 0.
  An index that is not a whole number in range drops the item.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from nodedrop_rq.workflow.js import UNDEFINED
from nodedrop_rq.workflow.js.values import to_text, truthy
from nodedrop_rq.workflow.node_type import NodeContext, Outputs
from nodedrop_rq.workflow.nodes.conditions import _plain_path, compare, field_value, js_number
from nodedrop_rq.workflow.nodes.items import data_of

_FIELD_TEMPLATE = re.compile(r"\{\{json\.([\w.]+)\}\}")


def is_current(parameters: Mapping[str, Any]) -> bool:
    """True for the current format; the format from before December 2025 has ``outputs`` instead."""
    if "outputs" in parameters and "rules" not in parameters:
        return False
    return "rules" in parameters or "outputExpression" in parameters or "outputsCount" in parameters


def outputs_count(mode: Any, outputs_count: Any, rules: Any) -> int:
    if mode == "expression":
        number = js_number(outputs_count)
        return int(max(2, min(10, number if truthy(number) else 3)))
    return len(rules) if isinstance(rules, list) else 0


def declared_outputs(parameters: Mapping[str, Any]) -> int:
    """Outputs a connection may use, from the raw parameters (validation, before anything resolves)."""
    count = parameters.get("outputsCount", 3)
    if isinstance(count, str):
        count = 10  # an expression: any index up to NodeDrop's maximum
    return outputs_count(parameters.get("mode"), count, parameters.get("rules"))


def route(ctx: NodeContext) -> Outputs:
    mode = ctx.parameter("mode", "rules")
    rules = ctx.parameter("rules", []) if mode != "expression" else []
    count = outputs_count(mode, ctx.parameter("outputsCount", 3) if mode == "expression" else None, rules)
    outputs: list[list[dict]] = [[] for _ in range(count)]
    items = [data_of(item) for item in ctx.items]
    if mode == "expression":
        expression = ctx.parameter("outputExpression", "")
        for data in items:
            index = _output_index(data, expression)
            if index is not None and 0 <= index < count:
                outputs[index].append({"json": data})
    else:
        for data in items:
            for index, rule in enumerate(rules if isinstance(rules, list) else []):
                body = rule.get("values") or rule if isinstance(rule, dict) else {}
                condition = body.get("condition") if isinstance(body, dict) else None
                if not isinstance(condition, dict) or not truthy(condition.get("key", UNDEFINED)):
                    continue
                value = field_value(data, condition["key"])
                if compare(condition.get("expression"), value, condition.get("value", UNDEFINED), ctx.limits.js):
                    outputs[index].append({"json": data})
                    break
    return {f"output{i}": routed for i, routed in enumerate(outputs)}


def _output_index(data: Any, expression: Any) -> int | None:
    # NodeDrop calls expression.includes(); a number or boolean (what a resolved {{ }} may give) fails
    # there with a TypeError; its text is used instead (README, deliberate differences).
    text = expression if isinstance(expression, str) else to_text(expression)
    if "{{" in text and "}}" in text:
        match = _FIELD_TEMPLATE.search(text)
        number = js_number(_plain_path(data, match.group(1))) if match else js_number(text)
        number = number if truthy(number) else 0.0
    else:
        number = js_number(text)
        if math.isnan(number):
            found = js_number(_plain_path(data, text))
            number = found if truthy(found) else 0.0
    # outputs[1.5] is undefined in NodeDrop and pushing to it throws, which drops the item.
    return int(number) if math.isfinite(number) and number == int(number) else None
