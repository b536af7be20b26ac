"""The JSON Schema (draft 2020-12) of the workflow format, shipped as ``workflow.schema.json``.

The file is generated from the node types' parameter specs; after changing a built-in node type, run
``python -m nodedrop_rq.workflow.schema > nodedrop_rq/workflow/workflow.schema.json`` (a test checks
that the file is current).
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from nodedrop_rq.workflow.params import spec_to_schema

SCHEMA_ID = "urn:nodedrop-rq:workflow-schema:1"


def _node_type_clauses() -> list[dict[str, Any]]:
    from nodedrop_rq.workflow.nodes import BUILTIN_NODE_TYPES

    clauses = []
    for cls in BUILTIN_NODE_TYPES:
        properties = {name: spec_to_schema(spec) for name, spec in cls.params.items()}
        required = [name for name, spec in cls.params.items() if spec.required]
        parameters: dict[str, Any] = {"type": "object", "properties": properties}
        then: dict[str, Any] = {"properties": {"parameters": parameters}}
        if required:
            parameters["required"] = required
            then["required"] = ["parameters"]
        clauses.append(
            {
                "if": {"properties": {"type": {"const": cls.type}}, "required": ["type"]},
                "then": then,
                "$comment": f"{cls.display_name}: {cls.description}",
            }
        )
    return clauses


def build_schema() -> dict[str, Any]:
    from nodedrop_rq.workflow.nodes import BUILTIN_NODE_TYPES

    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "NodeDrop workflow",
        "description": (
            "A NodeDrop workflow, bare or in NodeDrop's export envelope. This schema documents the shape; "
            "nodedrop-rq's validation also checks node types, connections, cycles and size limits. "
            "Fields not listed (UI data such as position, icon, color, mockData) are accepted and ignored."
        ),
        "anyOf": [{"$ref": "#/$defs/exportEnvelope"}, {"$ref": "#/$defs/workflow"}],
        "$defs": {
            "exportEnvelope": {
                "type": "object",
                "description": "NodeDrop's export file: the workflow with export metadata.",
                "required": ["workflow"],
                "properties": {
                    "version": {"type": "string", "examples": ["1.0.0"]},
                    "exportedAt": {"type": "string", "description": "ISO 8601 time of the export"},
                    "exportedBy": {"type": "string"},
                    "checksum": {"type": "string"},
                    "workflow": {"$ref": "#/$defs/workflow"},
                },
            },
            "workflow": {
                "type": "object",
                "required": ["nodes"],
                "properties": {
                    "name": {"type": "string"},
                    "title": {"type": "string"},
                    "description": {"type": "string"},
                    "nodes": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/node"}},
                    "connections": {"type": "array", "items": {"$ref": "#/$defs/connection"}},
                    "settings": {
                        "type": "object",
                        "description": "Workflow settings (timezone, saveExecutionProgress, ...); accepted, not used.",
                    },
                },
            },
            "node": {
                "type": "object",
                "required": ["id", "type"],
                "properties": {
                    "id": {"type": "string", "minLength": 1},
                    "type": {
                        "type": "string",
                        "minLength": 1,
                        "description": "Node type; custom types come from the 'nodedrop_rq.nodes' entry points.",
                        "examples": [cls.type for cls in BUILTIN_NODE_TYPES],
                        "not": {
                            "const": "if",
                            "description": "NodeDrop removed the 'if' node; use 'ifElse'",
                        },
                    },
                    "name": {"type": "string", "description": 'Display name; $node["name"] refers to it.'},
                    "parameters": {"type": "object"},
                    "disabled": {"type": "boolean", "description": "A disabled node is skipped."},
                    "settings": {"$ref": "#/$defs/nodeSettings"},
                    "position": {
                        "type": "object",
                        "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
                    },
                },
                "allOf": _node_type_clauses(),
            },
            "nodeSettings": {
                "type": "object",
                "properties": {
                    "continueOnFail": {
                        "type": "boolean",
                        "description": 'On error, output {"json": {"error": message}} instead of failing the run.',
                    },
                    "alwaysOutputData": {
                        "type": "boolean",
                        "description": "Emit one empty item when the node outputs nothing.",
                    },
                    "timeout": {
                        "type": "number",
                        "minimum": 0,
                        "description": "Milliseconds the node may run; 0 or absent: no limit.",
                    },
                },
            },
            "connection": {
                "type": "object",
                "required": ["sourceNodeId", "targetNodeId"],
                "properties": {
                    "id": {"type": "string"},
                    "sourceNodeId": {"type": "string", "minLength": 1},
                    "sourceOutput": {
                        "type": "string",
                        "default": "main",
                        "description": "main, true/false (ifElse), loop/done (loop), a switch output name",
                    },
                    "targetNodeId": {"type": "string", "minLength": 1},
                    "targetInput": {"type": "string", "default": "main"},
                },
            },
            "expression": {
                "type": "string",
                "pattern": "\\{\\{[\\s\\S]*\\}\\}",
                "description": "A string with {{ expression }}; its value is computed when the node runs.",
            },
        },
    }


@lru_cache(maxsize=1)
def _text() -> str:
    return resources.files("nodedrop_rq.workflow").joinpath("workflow.schema.json").read_text(encoding="utf-8")


def workflow_schema() -> dict[str, Any]:
    """A fresh copy of the schema shipped with the package."""
    return json.loads(_text())


def render_schema() -> str:
    return json.dumps(build_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(render_schema(), end="")
