"""Small NodeDrop-format workflows built in code for the queue, worker and exporter tests."""

from __future__ import annotations

from typing import Any


def node(node_id: str, node_type: str, parameters: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "type": node_type, "name": extra.pop("name", node_id.title()),
            "parameters": parameters or {}, "position": {"x": 0, "y": 0}, **extra}


def chain(name: str, *nodes: dict[str, Any]) -> dict[str, Any]:
    connections = [
        {"id": f"c{i}", "sourceNodeId": a["id"], "sourceOutput": "main", "targetNodeId": b["id"],
         "targetInput": "main"}
        for i, (a, b) in enumerate(zip(nodes, nodes[1:], strict=False))
    ]
    return {"name": name, "nodes": list(nodes), "connections": connections, "settings": {}}


def set_value(node_id: str, key: str, value: Any) -> dict[str, Any]:
    return node(node_id, "set", {"values": [{"keyValue": {"key": key, "value": value}}]})


def function(node_id: str, name: str) -> dict[str, Any]:
    return node(node_id, "function", {"functionName": name})


def start() -> dict[str, Any]:
    """NodeDrop's manual trigger passes the execution input on only with allowCustomData, as
    ``customData`` (ManualTrigger.node.ts); the test functions read it from there."""
    return node("start", "manual-trigger", {"allowCustomData": True})


def quick() -> dict[str, Any]:
    return chain("quick", start(), set_value("mark", "done", True))


def counted(tag_sleep: bool = False) -> dict[str, Any]:
    """trigger -> count_run -> sleep_seconds -> set: counts its runs in Redis (test:runs:<tag>)."""
    return chain("counted", start(), function("count", "count_run"),
                 function("sleep", "sleep_seconds"), set_value("mark", "done", True))


def failing() -> dict[str, Any]:
    return chain("failing", start(), function("flaky", "fail_before_attempt"))


def http_counted() -> dict[str, Any]:
    """trigger -> http_count (POST to the input's counterUrl) -> sleep_seconds -> set."""
    return chain("http-counted", start(), function("count", "http_count"),
                 function("sleep", "sleep_seconds"), set_value("mark", "done", True))


def http_counted_failing() -> dict[str, Any]:
    """POSTs to the counter, then fails until attempt ``succeedOn``."""
    return chain("http-counted-failing", start(), function("count", "http_count"),
                 function("flaky", "fail_before_attempt"))


def slow_failing() -> dict[str, Any]:
    """POSTs to the counter, then one node sleeps (the input's sleep) and fails."""
    return chain("slow-failing", start(), function("count", "http_count"), function("flaky", "sleep_then_fail"))


def hanging_once() -> dict[str, Any]:
    """trigger -> hang_in_c_once (blocks past any timeout on its first run only) -> set."""
    return chain("hanging-once", start(), function("hang", "hang_in_c_once"), set_value("mark", "done", True))
