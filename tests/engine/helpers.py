"""Builders for small workflow documents in tests."""

from __future__ import annotations

from typing import Any

from nodedrop_rq.workflow import Limits, NodeType, RunResult, normalize_input, parse_workflow, register_node_type
from nodedrop_rq.workflow import run_workflow as run_workflow


class InputTrigger(NodeType):
    """Emits the execution input unchanged. NodeDrop's triggers wrap it in their own item (see
    tests/conformance); the engine tests feed items straight to the nodes they test."""

    type = "test-input"
    inputs = ()
    trigger = True
    pure = True

    def execute(self, ctx, inputs):  # type: ignore[no-untyped-def]
        return {"main": list(ctx.execution_input) or [{"json": {}}]}


def register_input_trigger() -> None:
    register_node_type(InputTrigger, replace=True)


def node(
    node_id: str,
    type_: str,
    name: str | None = None,
    *,
    settings: dict | None = None,
    disabled: bool = False,
    **parameters: Any,
) -> dict:
    doc = {
        "id": node_id,
        "type": type_,
        "name": name or node_id,
        "parameters": parameters,
        "disabled": disabled,
        "position": {"x": 0, "y": 0},
    }
    if settings is not None:
        doc["settings"] = settings
    return doc


def conn(source: str, target: str, output: str = "main", input_: str = "main") -> dict:
    return {
        "id": f"{source}-{output}-{target}",
        "sourceNodeId": source,
        "sourceOutput": output,
        "targetNodeId": target,
        "targetInput": input_,
    }


def chain(*nodes: dict) -> list[dict]:
    return [conn(a["id"], b["id"]) for a, b in zip(nodes, nodes[1:], strict=False)]


def workflow(nodes: list[dict], connections: list[dict] | None = None, name: str = "test") -> dict:
    return {
        "name": name,
        "nodes": nodes,
        "connections": connections if connections is not None else chain(*nodes),
        "settings": {},
    }


def trigger(node_id: str = "t") -> dict:
    return node(node_id, "test-input", "Trigger")


def run(doc: dict, input_data: Any = None, *, limits: Limits | None = None, on_event: Any = None) -> RunResult:
    limits = limits or Limits()
    register_input_trigger()  # again: a test may have reloaded the registry since the fixture ran
    return run_workflow(
        parse_workflow(doc, limits), normalize_input(input_data, limits), limits=limits, on_event=on_event
    )


def jsons(items: list[dict]) -> list[dict]:
    return [item["json"] for item in items]


def out(result: RunResult, node_id: str, output: str = "main") -> list[dict]:
    return jsons(result.nodes[node_id].output.get(output, []))
