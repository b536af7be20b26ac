"""Strict JSON in and out, shared by the CLI and the HTTP service.

In: text that Python's ``json`` reads but no other reader of the stored job could (NaN, Infinity, lone
UTF-16 surrogates, which Redis' UTF-8 encoding refuses), or that makes the reader itself fail (nesting
past the recursion limit, integers past Python's digit limit), is refused with one message naming the
problem.

Out: :func:`readable` turns any decoded value into one that every JSON serializer writes, so that an
execution whose stored output is odd can still be shown; :func:`dumps` writes strict JSON.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

# Containers nested deeper than this (below the value handed to readable()) are shown as their JSON
# text: pydantic's serializer gives up at about 255 levels, and the field itself sits a few levels down.
MAX_READABLE_DEPTH = 100
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


class JsonTextError(ValueError):
    """The text is not (strict) JSON; the message says why and where."""


def _refuse_constant(name: str) -> Any:
    raise JsonTextError(f"{name} is not valid JSON")


def loads(text: str | bytes) -> Any:
    """Parse strict JSON: :class:`JsonTextError` with one line for anything else."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except JsonTextError:
        raise
    except json.JSONDecodeError as exc:
        raise JsonTextError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except UnicodeDecodeError:
        raise JsonTextError("not UTF-8 text") from None
    except RecursionError:
        raise JsonTextError("nested too deeply") from None
    except ValueError as exc:  # e.g. an integer past sys.get_int_max_str_digits()
        raise JsonTextError(str(exc).split(";")[0]) from None
    found = find_lone_surrogate(value)
    if found is not None:
        path, char = found
        raise JsonTextError(f"lone surrogate \\u{ord(char):04x} in {path or 'the document'}: not Unicode text")
    return value


def find_lone_surrogate(value: Any) -> tuple[str, str] | None:
    """(path, character) of the first string (or key) holding an unpaired UTF-16 surrogate."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        current, path = stack.pop()
        if isinstance(current, str):
            match = _LONE_SURROGATE.search(current)
            if match:
                return path, match.group()
        elif isinstance(current, dict):
            for key, item in current.items():
                in_key = _LONE_SURROGATE.search(key) if isinstance(key, str) else None
                if in_key:
                    return f"a key of {path or 'the document'}", in_key.group()
                stack.append((item, f"{path}.{key}" if path else str(key)))
        elif isinstance(current, list):
            stack.extend((item, f"{path}[{index}]") for index, item in enumerate(current))
    return None


def readable(value: Any, max_depth: int = MAX_READABLE_DEPTH) -> Any:
    """A copy of ``value`` that any JSON serializer writes: lone surrogates become U+FFFD, NaN and
    Infinity become null, and containers nested deeper than ``max_depth`` become their JSON text (the
    data stays readable, as a string)."""
    return _readable(value, max_depth)


def dumps_compact(value: Any) -> str:
    """Compact strict JSON of ``readable(value)``. Most values need no change, and json.dumps alone finds
    that out at C speed: it refuses NaN, escapes every surrogate as ``\\ud...`` and cannot nest deeper
    than it has brackets; only a value that trips one of those takes the walk through ``readable``."""
    try:
        text = json.dumps(value, separators=(",", ":"), default=str, allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        text = None
    if text is None or "\\ud" in text or text.count("[") + text.count("{") > MAX_READABLE_DEPTH:
        text = json.dumps(readable(value), separators=(",", ":"), default=str, allow_nan=False)
    return text


def _key(key: Any) -> str:
    """A key as json.dumps names it (True is "true", None "null"), so both paths of dumps_compact agree."""
    if isinstance(key, str):
        return _LONE_SURROGATE.sub(REPLACEMENT, key)
    if key is None or isinstance(key, bool | int | float):
        return json.dumps(key)
    return _readable(str(key), 0)


def _readable(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return _LONE_SURROGATE.sub(REPLACEMENT, value)
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict | list | tuple):
        if depth <= 0:
            return _as_text(value)
        if isinstance(value, dict):
            return {_key(k): _readable(v, depth - 1) for k, v in value.items()}
        return [_readable(item, depth - 1) for item in value]
    return _readable(str(value), 0)


def _as_text(value: Any) -> str:
    """JSON text of ``value`` at any depth: written without recursion, since the caller may already be deep
    in the stack (json.dumps would raise RecursionError where the stored output was written fine)."""
    out: list[str] = []
    # Each entry is a value to write or a literal piece of text (a separator or a closing bracket).
    todo: list[tuple[bool, Any]] = [(False, value)]
    while todo:
        literal, item = todo.pop()
        if literal:
            out.append(item)
        elif isinstance(item, dict):
            pieces: list[tuple[bool, Any]] = [(True, "{")]
            for index, (key, child) in enumerate(item.items()):
                pieces += [(True, ("," if index else "") + json.dumps(str(key)) + ":"), (False, child)]
            todo.extend(reversed([*pieces, (True, "}")]))
        elif isinstance(item, list | tuple):
            pieces = [(True, "[")]
            for index, child in enumerate(item):
                pieces += [(True, ","), (False, child)] if index else [(False, child)]
            todo.extend(reversed([*pieces, (True, "]")]))
        else:
            # ensure_ascii escapes lone surrogates, so the text itself is always valid Unicode.
            out.append(json.dumps(item if isinstance(item, str | int | float | bool) or item is None else str(item)))
    return "".join(out)


def dumps(value: Any, indent: int | None = 2) -> str:
    """Strict JSON text (no NaN or Infinity) of :func:`readable` ``(value)``."""
    return json.dumps(readable(value), indent=indent, ensure_ascii=False, allow_nan=False)
