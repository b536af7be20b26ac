"""Values expressions can see besides plain JSON: ``$node``, ``$input``, ``Math``, ``JSON``.

Expressions reach attributes only through :func:`nodedrop_rq.workflow.expressions.safe_attribute`,
which lets an :class:`Exposed` object decide what each name means. Nothing here hands out Python
objects with attributes of their own, so there is no path from an expression to ``__class__`` & co.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any


class ExpressionError(ValueError):
    """An expression is refused or fails; the message says which and why."""


MAX_TEXT_LENGTH = 100_000


def to_text(value: Any) -> str:
    """How a value appears inside text, following JavaScript where NodeDrop users expect it."""
    value = to_plain(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return str(value)


def to_plain(value: Any) -> Any:
    """JSON data for an expression's result: helper objects become their data, tuples lists."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, Exposed):
        return value.to_plain()
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return [to_plain(v) for v in sorted(value, key=repr)]
    if callable(value):
        raise ExpressionError("the expression gives a function; call it with ()")
    return str(value)


class Exposed:
    """Base of the helper objects; subclasses answer attribute and index access themselves."""

    label = "value"

    def expr_attr(self, name: str) -> Any:
        raise ExpressionError(f"{self.label} has no attribute '{name}'")

    def expr_item(self, key: Any) -> Any:
        raise ExpressionError(f"{self.label} cannot be indexed")

    def to_plain(self) -> Any:
        raise ExpressionError(f"{self.label} is not a value")


def merged_json(items: list[dict]) -> dict:
    """NodeDrop's ``$node["X"]`` data: the items' json merged, the first non-null value of a key wins."""
    if len(items) == 1:
        return items[0].get("json") or {}
    merged: dict = {}
    for item in items:
        data = item.get("json")
        if not isinstance(data, dict):
            continue
        for key, value in data.items():
            if merged.get(key) is None:
                merged[key] = value
    return merged



# `.all()`, `.first()`, `.last()` of $node["X"] and $input, as NodeDrop's expressions offer them.
_ITEM_ACCESSORS: dict[str, Callable[[list[dict]], Callable[[], Any]]] = {
    "all": lambda items: lambda: items,
    "first": lambda items: lambda: items[0] if items else None,
    "last": lambda items: lambda: items[-1] if items else None,
}

@dataclass
class NodeData(Exposed):
    """``$node["Name"]``: what an earlier node produced."""

    name: str
    executed: bool
    items: list[dict] = field(default_factory=list)
    label = "$node[...]"

    @cached_property
    def merged(self) -> dict:
        return merged_json(self.items)

    def expr_attr(self, name: str) -> Any:
        if name == "json":
            return self.merged
        if name == "items":
            return self.items
        if name in _ITEM_ACCESSORS:
            return _ITEM_ACCESSORS[name](self.items)
        if name == "isExecuted":
            return self.executed
        # NodeDrop resolves $node["X"].field like $node["X"].json.field.
        return self.merged.get(name)

    def expr_item(self, key: Any) -> Any:
        if isinstance(key, int) and not isinstance(key, bool):
            return self.items[key] if -len(self.items) <= key < len(self.items) else None
        if isinstance(key, str):
            return self.expr_attr(key) if key in ("json", "items") else self.merged.get(key)
        raise ExpressionError("$node[...] takes a field name or an item index")

    def to_plain(self) -> Any:
        return to_plain(self.merged)


@dataclass
class NodeLookup(Exposed):
    """``$node``: earlier nodes by name (or id)."""

    find: Callable[[str], NodeData]
    label = "$node"

    def expr_item(self, key: Any) -> Any:
        if not isinstance(key, str):
            raise ExpressionError('$node takes a node name: $node["Name"]')
        return self.find(key)

    def expr_attr(self, name: str) -> Any:
        return self.find(name)


@dataclass
class InputData(Exposed):
    """``$input``: the items this node received."""

    items: list[dict]
    index: int = 0
    label = "$input"

    def expr_attr(self, name: str) -> Any:
        if name in _ITEM_ACCESSORS:
            return _ITEM_ACCESSORS[name](self.items)
        if name == "item":
            return self.items[self.index] if self.index < len(self.items) else None
        if name in ("length", "count"):
            return len(self.items)
        return super().expr_attr(name)

    def expr_item(self, key: Any) -> Any:
        if isinstance(key, int) and not isinstance(key, bool):
            return self.items[key] if -len(self.items) <= key < len(self.items) else None
        raise ExpressionError("$input[...] takes an item index")

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[dict]:
        return iter(self.items)

    def to_plain(self) -> Any:
        return to_plain(self.items)


def _number(value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ExpressionError(f"expected a number, got {type(value).__name__}")
    return value


def _js_round(value: Any) -> int:
    # JavaScript rounds halves up (Math.round(2.5) == 3); Python rounds them to even.
    return math.floor(_number(value) + 0.5)


@dataclass
class MathHelpers(Exposed):
    """``Math.floor(x)`` & co, for expressions written for NodeDrop's JavaScript evaluator."""

    label = "Math"

    def expr_attr(self, name: str) -> Any:
        helpers: dict[str, Any] = {
            "floor": lambda x: math.floor(_number(x)),
            "ceil": lambda x: math.ceil(_number(x)),
            "round": _js_round,
            "trunc": lambda x: math.trunc(_number(x)),
            "abs": lambda x: abs(_number(x)),
            "sign": lambda x: (_number(x) > 0) - (_number(x) < 0),
            "sqrt": lambda x: math.sqrt(_number(x)),
            "min": lambda *xs: min(_number(x) for x in xs),
            "max": lambda *xs: max(_number(x) for x in xs),
            "PI": math.pi,
            "E": math.e,
        }
        if name in helpers:
            return helpers[name]
        return super().expr_attr(name)


def _stringify(value: Any, _replacer: Any = None, indent: Any = None) -> str:
    spaces = indent if isinstance(indent, int) and not isinstance(indent, bool) else None
    if spaces is not None:
        spaces = max(0, min(spaces, 10))
    separators = (",", ":") if spaces is None else (",", ": ")
    return json.dumps(to_plain(value), ensure_ascii=False, indent=spaces, separators=separators)


def _parse(text: Any) -> Any:
    if not isinstance(text, str):
        raise ExpressionError("JSON.parse takes a string")
    if len(text) > 10 * MAX_TEXT_LENGTH:
        raise ExpressionError("JSON.parse: text too long")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExpressionError(f"JSON.parse: {exc}") from None


@dataclass
class JsonHelpers(Exposed):
    """``JSON.stringify(x)`` / ``JSON.parse(s)``."""

    label = "JSON"

    def expr_attr(self, name: str) -> Any:
        if name == "stringify":
            return _stringify
        if name == "parse":
            return _parse
        return super().expr_attr(name)
