"""NodeDrop's parameter resolution: ``{{ ... }}`` templates, evaluated as NodeDrop's backend does
(``@nodedrop/utils`` ``resolveValue``/``evaluateExpressionPath``, and the parameter pipeline of
``SecureExecutionService.createSecureContext``).

- A parameter is resolved once per node run. ``$json`` is the input item's data, or the *array* of all
  items' data when the node received more than one; ``$node["Name or id"]`` is the data of a node that
  already ran (its items' fields merged when it output several); ``$execution`` is ``{id, mode}``.
  ``$vars`` and ``$workflow`` are empty (NodeDrop's backend puts neither in the context); ``$itemIndex``
  is 0; ``$now``, ``$today``, ``DateTime`` and the helpers ``isExecuted``/``hasData``/``getNodeData``/
  ``firstExecuted`` exist inside JavaScript.
- Text that looks like arithmetic, a call or a ternary (it holds one of ``( + - * / ?`` ...) is
  JavaScript, run in the sandbox; anything else is a field path (``$json.a.b``, ``json.a``,
  ``$json[0].a``, ``$node["X"].a``, or a bare ``a``), read without JavaScript.
- What does not resolve (a missing field, ``undefined``/``null``, a JavaScript error) leaves the
  ``{{ ... }}`` text in place. A whole-parameter expression keeps its value's type; in a template with
  text around it, objects are JSON and everything else ``String(value)``.
- A whole parameter ``{{x}}`` without any operator, ``json.``, ``$node``, ``$item`` or ``$workflow`` is
  the literal text ``x``; a leading ``=`` (the editor's expression marker) is dropped; text with ``%`` is
  URL-decoded first; keys ``__proto__``, ``constructor`` and ``prototype`` are removed.

JavaScript that runs past the time, memory or stack limit fails the node (NodeDrop would leave the text).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_to_bytes

from nodedrop_rq.workflow.js import UNDEFINED, JsError, JsLimitExceeded, JsLimits, thread_sandbox
from nodedrop_rq.workflow.js.values import member, stringify, to_text, truthy

__all__ = ["ExpressionError", "Expressions", "find_expressions", "has_expression", "node_data"]

_BODY = r"((?:[^{}]|\{(?:[^{}]|\{[^{}]*\})*\})*)"
_TEMPLATE = re.compile(r"\{\{" + _BODY + r"\}\}")
_WRAPPED = re.compile(r"\{\{([^\n\r\u2028\u2029]+)\}\}")
_SYNTAX = re.compile(r"[+\-*%()\[\]<>=!&|]")
_COMPLEX_MARKS = ("(", "+", "-", "*", "/", "?", "Math.", "JSON.", "Object.", "Array.", "DateTime.")
_NODE_REF = re.compile(r"\$node\[[\"']([^\"']+)[\"']\](?:\.json)?(?:\.(.+))?", re.DOTALL)
_ARRAY_REF = re.compile(r"\$?json\[(\d+)\](?:\.(.+))?", re.DOTALL)
_INDEX = re.compile(r"\[(\d+)\]")
_DANGEROUS_KEYS = frozenset({"__proto__", "constructor", "prototype"})
# NodeDrop refuses (and so leaves unresolved) JavaScript expressions matching these.
_FORBIDDEN = re.compile(
    r"constructor\s*\.\s*constructor|this\s*\.\s*constructor|\bprocess\b|\brequire\s*\(|\bimport\s*\("
    r"|\beval\s*\(|\bFunction\s*\(|__proto__|\.prototype\b|\bglobalThis\b|\bglobal\b|\bBun\b",
    re.IGNORECASE,
)
_MAX_JS_LENGTH = 10_000
_NODE_MENTIONS = ("$node", "isExecuted", "hasData", "getNodeData", "firstExecuted")


def find_expressions(text: str) -> list[str]:
    """The text between the braces of each ``{{ ... }}`` NodeDrop recognises in ``text``."""
    return [m.group(1) for m in _TEMPLATE.finditer(text)]


def has_expression(value: Any) -> bool:
    return isinstance(value, str) and _TEMPLATE.search(value) is not None


class ExpressionError(Exception):
    """An expression could not be evaluated within the sandbox's limits."""


