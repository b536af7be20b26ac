"""Which node types exist: the built-in ones, plus custom ones from the ``nodedrop_rq.nodes``
entry-point group, plus any registered with :func:`register_node_type`.

A package adds node types by declaring entry points that name a :class:`NodeType` subclass (or an
instance), e.g. in its ``pyproject.toml``::

    [project.entry-points."nodedrop_rq.nodes"]
    acme-slugify = "acme_nodes.slugify:Slugify"

They are loaded once per process, on first use. See ``README-nodes.md`` for writing one.
"""

from __future__ import annotations

import logging
import threading
from importlib.metadata import entry_points

from nodedrop_rq.workflow.node_type import NodeType

ENTRY_POINT_GROUP = "nodedrop_rq.nodes"

log = logging.getLogger(__name__)

# NodeDrop types this engine will not run, and why. A custom node type registered under one of these
# names takes precedence (the operator then chose to provide it).
REFUSED_TYPES: dict[str, str] = {
    "if": (
        "NodeDrop removed the 'if' node (its export is commented out in backend/src/nodes/index.ts), so "
        "there is no current behaviour to follow; use 'ifElse' with mode 'simple' and the same "
        "{key, expression, value} condition"
    ),
}

_lock = threading.RLock()
_builtin: dict[str, NodeType] = {}
_custom: dict[str, NodeType] = {}
_plugin_errors: list[str] = []
_loaded = False


def _instance(candidate: object, origin: str) -> NodeType:
    if isinstance(candidate, type) and issubclass(candidate, NodeType):
        candidate = candidate()
    if not isinstance(candidate, NodeType):
        raise TypeError(f"{origin}: {candidate!r} is neither a NodeType subclass nor an instance of one")
    if not isinstance(candidate.type, str) or not candidate.type:
        raise TypeError(f"{origin}: {candidate!r} has no 'type' identifier")
    return candidate


def _load() -> None:
    global _loaded
    with _lock:
        if _loaded:
            return
        from nodedrop_rq.workflow.nodes import BUILTIN_NODE_TYPES

        for cls in BUILTIN_NODE_TYPES:
            node_type = cls()
            _builtin[node_type.type] = node_type
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                node_type = _instance(ep.load(), f"entry point {ep.name!r} ({ep.value})")
            except Exception as exc:  # a broken plugin must not take the built-in nodes down with it
                message = f"entry point {ep.name!r} ({ep.value}) failed to load: {exc}"
                log.warning("%s", message)
                _plugin_errors.append(message)
                continue
            if node_type.type in _builtin:
                message = f"entry point {ep.name!r} tried to replace built-in node type {node_type.type!r}"
                log.warning("%s; ignored", message)
                _plugin_errors.append(message)
                continue
            _custom.setdefault(node_type.type, node_type)
        _loaded = True


def register_node_type(node_type: NodeType | type[NodeType], *, replace: bool = False) -> NodeType:
    """Add a node type at run time (tests, embedding). Built-ins are only replaced with ``replace=True``."""
    _load()
    instance = _instance(node_type, "register_node_type")
    with _lock:
        if not replace and (instance.type in _builtin or instance.type in _custom):
            raise ValueError(f"node type {instance.type!r} is already registered")
        _custom[instance.type] = instance
    return instance


def reload_node_types() -> None:
    """Forget custom node types and load the built-ins and entry points again (after installing a plugin)."""
    global _loaded
    with _lock:
        _builtin.clear()
        _custom.clear()
        _plugin_errors.clear()
        _loaded = False
    _load()


def unregister_node_type(type_id: str) -> None:
    with _lock:
        _custom.pop(type_id, None)


def get_node_type(type_id: str) -> NodeType | None:
    _load()
    with _lock:
        return _custom.get(type_id) or _builtin.get(type_id)


def known_types() -> list[str]:
    _load()
    with _lock:
        return sorted(set(_builtin) | set(_custom))


def refused_reason(type_id: str) -> str | None:
    """Why a NodeDrop type is refused, unless a custom node type provides it."""
    if get_node_type(type_id) is not None:
        return None
    return REFUSED_TYPES.get(type_id)


def plugin_errors() -> list[str]:
    _load()
    with _lock:
        return list(_plugin_errors)
