"""Safe evaluation of ``{{ ... }}`` expressions.

Expressions are evaluated by simpleeval (never ``eval``/``exec``) over Python syntax, with the
JavaScript spellings NodeDrop users write translated first: ``$json`` & co, ``===``/``!==``, ``&&``,
``||``, ``!``, ``true``/``false``/``null``/``undefined``. Available inside an expression:

- ``$json`` / ``json``: the current item's data; ``$json.a.b`` and ``$json["a"]`` both work, a missing
  field is ``None``. A bare name that is not one of the names below is a field of ``$json``
  (NodeDrop resolves ``{{status}}`` like ``{{$json.status}}``).
- ``$input.all()``, ``$input.first()``, ``$input.last()``, ``$input.item``: this node's input items.
- ``$node["Name"].json.field`` (or ``$node["Name"].field``; a node id works too), ``.all()``,
  ``.first()``, ``.isExecuted``.
- ``$now`` (ISO timestamp, UTC), ``$today`` (YYYY-MM-DD), ``$itemIndex``, ``$workflow.name``,
  ``$execution.id``, ``$execution.mode``.
- Functions: len str int float bool abs round min max sum sorted list dict tuple set, JavaScript's
  String Number parseInt parseFloat, ``Math.*``, ``JSON.stringify``/``JSON.parse``, NodeDrop's
  isExecuted(name) hasData(name) getNodeData(name, default) firstExecuted([names]).
- Methods of strings (upper lower strip split replace startswith ... and toUpperCase toLowerCase trim
  includes startsWith endsWith indexOf slice), lists (includes indexOf join slice pluck), dicts (keys values
  items get), numbers (toFixed), and ``.length``.

Refused: names or attributes starting with ``_`` (no ``__class__`` walks), ``import``, lambdas,
comprehensions, f-strings and ``%``-formatting, repeating lists with ``*``, and results that would be
huge (``9**9**9``, ``"x" * 10**9``, ...).
"""

from __future__ import annotations

import ast
import keyword
from collections.abc import Callable
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from simpleeval import (
    EvalWithCompoundTypes,
    FunctionNotDefined,
    InvalidExpression,
    NameNotDefined,
)

from nodedrop_rq.workflow.expression_guards import BASE_FUNCTIONS, OPERATORS, safe_attribute, safe_index
from nodedrop_rq.workflow.expression_values import (
    ExpressionError,
    InputData,
    JsonHelpers,
    MathHelpers,
    NodeData,
    NodeLookup,
    to_plain,
    to_text,
)
from nodedrop_rq.workflow.templates import find_segments, single_expression, strip_marker

__all__ = ["ExpressionError", "Expressions", "check_expression", "evaluate_standalone"]

DOLLAR = "dollar_"
MAX_NESTING = 100

_JS_CONSTANTS = {"true": "True", "false": "False", "null": "None", "undefined": "None"}
_REFUSED_NODES: dict[type, str] = {
    ast.Lambda: "lambda functions",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "generator expressions",
    ast.NamedExpr: "assignments (:=)",
    ast.JoinedStr: "f-strings (put text around {{ }} instead)",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.Starred: "* unpacking",
}


def _display(text: str) -> str:
    """Error messages show the user's spelling (``$json``), not the translated one."""
    return text.replace(DOLLAR, "$")


def _last_char(out: list[str]) -> str:
    for chunk in reversed(out):
        stripped = chunk.rstrip()
        if stripped:
            return stripped[-1]
    return ""


def _drop_last_dot(out: list[str]) -> None:
    while out and not out[-1].strip():
        out.pop()
    out[-1] = out[-1].rstrip()[:-1]


