"""Condition rows ``{"key", "expression", "value"}`` shared by ``ifElse`` and ``switch``.

:func:`field_value` and :func:`compare` are NodeDrop's current IfElse/Switch logic; :func:`test_condition`
and :func:`evaluate` are the Switch format from before December 2025 (``outputs`` rules).

``key`` names the field to test (``status``, ``user.address.city``, ``items[0].id``) or is
``{{json.field}}``; any other expression in it is evaluated and its value tested. ``value`` is the
value to compare with (expressions allowed). Comparisons follow NodeDrop's JavaScript: equality and
text operations compare ``String(x)``, larger/smaller compare ``Number(x)``.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from nodedrop_rq.workflow.expressions import has_expression
from nodedrop_rq.workflow.js import UNDEFINED, JsError, JsLimitExceeded, JsLimits, thread_sandbox
from nodedrop_rq.workflow.js.values import member, to_text
from nodedrop_rq.workflow.node_type import NodeContext
from nodedrop_rq.workflow.nodes.items import MISSING, data_of, get_path
from nodedrop_rq.workflow.params import Param, any_value, obj, options

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

# The pattern NodeDrop's IfElse and Switch look for in a key (no spaces, no $).
_NODE_TEMPLATE_KEY = re.compile(r"\{\{json(?:\[\d+\])?\.([\w.\[\]]+)\}\}")
# Legacy switch format: a key written as {{json.path}} / {{$json.path}} is a path into the item.
_TEMPLATE_KEY = re.compile(r"^\s*=?\{\{\s*\$?json(?:\[\d+\])?\.([\w.\[\]]+)\s*\}\}\s*$")


def condition_spec(operations: tuple[str, ...]) -> Param:
    return obj({"key": any_value(), "expression": options(*operations), "value": any_value()})


def js_string(value: Any) -> str:
    return "" if value is MISSING else to_text(value)


_JS_DECIMAL = re.compile(r"[+-]?(Infinity|(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)")
_JS_RADIX = re.compile(r"0([xX][0-9a-fA-F]+|[oO][0-7]+|[bB][01]+)")


def js_number(value: Any) -> float:
    """JavaScript's ``Number(value)``."""
    if value is MISSING or value is UNDEFINED:
        return math.nan
    if value is None:
        return 0.0
    if isinstance(value, (bool, int, float)):
        return float(value)
    if isinstance(value, list):
        return 0.0 if not value else js_number(to_text(value[0])) if len(value) == 1 else math.nan
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return 0.0
        if _JS_DECIMAL.fullmatch(text):
            return float(text.replace("Infinity", "inf"))
        if _JS_RADIX.fullmatch(text):
            return float(int(text, 0))
        return math.nan
    return math.nan


def field_value(item: Any, key: Any) -> Any:
    """What IfElse and Switch (IfElse.node.ts / Switch.node.ts, their inner ``resolveValue``) test for a
    condition key that ``getNodeParameter`` already resolved: a ``{{json.path}}`` left in it is read from
    the item, a field name is read too, and anything else that is no field is the literal text."""
    if not isinstance(key, str):
        # NodeDrop calls key.match() here and fails with a TypeError when the resolved key is a number or
        # a boolean; the value itself is the sensible reading (README, deliberate differences).
        return key
    match = _NODE_TEMPLATE_KEY.search(key)
    if match:
        return _plain_path(item, match.group(1))
    resolved = _plain_path(item, key)
    if resolved is UNDEFINED and "." not in key:
        return key
    return resolved


def _plain_path(item: Any, path: str) -> Any:
    if not path:
        return UNDEFINED
    current = item
    for key in re.sub(r"\[(\d+)\]", r".\1", path).split("."):
        if current is UNDEFINED or current is None:
            return UNDEFINED
        current = member(current, key)
    return current


def compare(operation: Any, value1: Any, value2: Any, js_limits: JsLimits | None = None) -> bool:
    """NodeDrop's ``evaluateSingleCondition`` (IfElse.node.ts, Switch.node.ts)."""
    left = "" if value1 is UNDEFINED or value1 is None else to_text(value1)
    right = "" if value2 is UNDEFINED or value2 is None else to_text(value2)
    if operation == "equal":
        return left == right
    if operation == "notEqual":
        return left != right
    if operation in ("larger", "largerEqual", "smaller", "smallerEqual"):
        a, b = js_number(value1), js_number(value2)
        if math.isnan(a) or math.isnan(b):
            return False
        return {"larger": a > b, "largerEqual": a >= b, "smaller": a < b, "smallerEqual": a <= b}[operation]
    if operation == "contains":
        return right in left
    if operation == "notContains":
        return right not in left
    if operation == "startsWith":
        return left.startswith(right)
    if operation == "endsWith":
        return left.endswith(right)
    if operation == "isEmpty":
        return not left or _js_trim(left) == ""
    if operation == "isNotEmpty":
        return bool(left) and _js_trim(left) != ""
    if operation == "regex":
        return js_regex_test(right, left, js_limits or JsLimits())
    raise ValueError(f"Unknown operation: {to_text(operation)}")


def _js_trim(text: str) -> str:
    return text.strip(" \t\n\r\v\f\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
                      "\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff")


def js_regex_test(pattern: str, subject: str, js_limits: JsLimits) -> bool:
    """``new RegExp(pattern).test(subject)``, run in the JavaScript sandbox so the dialect is JS's (and
    a pattern that backtracks for ever stops at the time limit)."""
    sandbox = thread_sandbox(js_limits)
    try:
        result = sandbox.evaluate("new RegExp($json.p).test($json.s)",
                                  json.dumps({"p": pattern, "s": subject[:MAX_REGEX_SUBJECT]}), None, "{}")
    except JsLimitExceeded as exc:
        raise ValueError(f"regex {pattern!r}: {exc}") from None
    except JsError:
        raise ValueError(f"Invalid regex pattern: {pattern}") from None
    return result is True


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
