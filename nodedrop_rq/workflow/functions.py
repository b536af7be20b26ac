"""Operator-registered Python callables for the ``function`` node.

Workflows never carry code. Instead the operator writes a module that registers functions at import::

    # mycompany/workflow_functions.py
    from nodedrop_rq.workflow import register_function

    def add_vat(items, params):
        rate = float(params.get("rate", 0.2))
        return [{"total": i["json"]["net"] * (1 + rate)} for i in items]

    register_function("add-vat", add_vat)

and lists it in ``NODEDROP_FUNCTION_MODULES=mycompany.workflow_functions``; workers import those
modules at start (:func:`load_function_modules`). A ``function`` node with
``"parameters": {"functionName": "add-vat", "rate": 0.25}`` then calls it with the node's input items
(``[{"json": {...}}, ...]``) and its parameters (expressions evaluated against the first item).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable
from typing import Any

_lock = threading.Lock()
_functions: dict[str, Callable[..., Any]] = {}


def register_function(name: str, fn: Callable[..., Any]) -> None:
    """Make ``fn(items, params)`` callable from ``function`` nodes as ``name`` (replaces a previous one)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("a function needs a non-empty name")
    if not callable(fn):
        raise TypeError(f"register_function({name!r}, ...): {fn!r} is not callable")
    with _lock:
        _functions[name] = fn


def unregister_function(name: str) -> None:
    with _lock:
        _functions.pop(name, None)


def get_function(name: str) -> Callable[..., Any] | None:
    with _lock:
        return _functions.get(name)


def registered_functions() -> list[str]:
    with _lock:
        return sorted(_functions)


def load_function_modules(names: Iterable[str]) -> None:
    """Import each module (they call :func:`register_function`); a failing import raises ImportError."""
    for name in names:
        name = name.strip()
        if not name:
            continue
        try:
            importlib.import_module(name)
        except Exception as exc:
            raise ImportError(f"cannot load function module {name!r}: {exc}") from exc