def translate(source: str) -> str:
    """Rewrite the JavaScript spellings NodeDrop users write into the Python syntax simpleeval reads.

    String literals are copied untouched.
    """
    out: list[str] = []
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if c in "'\"":
            j = i + 1
            while j < n and source[j] != c:
                j += 2 if source[j] == "\\" else 1
            out.append(source[i : j + 1])
            i = j + 1
            continue
        if c == "`":
            raise ExpressionError("template literals (`...`) are not supported; use text around {{ }}")
        for js, py in (("===", "=="), ("!==", "!="), ("!=", "!="), ("&&", " and "), ("||", " or ")):
            if source.startswith(js, i):
                out.append(py)
                i += len(js)
                break
        else:
            if c == "!":
                out.append(" not ")
                i += 1
            elif c == "$":
                j = i + 1
                while j < n and (source[j].isalnum() or source[j] == "_"):
                    j += 1
                if j == i + 1:
                    raise ExpressionError("'$' must start a name such as $json")
                out.append(DOLLAR + source[i + 1 : j])
                i = j
            elif c.isalpha() or c == "_":
                j = i
                while j < n and (source[j].isalnum() or source[j] == "_"):
                    j += 1
                word = source[i:j]
                if word == "import":
                    raise ExpressionError("'import' is not allowed in expressions")
                if _last_char(out) != ".":
                    out.append(_JS_CONSTANTS.get(word, word))
                elif keyword.iskeyword(word):
                    # `$json.class` is fine in JavaScript but a syntax error in Python: index instead.
                    _drop_last_dot(out)
                    out.append(f'["{word}"]')
                else:
                    out.append(word)
                i = j
            elif c.isdigit():
                j = i
                while j < n and (source[j].isalnum() or source[j] == "."):
                    j += 1
                out.append(source[i:j])
                i = j
            else:
                out.append(c)
                i += 1
    return "".join(out)


@lru_cache(maxsize=4096)
def _compile(source: str) -> ast.expr:
    """Translate, parse and vet one expression. Raises ExpressionError with the reason."""
    if not source.strip():
        raise ExpressionError("empty expression")
    if "__" in source:
        raise ExpressionError("'__' (dunder) names are not allowed in expressions")
    python = translate(source)
    try:
        tree = ast.parse(python.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"invalid syntax: {_display(exc.msg)}") from None
    except (ValueError, RecursionError, MemoryError):
        raise ExpressionError("expression is too complex") from None
    # Evaluation recurses once per level: refuse deep nesting here rather than fail half-way.
    depths = [(tree, 0)]
    while depths:
        current, depth = depths.pop()
        if depth > MAX_NESTING:
            raise ExpressionError(f"expression is nested more than {MAX_NESTING} levels deep")
        depths.extend((child, depth + 1) for child in ast.iter_child_nodes(current))
    for node in ast.walk(tree):
        refused = _REFUSED_NODES.get(type(node))
        if refused:
            raise ExpressionError(f"{refused} are not allowed in expressions")
        if isinstance(node, ast.Name) and node.id.startswith("_"):
            raise ExpressionError(f"names starting with '_' are not allowed ({_display(node.id)})")
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise ExpressionError(
                f"attributes starting with '_' are not allowed (.{node.attr}); there is no access to "
                "Python internals from expressions"
            )
    return tree.body


def check_expression(source: str, max_length: int) -> str | None:
    """Why an expression is refused before it runs, or None. Used by validation."""
    if len(source) > max_length:
        return f"expression is {len(source)} characters long; the limit is {max_length}"
    try:
        _compile(source)
    except ExpressionError as exc:
        return str(exc)
    return None


class _Evaluator(EvalWithCompoundTypes):
    def __init__(self, functions: dict[str, Any], names: Callable[[ast.Name], Any]) -> None:
        super().__init__(operators=OPERATORS, functions=functions, names=names)
        # Defence in depth: _compile already refuses these before evaluation.
        for refused in (ast.ListComp, ast.GeneratorExp, ast.DictComp, ast.JoinedStr, ast.FormattedValue):
            self.nodes.pop(refused, None)

    def _check_disallowed_items(self, item: Any) -> None:
        # Every value an expression can reach is JSON data or one of our helpers (see safe_attribute),
        # so the base class's recursive scan of each intermediate result would only cost time.
        return None

    def _eval_attribute(self, node: ast.Attribute) -> Any:
        if node.attr.startswith("_"):
            raise ExpressionError(f"attributes starting with '_' are not allowed (.{node.attr})")
        return safe_attribute(self._eval(node.value), node.attr)

    def _eval_subscript(self, node: ast.Subscript) -> Any:
        return safe_index(self._eval(node.value), self._eval(node.slice))


def _iso_now(now: datetime) -> str:
    return now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


