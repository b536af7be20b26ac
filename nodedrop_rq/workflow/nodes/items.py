"""Helpers shared by the built-in nodes: item wrapping and NodeDrop's dotted paths."""

from __future__ import annotations

import copy
import re
from typing import Any

MISSING: Any = object()  # JavaScript's undefined, distinct from null (None)

_INDEX = re.compile(r"\[(\d+)\]")


def copied(value: Any) -> Any:
    """A deep copy of item data. Items are JSON values almost always, which this copies about three times
    faster than ``copy.deepcopy``; anything else (a plugin's objects, a cycle) goes to deepcopy."""
    try:
        return _copy_json(value)
    except (_NotJson, RecursionError):
        return copy.deepcopy(value)


class _NotJson(Exception):
    pass


_SCALARS = (str, int, float, bool, type(None))


def _copy_json(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        return {key: _copy_json(item) for key, item in value.items()}
    if kind is list:
        return [_copy_json(item) for item in value]
    if kind in _SCALARS:
        return value
    raise _NotJson


def data_of(item: Any) -> Any:
    """An item's ``json``; NodeDrop nodes accept bare data too."""
    if isinstance(item, dict) and "json" in item:
        return item["json"]
    return item


def as_object(value: Any) -> dict:
    """Item data must be an object: other values are kept under ``value``."""
    return value if isinstance(value, dict) else {"value": value}


def spread(value: Any) -> dict:
    """``{...value}`` in JavaScript: objects copy, strings and arrays become index keys, the rest ``{}``."""
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, (str, list)):
        return {str(i): v for i, v in enumerate(value)}
    return {}


def wrap(value: Any) -> dict:
    return {"json": as_object(value)}


def flat_main(inputs: dict[str, list[list[dict]]]) -> list[dict]:
    return [item for group in inputs.get("main", []) for item in group]


def split_path(path: str) -> list[str]:
    """``"items[0].name"`` -> ``["items", "0", "name"]`` (NodeDrop's path syntax)."""
    return _INDEX.sub(r".\1", path).split(".")


def get_path(data: Any, path: str, default: Any = MISSING) -> Any:
    if not path:
        return default
    current = data
    for key in split_path(path):
        if isinstance(current, dict):
            if key not in current:
                return default
            current = current[key]
        elif isinstance(current, list) and key.isdigit():
            index = int(key)
            if index >= len(current):
                return default
            current = current[index]
        else:
            return default
    return current


def set_path(data: dict, path: str, value: Any) -> None:
    """Set ``data[a][b][c] = value`` for ``"a.b.c"``, creating objects (or lists before an index)."""
    keys = split_path(path)
    current: Any = data
    for i, key in enumerate(keys):
        last = i == len(keys) - 1
        next_is_index = not last and keys[i + 1].isdigit()
        if isinstance(current, list):
            index = int(key) if key.isdigit() else None
            if index is None:
                raise ValueError(f"cannot set '{path}': '{key}' is not an index into a list")
            if index > 100_000:
                raise ValueError(f"cannot set '{path}': index {index} is too large")
            while len(current) <= index:
                current.append(None)
            if last:
                current[index] = value
                return
            if not isinstance(current[index], (dict, list)):
                current[index] = [] if next_is_index else {}
            current = current[index]
            continue
        if last:
            current[key] = value
            return
        if not isinstance(current.get(key), (dict, list)):
            current[key] = [] if next_is_index else {}
        current = current[key]
