"""Parameter specs: what a node type accepts, checked before anything runs.

A spec names the JSON type(s) a value may have, whether it is required, the allowed values, and for
arrays/objects the spec of their elements/fields. A string holding a ``{{ ... }}`` expression is
accepted wherever any type is expected: its value is only known when the node runs, so the node
checks it then. Parameters a spec does not mention are ignored (NodeDrop exports carry UI-only ones).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nodedrop_rq.workflow.expressions import has_expression
from nodedrop_rq.workflow.problems import join_path

JSON_TYPES = ("string", "number", "integer", "boolean", "object", "array", "null")
ANY = JSON_TYPES


@dataclass(frozen=True)
class Param:
    types: tuple[str, ...] = ANY
    required: bool = False
    choices: tuple[Any, ...] | None = None
    items: Param | None = None
    fields: Mapping[str, Param] | None = None
    minimum: float | None = None
    description: str = ""


def string(*, required: bool = False, choices: tuple[str, ...] | None = None, description: str = "") -> Param:
    return Param(("string",), required=required, choices=choices, description=description)


def number(*, required: bool = False, minimum: float | None = None, description: str = "") -> Param:
    return Param(("number",), required=required, minimum=minimum, description=description)


def boolean(*, required: bool = False, description: str = "") -> Param:
    return Param(("boolean",), required=required, description=description)


def options(*choices: str, required: bool = False, description: str = "") -> Param:
    return Param(("string",), required=required, choices=choices, description=description)


def array(items: Param | None = None, *, required: bool = False, description: str = "") -> Param:
    return Param(("array",), required=required, items=items, description=description)


def obj(fields: Mapping[str, Param] | None = None, *, required: bool = False, description: str = "") -> Param:
    return Param(("object",), required=required, fields=fields, description=description)


def any_value(*, required: bool = False, description: str = "") -> Param:
    return Param(ANY, required=required, description=description)


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _type_ok(value: Any, types: tuple[str, ...]) -> bool:
    actual = json_type(value)
    if actual in types:
        return True
    return actual == "integer" and "number" in types


_ARTICLES = {"integer": "an integer", "object": "an object", "array": "an array", "null": "null"}


def _describe(types: tuple[str, ...]) -> str:
    return " or ".join(_ARTICLES.get(t, f"a {t}") for t in types)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_value(value: Any, spec: Param, path: str) -> list[tuple[str, str]]:
    """Problems of one value against its spec, as ``(path, message)`` pairs."""
    if isinstance(value, str) and has_expression(value):
        return []
    if not _type_ok(value, spec.types):
        return [(path, f"expected {_describe(spec.types)}, got {json_type(value)} {_short(value)}")]
    problems: list[tuple[str, str]] = []
    if spec.choices is not None and value not in spec.choices:
        allowed = ", ".join(repr(c) for c in spec.choices)
        problems.append((path, f"must be one of {allowed}; got {_short(value)}"))
    if spec.minimum is not None and isinstance(value, (int, float)) and value < spec.minimum:
        problems.append((path, f"must be at least {spec.minimum:g}; got {value!r}"))
    if isinstance(value, list) and spec.items is not None:
        for index, element in enumerate(value):
            problems.extend(check_value(element, spec.items, join_path(path, index)))
    if isinstance(value, dict) and spec.fields is not None:
        problems.extend(check_fields(value, spec.fields, path))
    return problems


def check_fields(values: Mapping[str, Any], specs: Mapping[str, Param], path: str) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for name, spec in specs.items():
        field_path = join_path(path, name)
        if name not in values:
            if spec.required:
                problems.append((field_path, "is required"))
            continue
        problems.extend(check_value(values[name], spec, field_path))
    return problems


EXPRESSION_REF = {"$ref": "#/$defs/expression"}


def spec_to_schema(spec: Param) -> dict[str, Any]:
    """A JSON Schema fragment for a spec; an expression string is accepted wherever a value is."""
    schema: dict[str, Any] = {}
    if set(spec.types) != set(JSON_TYPES):
        schema["type"] = list(spec.types) if len(spec.types) > 1 else spec.types[0]
    if spec.choices is not None:
        schema["enum"] = list(spec.choices)
    if spec.minimum is not None:
        schema["minimum"] = spec.minimum
    if spec.items is not None:
        schema["items"] = spec_to_schema(spec.items)
    if spec.fields:
        schema["properties"] = {k: spec_to_schema(v) for k, v in spec.fields.items()}
        required = [k for k, v in spec.fields.items() if v.required]
        if required:
            schema["required"] = required
    if spec.description:
        schema["description"] = spec.description
    if not schema or schema.keys() <= {"description"}:
        return schema
    if "string" in spec.types and spec.choices is None:
        return schema
    return {"anyOf": [schema, EXPRESSION_REF]}