class Expressions:
    """Evaluates the expressions of one node run.

    ``items`` are the node's input items; ``find_node`` answers ``$node["..."]``. Not thread-safe:
    each node run gets its own.
    """

    def __init__(
        self,
        items: list[dict],
        *,
        find_node: Callable[[str], NodeData] | None = None,
        workflow: dict | None = None,
        execution: dict | None = None,
        max_length: int = 2000,
        now: datetime | None = None,
    ) -> None:
        self.items = items
        self.max_length = max_length
        now = now or datetime.now(timezone.utc)
        lookup = find_node or (lambda name: NodeData(name, False, []))
        found: dict[str, NodeData] = {}

        def find(name: str) -> NodeData:
            # Other nodes' outputs cannot change while this node runs: look each one up once.
            if name not in found:
                found[name] = lookup(name)
            return found[name]

        self._base_names: dict[str, Any] = {
            DOLLAR + "node": NodeLookup(find),
            DOLLAR + "now": _iso_now(now),
            DOLLAR + "today": now.astimezone(timezone.utc).strftime("%Y-%m-%d"),
            DOLLAR + "workflow": dict(workflow or {}),
            DOLLAR + "execution": dict(execution or {"id": None, "mode": "manual"}),
            "Math": MathHelpers(),
            "JSON": JsonHelpers(),
        }
        functions = dict(BASE_FUNCTIONS)
        functions.update(
            {
                "isExecuted": lambda name: find(str(name)).executed,
                "hasData": lambda name: bool(find(str(name)).items),
                "getNodeData": lambda name, default=None: (
                    to_plain(find(str(name))) if find(str(name)).items else default
                ),
                "firstExecuted": lambda names: next(
                    (to_plain(find(str(n))) for n in names if find(str(n)).items), None
                ),
            }
        )
        self._index = 0
        self._evaluator = _Evaluator(functions, self._name)

    def _current_json(self) -> dict:
        if self._index < len(self.items):
            data = self.items[self._index].get("json")
            return data if isinstance(data, dict) else {}
        return {}

    def _name(self, node: ast.Name) -> Any:
        name = node.id
        if name in self._base_names:
            return self._base_names[name]
        if name in (DOLLAR + "json", "json"):
            return self._current_json()
        if name == DOLLAR + "input":
            return InputData(self.items, self._index)
        if name == DOLLAR + "itemIndex":
            return self._index
        if name == DOLLAR + "vars":
            raise ExpressionError("$vars (NodeDrop variables) are not available in this engine")
        if name.startswith(DOLLAR):
            raise ExpressionError(f"unknown name {_display(name)}")
        data = self._current_json()
        if name in data:
            return data[name]
        raise NameNotDefined(name, self._evaluator.expr)

    def evaluate(self, source: str, item_index: int = 0) -> Any:
        """The value of one expression (the text between ``{{`` and ``}}``), as JSON data."""
        if len(source) > self.max_length:
            raise ExpressionError(f"expression is {len(source)} characters long; the limit is {self.max_length}")
        shown = source if len(source) <= 80 else source[:77] + "..."
        try:
            tree = _compile(source)
            self._index = item_index
            self._evaluator.expr = source
            return to_plain(self._evaluator.eval(source, previously_parsed=tree))
        except ExpressionError as exc:
            raise ExpressionError(f"expression {{{{ {shown} }}}}: {_display(str(exc))}") from None
        except FunctionNotDefined as exc:
            name = getattr(exc, "func_name", "?")
            raise ExpressionError(f"expression {{{{ {shown} }}}}: unknown function '{name}'") from None
        except NameNotDefined as exc:
            name = _display(getattr(exc, "name", "") or str(exc))
            raise ExpressionError(f"expression {{{{ {shown} }}}}: unknown name '{name}'") from None
        except (InvalidExpression, ArithmeticError, TypeError, ValueError, KeyError, RecursionError) as exc:
            reason = _display(str(exc)) or type(exc).__name__
            raise ExpressionError(f"expression {{{{ {shown} }}}}: {reason}") from None

    def render(self, value: Any, item_index: int = 0) -> Any:
        """``value`` with every expression in its strings (recursively) replaced by its result.

        A string that is exactly one ``{{ expr }}`` becomes the raw result (number, object, ...);
        mixed text becomes a string.
        """
        if isinstance(value, str):
            return self._render_text(value, item_index)
        if isinstance(value, list):
            return [self.render(v, item_index) for v in value]
        if isinstance(value, dict):
            return {k: self.render(v, item_index) for k, v in value.items()}
        return value

    def _render_text(self, text: str, item_index: int) -> Any:
        if "{{" not in text:
            return text
        text = strip_marker(text)
        single = single_expression(text)
        if single is not None:
            return self.evaluate(single.source, item_index)
        parts: list[str] = []
        position = 0
        for segment in find_segments(text):
            parts.append(text[position : segment.start])
            parts.append(to_text(self.evaluate(segment.source, item_index)))
            position = segment.end
        parts.append(text[position:])
        return "".join(parts)


def evaluate_standalone(source: str, data: dict | None = None) -> Any:
    """Evaluate one expression against one item's data (tests, tooling)."""
    return Expressions([{"json": data or {}}]).evaluate(source)