def node_data(items: list[dict]) -> Any:
    """What ``$node["X"]`` is for a node that output these items (NodeDrop's merge of their fields)."""
    if not items:
        return {"main": []}
    if len(items) == 1:
        data = items[0].get("json")
        return data if truthy(data) else items[0]
    merged: dict[str, Any] = {}
    for item in items:
        data = item.get("json")
        if isinstance(data, dict):
            for key, value in data.items():
                if merged.get(key) is None:
                    merged[key] = value
    if merged:
        return merged
    first = items[0].get("json")
    return first if truthy(first) else items[0]


def resolve_path(data: Any, path: str) -> Any:
    if not isinstance(data, (dict, list)):
        return UNDEFINED
    current = data
    for key in _INDEX.sub(r".\1", path).split("."):
        if current is UNDEFINED or current is None:
            return UNDEFINED
        current = member(current, key)
    return current


def sanitize(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: sanitize(v) for k, v in value.items() if k not in _DANGEROUS_KEYS}
    if isinstance(value, list):
        return [sanitize(v) for v in value]
    return value


def unwrap_simple(value: Any) -> Any:
    if not isinstance(value, str) or "$vars" in value or "$local" in value:
        return value
    match = _WRAPPED.fullmatch(value)
    if match is None:
        return value
    inner = match.group(1).strip()
    if (_SYNTAX.search(inner) or "{{" in inner or "json." in inner or "$item" in inner
            or "$node" in inner or "$workflow" in inner):
        return value
    return inner


def prepared(value: Any) -> Any:
    """What NodeDrop does to a parameter before resolving it, in its order: drop dangerous keys, unwrap a
    whole ``{{x}}`` without expression syntax to ``x``, strip the ``=`` marker from every string."""
    if isinstance(value, str) and value.startswith("{{"):
        value = unwrap_simple(value)
    return _stripped(value)


def _stripped(value: Any) -> Any:
    if isinstance(value, str):
        return value[1:] if value.startswith("=") else value
    if isinstance(value, list):
        return [_stripped(v) for v in value]
    if isinstance(value, dict):
        return {k: _stripped(v) for k, v in value.items() if k not in _DANGEROUS_KEYS}
    return value


def _url_decoded(text: str) -> str:
    if "%" not in text:
        return text
    if re.search(r"%(?![0-9A-Fa-f]{2})", text):
        return text  # decodeURIComponent throws on a lone %, and NodeDrop then keeps the text
    try:
        return unquote_to_bytes(text).decode("utf-8")
    except UnicodeDecodeError:
        return text


