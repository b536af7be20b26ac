"""JavaScript's view of JSON values on the Python side: ``String(x)``, ``JSON.stringify(x)``, truthiness,
and property lookup, so that paths NodeDrop resolves without running JavaScript print the same text."""

from __future__ import annotations

import json
import math
from typing import Any

from nodedrop_rq.workflow.js.sandbox import UNDEFINED


def number_text(value: float | int) -> str:
    """``String(n)`` for a JavaScript number (shortest round-trip digits, JS's exponent rules)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        value = float(value) if abs(value) >= 10**21 else value
        if isinstance(value, int):
            return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"
    digits, exponent = _shortest(abs(value))
    sign = "-" if value < 0 else ""
    n = exponent + 1  # position of the decimal point relative to the digits, as in ECMA-262 Number::toString
    k = len(digits)
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * (-n) + digits
    else:
        mantissa = digits[0] + ("." + digits[1:] if k > 1 else "")
        text = f"{mantissa}e{'+' if n - 1 >= 0 else '-'}{abs(n - 1)}"
    return sign + text


def _shortest(value: float) -> tuple[str, int]:
    mantissa, _, exponent = f"{value!r}".partition("e") if "e" in repr(value) else (repr(value), "", "0")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    point = len(whole) + int(exponent)
    leading_zeros = len(whole + fraction) - len((whole + fraction).lstrip("0"))
    digits = digits.rstrip("0") or "0"
    return digits, point - leading_zeros - 1


def plain(value: Any) -> Any:
    """Floats that JavaScript prints as integers become ints, so json.dumps prints them the same way."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            return int(value)
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def stringify(value: Any) -> str:
    """``JSON.stringify(value)`` of JSON data."""
    return json.dumps(plain(value), ensure_ascii=False, separators=(",", ":"))


def to_text(value: Any) -> str:
    """``String(value)``; objects and arrays are stringified, as NodeDrop's templates do."""
    if value is UNDEFINED:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return number_text(value)
    if isinstance(value, str):
        return value
    return stringify(value)


def truthy(value: Any) -> bool:
    if value is UNDEFINED or value is None:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    if isinstance(value, (dict, list)):
        return True
    return bool(value)


def member(value: Any, key: str) -> Any:
    """``value[key]`` for JSON data (own properties, array indexes, ``length``); else UNDEFINED."""
    if isinstance(value, dict):
        return value.get(key, UNDEFINED)
    if isinstance(value, (list, str)):
        if key == "length":
            return len(value)
        if key.isdigit() and (key == "0" or not key.startswith("0")):
            index = int(key)
            return value[index] if index < len(value) else UNDEFINED
    return UNDEFINED


def js_number_or(value: Any, default: float) -> float:
    """A numeric parameter NodeDrop reads with ``as number``: numbers and numeric text, else ``default``."""
    if isinstance(value, bool):
        return default
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return default
        return number if math.isfinite(number) else default
    return default
