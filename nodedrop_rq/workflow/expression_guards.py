"""The guard rails of expression evaluation: operators that refuse huge results, the attributes and
methods an expression may use, and its functions.

Expressions only reach attributes through :func:`safe_attribute` (data fields and a short list of
harmless methods) and items through :func:`safe_index`, so no path leads to Python internals.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from simpleeval import DEFAULT_OPERATORS

from nodedrop_rq.workflow.expression_values import MAX_TEXT_LENGTH, Exposed, ExpressionError, InputData, to_text

MAX_POWER_BITS = 4096
MAX_INT_BITS = 100_000
MAX_CONCAT_LENGTH = 1_000_000
MAX_SHIFT = 4096

# --- operators that refuse huge results -----------------------------------------------------------


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, int) or value.bit_length() < 200 else "<a huge number>"
    return text if len(text) <= 40 else text[:37] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _power(a: Any, b: Any) -> Any:
    if _is_int(a) and _is_int(b) and b > 0 and abs(a) > 1 and b * abs(a).bit_length() > MAX_POWER_BITS:
        raise ExpressionError(f"number too large: {_short(a)} ** {_short(b)} exceeds the power limit")
    try:
        result = a**b
    except OverflowError:
        raise ExpressionError(f"number too large: {_short(a)} ** {_short(b)}") from None
    if isinstance(result, complex):
        raise ExpressionError(f"{_short(a)} ** {_short(b)} is not a real number")
    return result


def _mult(a: Any, b: Any) -> Any:
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        raise ExpressionError("repeating lists with * is not allowed")
    for text, count in ((a, b), (b, a)):
        if isinstance(text, str) and _is_int(count) and len(text) * count > MAX_TEXT_LENGTH:
            raise ExpressionError(f"text too long: the result would exceed {MAX_TEXT_LENGTH} characters")
    if _is_int(a) and _is_int(b) and a.bit_length() + b.bit_length() > MAX_INT_BITS:
        raise ExpressionError("number too large")
    return a * b


def _add(a: Any, b: Any) -> Any:
    if hasattr(a, "__len__") and hasattr(b, "__len__") and len(a) + len(b) > MAX_CONCAT_LENGTH:
        raise ExpressionError(f"result too long: more than {MAX_CONCAT_LENGTH} elements")
    return a + b


def _mod(a: Any, b: Any) -> Any:
    if isinstance(a, (str, bytes)):
        raise ExpressionError("%-formatting is not supported; use text around {{ }}")
    return a % b


def _lshift(a: Any, b: Any) -> Any:
    if _is_int(b) and b > MAX_SHIFT:
        raise ExpressionError("number too large: shift exceeds the limit")
    return a << b


OPERATORS = dict(DEFAULT_OPERATORS)
OPERATORS.update({ast.Pow: _power, ast.Mult: _mult, ast.Add: _add, ast.Mod: _mod, ast.LShift: _lshift})
OPERATORS.update({ast.BitOr: operator.or_, ast.BitAnd: operator.and_, ast.BitXor: operator.xor})


# --- attribute access -------------------------------------------------------------------------------


def _guarded_replace(text: str) -> Callable[..., str]:
    def replace(old: str, new: str, count: int = -1) -> str:
        old, new = str(old), str(new)
        hits = text.count(old) if old else len(text) + 1
        if count >= 0:
            hits = min(hits, count)
        if len(text) + hits * (len(new) - len(old)) > MAX_TEXT_LENGTH:
            raise ExpressionError(f"text too long: the result would exceed {MAX_TEXT_LENGTH} characters")
        return text.replace(old, new, count)

    return replace


def _guarded_join(separator: str, values: Any) -> str:
    parts = [to_text(v) for v in values]
    if sum(len(p) for p in parts) + len(separator) * max(len(parts) - 1, 0) > MAX_TEXT_LENGTH:
        raise ExpressionError(f"text too long: the result would exceed {MAX_TEXT_LENGTH} characters")
    return separator.join(parts)


def _js_split(text: str) -> Callable[..., list[str]]:
    def split(separator: Any = None, limit: Any = None) -> list[str]:
        parts = list(text) if separator == "" else text.split(separator)
        return parts[:limit] if _is_int(limit) else parts

    return split


def _string_attr(text: str, name: str) -> Any:
    methods: dict[str, Any] = {
        "upper": text.upper,
        "lower": text.lower,
        "strip": text.strip,
        "lstrip": text.lstrip,
        "rstrip": text.rstrip,
        "title": text.title,
        "capitalize": text.capitalize,
        "casefold": text.casefold,
        "isdigit": text.isdigit,
        "isalpha": text.isalpha,
        "isalnum": text.isalnum,
        "isspace": text.isspace,
        "startswith": text.startswith,
        "endswith": text.endswith,
        "find": text.find,
        "rfind": text.rfind,
        "count": text.count,
        "split": _js_split(text),
        "rsplit": text.rsplit,
        "splitlines": text.splitlines,
        "replace": _guarded_replace(text),
        "join": lambda values: _guarded_join(text, values),
        "toUpperCase": text.upper,
        "toLowerCase": text.lower,
        "trim": text.strip,
        "trimStart": text.lstrip,
        "trimEnd": text.rstrip,
        "startsWith": text.startswith,
        "endsWith": text.endswith,
        "includes": lambda part: str(part) in text,
        "indexOf": text.find,
        "slice": lambda start=0, end=None: text[start:end],
        "substring": lambda start=0, end=None: text[start:end],
        "toString": lambda: text,
    }
    if name == "length":
        return len(text)
    if name in methods:
        return methods[name]
    raise ExpressionError(f"text has no method '{name}'")


def _list_attr(values: list | tuple, name: str) -> Any:
    if name == "length":
        return len(values)
    methods: dict[str, Any] = {
        "includes": lambda v: v in values,
        "indexOf": lambda v: values.index(v) if v in values else -1,
        "index": values.index,
        "count": values.count,
        "join": lambda separator=",": _guarded_join(str(separator), values),
        "slice": lambda start=0, end=None: list(values[start:end]),
        # n8n's array extension: the values of one field, e.g. $json.users.pluck("email").
        "pluck": lambda field: [v.get(field) if isinstance(v, dict) else None for v in values],
    }
    if name in methods:
        return methods[name]
    raise ExpressionError(f"a list has no attribute '{name}'")


def _dict_attr(data: dict, name: str) -> Any:
    if name in data:
        return data[name]
    methods: dict[str, Any] = {
        "keys": lambda: list(data.keys()),
        "values": lambda: list(data.values()),
        "items": lambda: [[k, v] for k, v in data.items()],
        "get": lambda key, default=None: data.get(key, default),
    }
    # A missing field is None (JavaScript's undefined), so `$json.maybe or "default"` works.
    return methods.get(name)


def _number_attr(value: float | int, name: str) -> Any:
    if name == "toFixed":

        def to_fixed(digits: int = 0) -> str:
            if not _is_int(digits) or not 0 <= digits <= 100:
                raise ExpressionError("toFixed takes 0 to 100 digits")
            return f"{value:.{digits}f}"

        return to_fixed
    if name == "toString":
        return lambda: to_text(value)
    raise ExpressionError(f"a number has no attribute '{name}'")


def safe_attribute(value: Any, name: str) -> Any:
    """``value.name`` inside an expression: data fields and a short list of harmless methods only."""
    if name.startswith("_"):
        raise ExpressionError(f"attributes starting with '_' are not allowed (.{name})")
    if isinstance(value, Exposed):
        return value.expr_attr(name)
    if isinstance(value, dict):
        return _dict_attr(value, name)
    if isinstance(value, str):
        return _string_attr(value, name)
    if isinstance(value, (list, tuple)):
        return _list_attr(value, name)
    if _is_int(value) or isinstance(value, float):
        return _number_attr(value, name)
    if value is None:
        raise ExpressionError(f"cannot read '{name}' of null (a missing field?)")
    raise ExpressionError(f"'.{name}' is not available on {type(value).__name__}")


def safe_index(container: Any, key: Any) -> Any:
    if isinstance(container, Exposed):
        return container.expr_item(key)
    if isinstance(container, dict):
        try:
            return container.get(key)
        except TypeError:
            raise ExpressionError(f"cannot use {type(key).__name__} as a field name") from None
    if isinstance(container, (list, tuple, str)):
        if isinstance(key, slice) or _is_int(key):
            try:
                return container[key]
            except IndexError:
                return None
        raise ExpressionError(f"list/text index must be a whole number, not {type(key).__name__}")
    if container is None:
        raise ExpressionError("cannot index null (a missing field?)")
    raise ExpressionError(f"{type(container).__name__} cannot be indexed")


# --- functions ---------------------------------------------------------------------------------------


def _sum(values: Any, start: Any = 0) -> Any:
    total = start
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ExpressionError("sum() adds numbers only")
        total = _add(total, value)
    return total


def _len(value: Any) -> int:
    if isinstance(value, (str, list, tuple, dict, set, InputData)):
        return len(value)
    raise ExpressionError(f"len() of {type(value).__name__}")


def _number(value: Any) -> float | int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    if value is None:
        return 0
    try:
        text = str(value).strip()
        return int(text) if text.lstrip("+-").isdigit() else float(text)
    except ValueError:
        return math.nan


def _parse_int(value: Any, base: int = 10) -> Any:
    text = str(value).strip()
    digits = ""
    for i, c in enumerate(text):
        if c.isdigit() or (i == 0 and c in "+-"):
            digits += c
        else:
            break
    try:
        return int(digits, base)
    except ValueError:
        return math.nan


def _parse_float(value: Any) -> Any:
    try:
        return float(str(value).strip())
    except ValueError:
        return math.nan


BASE_FUNCTIONS: dict[str, Any] = {
    "len": _len,
    "str": to_text,
    "String": to_text,
    "int": int,
    "float": float,
    "bool": bool,
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "sum": _sum,
    "sorted": sorted,
    "Number": _number,
    "parseInt": _parse_int,
    "parseFloat": _parse_float,
}
