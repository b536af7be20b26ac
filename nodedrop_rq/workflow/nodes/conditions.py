"""Condition rows ``{"key", "expression", "value"}`` shared by ``ifElse``/``if`` and ``switch``.

``key`` names the field to test (``status``, ``user.address.city``, ``items[0].id``) or is
``{{json.field}}``; any other expression in it is evaluated and its value tested. ``value`` is the
value to compare with (expressions allowed). Comparisons follow NodeDrop's JavaScript: equality and
text operations compare ``String(x)``, larger/smaller compare ``Number(x)``.
"""

from __future__ import annotations

import math
import re
from typing import Any

from nodedrop_rq.workflow.expression_values import to_text
from nodedrop_rq.workflow.node_type import NodeContext
from nodedrop_rq.workflow.nodes.items import MISSING, data_of, get_path
from nodedrop_rq.workflow.params import Param, any_value, obj, options
from nodedrop_rq.workflow.templates import has_expression

IF_OPERATIONS = (
    "equal",
    "notEqual",
    "larger",
    "largerEqual",
    "smaller",
    "smallerEqual",
    "contains",
    "notContains",
    "startsWith",
    "endsWith",
    "isEmpty",
    "isNotEmpty",
    "regex",
)
SWITCH_OPERATIONS = (
    "equals",
    "notEquals",
    "contains",
    "notContains",
    "startsWith",
    "endsWith",
    "greaterThan",
    "lessThan",
    "greaterOrEqual",
    "lessOrEqual",
    "isEmpty",
    "isNotEmpty",
    "regex",
    # Accepted by NodeDrop's Switch as aliases.
    "equal",
    "notEqual",
    "larger",
    "smaller",
    "largerEqual",
    "smallerEqual",
)
_ALIASES = {
    "equals": "equal",
    "notEquals": "notEqual",
    "greaterThan": "larger",
    "lessThan": "smaller",
    "greaterOrEqual": "largerEqual",
    "lessOrEqual": "smallerEqual",
}
MAX_PATTERN_LENGTH = 1000
MAX_REGEX_SUBJECT = 100_000

# A key written as {{json.path}} / {{$json.path}} is a path into the item (NodeDrop's own matching).
_TEMPLATE_KEY = re.compile(r"^\s*=?\{\{\s*\$?json(?:\[\d+\])?\.([\w.\[\]]+)\s*\}\}\s*$")


def condition_spec(operations: tuple[str, ...]) -> Param:
    return obj({"key": any_value(), "expression": options(*operations), "value": any_value()})


def js_string(value: Any) -> str:
    return "" if value is MISSING else to_text(value)


def js_number(value: Any) -> float:
    if value is MISSING or value is None:
        return math.nan if value is MISSING else 0.0
    if isinstance(value, (bool, int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return 0.0
        try:
            return float(text)
        except ValueError:
            return math.nan
    return math.nan


def pattern_problem(pattern: Any) -> str | None:
    if not isinstance(pattern, str) or has_expression(pattern):
        return None
    if len(pattern) > MAX_PATTERN_LENGTH:
        return f"regex pattern is longer than {MAX_PATTERN_LENGTH} characters"
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"invalid regex pattern {pattern!r}: {exc}"
    return None


def operand(ctx: NodeContext, raw_key: Any, item_index: int, *, literal_fallback: bool) -> Any:
    """The value a condition tests for one item (see the module docstring)."""
    data = data_of(ctx.items[item_index]) if item_index < len(ctx.items) else {}
    if not isinstance(raw_key, str):
        return raw_key
    match = _TEMPLATE_KEY.match(raw_key)
    if match:
        return get_path(data, match.group(1))
    if has_expression(raw_key):
        return ctx.render(raw_key, item_index=item_index, label="condition key")
    value = get_path(data, raw_key)
    # IfElse treats a key that is no field (and no path) as a literal value.
    if value is MISSING and literal_fallback and "." not in raw_key:
        return raw_key
    return value


def evaluate(operation: str, left: Any, right: Any, *, switch: bool = False) -> bool:
    """One comparison. ``switch`` selects the Switch node's variants (falsy fields count as empty)."""
    operation = _ALIASES.get(operation, operation)
    # Switch stringifies `fieldValue || ""`, so 0 and false count as empty there.
    falsy = left is MISSING or left in (None, "", 0, False)
    left_text = "" if switch and falsy else js_string(left)
    right_text = js_string(right)
    if operation == "equal":
        return left_text == right_text
    if operation == "notEqual":
        return left_text != right_text
    if operation in ("larger", "largerEqual", "smaller", "smallerEqual"):
        a, b = js_number(left), js_number(right)
        if math.isnan(a) or math.isnan(b):
            return False
        return {"larger": a > b, "largerEqual": a >= b, "smaller": a < b, "smallerEqual": a <= b}[operation]
    if operation == "contains":
        return right_text in left_text
    if operation == "notContains":
        return right_text not in left_text
    if operation == "startsWith":
        return left_text.startswith(right_text)
    if operation == "endsWith":
        return left_text.endswith(right_text)
    if operation == "isEmpty":
        return falsy if switch else left_text.strip() == ""
    if operation == "isNotEmpty":
        return (not falsy) if switch else left_text.strip() != ""
    if operation == "regex":
        problem = pattern_problem(right_text)
        if problem:
            if switch:
                return False
            raise ValueError(problem)
        return re.search(right_text, left_text[:MAX_REGEX_SUBJECT]) is not None
    raise ValueError(f"Unknown operation: {operation}")


def condition_of(row: Any, name: str = "condition") -> dict | None:
    """A condition from a row; NodeDrop nests rows as ``{"values": {"condition": ...}}`` or not."""
    if not isinstance(row, dict):
        return None
    nested = row.get("values")
    if isinstance(nested, dict) and isinstance(nested.get(name), dict):
        return nested[name]
    found = row.get(name)
    return found if isinstance(found, dict) else None


def test_condition(ctx: NodeContext, condition: dict, item_index: int, *, switch: bool = False) -> bool:
    left = operand(ctx, condition.get("key", ""), item_index, literal_fallback=not switch)
    right = ctx.render(condition.get("value", ""), item_index=item_index, label="condition value")
    return evaluate(str(condition.get("expression", "equal")), left, right, switch=switch)