class Expressions:
    """Resolves one node's parameters. ``items`` are its input items; ``nodes`` maps node ids and names
    to :func:`node_data` of the nodes that already ran."""

    def __init__(
        self,
        items: list[dict],
        *,
        nodes: Mapping[str, Any] | None = None,
        execution: Mapping[str, Any] | None = None,
        js_limits: JsLimits | None = None,
        max_length: int = 2000,
    ) -> None:
        self.data = [item.get("json") if isinstance(item, dict) and "json" in item else item for item in items]
        self.nodes = dict(nodes or {})
        self.execution = dict(execution or {"id": None, "mode": "manual"})
        self.js_limits = js_limits or JsLimits()
        self.max_length = max_length
        # NodeDrop's context.$json: all items when there are several, else the only one (or nothing).
        self.context_json: Any = self.data if len(self.data) > 1 else (self.data[0] if self.data else UNDEFINED)
        self._texts: dict[str, str] = {}

    # -- the parameter pipeline --------------------------------------------------------------------

    def parameter(self, value: Any, item_index: int | None = None) -> Any:
        """A parameter as ``getNodeParameter`` returns it. With ``item_index`` (custom nodes only),
        ``$json`` is that item's data instead of NodeDrop's context."""
        value = prepared(value)
        item = self.data[item_index] if item_index is not None and item_index < len(self.data) else None
        return self.resolve(value, item if item_index is not None else (self.data[0] if self.data else {}),
                            per_item=item_index is not None)

    def resolve(self, value: Any, item: Any, *, per_item: bool = False) -> Any:
        if isinstance(value, str):
            return self.resolve_text(value, item, per_item=per_item) if "{{" in value else value
        if isinstance(value, list):
            return [self.resolve(v, item, per_item=per_item) for v in value]
        if isinstance(value, dict):
            return {k: self.resolve(v, item, per_item=per_item) for k, v in value.items()}
        return value

    def resolve_text(self, text: str, item: Any, *, per_item: bool = False) -> Any:
        text = _url_decoded(text)
        whole = _TEMPLATE.fullmatch(text)
        if whole is not None:
            result = self.evaluate(whole.group(1), item, per_item=per_item)
            if result is not UNDEFINED:
                return result

        def replace(match: re.Match[str]) -> str:
            result = self.evaluate(match.group(1), item, per_item=per_item)
            return match.group(0) if result is UNDEFINED else to_text(result)

        return _TEMPLATE.sub(replace, text)

    # -- one {{ ... }} -----------------------------------------------------------------------------

    def evaluate(self, source: str, item: Any, *, per_item: bool = False) -> Any:
        """The value of the text between the braces, or UNDEFINED when NodeDrop would not resolve it."""
        path = source.strip()
        if len(path) > self.max_length:
            raise ExpressionError(f"expression {{{{{path[:60]}...}}}} is longer than {self.max_length} characters")
        source_data = item if per_item else (self.context_json if self.context_json is not UNDEFINED else item)
        if any(mark in path for mark in _COMPLEX_MARKS) or path in ("$now", "$today"):
            result = self._javascript(path, source_data)
            if result is not UNDEFINED:
                return result
        match = _NODE_REF.fullmatch(path)
        if match is not None:
            data = self.nodes.get(match.group(1), UNDEFINED)
            if not truthy(data):
                return UNDEFINED
            return resolve_path(data, match.group(2)) if match.group(2) else data
        for prefix, context in (("$vars.", {}), ("$workflow.", {}), ("$execution.", self.execution)):
            if path.startswith(prefix) and len(path) > len(prefix):
                return context.get(path[len(prefix):], UNDEFINED)
        match = _ARRAY_REF.fullmatch(path)
        if match is not None:
            if not isinstance(source_data, list):
                return UNDEFINED
            index = int(match.group(1))
            if index >= len(source_data):
                return UNDEFINED
            target = source_data[index]
            return resolve_path(target, match.group(2)) if match.group(2) else target
        if path in ("$json", "json"):
            return source_data
        for prefix in ("$json.", "json."):
            if path.startswith(prefix):
                path = path[len(prefix):]
                break
        return resolve_path(source_data, path)

    def _text(self, key: str, value: Any) -> str:
        text = self._texts.get(key)
        if text is None:
            text = self._texts[key] = stringify({} if value is UNDEFINED or value is None else value)
        return text

    def _javascript(self, expression: str, source_data: Any) -> Any:
        if len(expression) > _MAX_JS_LENGTH or _FORBIDDEN.search(expression):
            return UNDEFINED
        json_text = (self._text("json", source_data) if source_data is self.context_json
                     else stringify({} if source_data is UNDEFINED or source_data is None else source_data))
        node_text = self._text("node", self.nodes) if any(m in expression for m in _NODE_MENTIONS) else None
        try:
            return thread_sandbox(self.js_limits).evaluate(
                expression, json_text, node_text, self._text("execution", self.execution))
        except JsLimitExceeded as exc:
            raise ExpressionError(f"expression {{{{ {expression} }}}}: {exc}") from None
        except JsError:
            return UNDEFINED  # NodeDrop swallows the error and leaves the text
