"""Parsing and validating workflow documents and execution input, reporting every problem at once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from nodedrop_rq.workflow.expressions import find_expressions
from nodedrop_rq.workflow.graph import find_cycles
from nodedrop_rq.workflow.limits import Limits
from nodedrop_rq.workflow.model import Connection, Node, Workflow
from nodedrop_rq.workflow.params import check_fields, json_type
from nodedrop_rq.workflow.problems import Problem, WorkflowInvalid, join_path
from nodedrop_rq.workflow.registry import get_node_type, known_types, plugin_errors, refused_reason

NODE_FIELDS = {"id", "type", "name", "parameters", "disabled", "settings"}
CONNECTION_FIELDS = {"id", "sourceNodeId", "sourceOutput", "targetNodeId", "targetInput"}
WORKFLOW_FIELDS = {"name", "nodes", "connections", "settings"}


class _Collector:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, path: str, message: str, node_id: str | None = None) -> None:
        self.problems.append(Problem(path, message, node_id))


# Node timeouts beyond this overflow the thread wait and could never matter under a job timeout.
MAX_NODE_TIMEOUT_MS = 86_400_000

def _document_size(document: Any) -> int:
    return len(json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode())


def _load(document: object, limits: Limits, out: _Collector) -> Any:
    """The document as JSON data, or None after reporting why it cannot be read."""
    if isinstance(document, (bytes, bytearray, str)):
        raw = document.encode() if isinstance(document, str) else bytes(document)
        if len(raw) > limits.max_document_bytes:
            out.add("", f"document is {len(raw)} bytes; the limit is {limits.max_document_bytes}")
            return None
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            out.add("", f"document is not valid JSON: {exc}")
            return None
    try:
        size = _document_size(document)
    except (TypeError, ValueError) as exc:
        out.add("", f"document is not JSON data: {exc}")
        return None
    if size > limits.max_document_bytes:
        out.add("", f"document is {size} bytes; the limit is {limits.max_document_bytes}")
        return None
    return document


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, list):
        for index, element in enumerate(value):
            yield from _strings(element, join_path(path, index))
    elif isinstance(value, dict):
        for key, element in value.items():
            yield from _strings(element, join_path(path, str(key)))


def _check_expressions(parameters: dict, path: str, node_id: str, limits: Limits, out: _Collector) -> None:
    for string_path, text in _strings(parameters, path):
        if "{{" not in text:
            continue
        # Only the length is checked: NodeDrop leaves an expression that does not evaluate as text, so a
        # syntax error is not an invalid workflow there either.
        for source in find_expressions(text):
            if len(source.strip()) > limits.max_expression_length:
                shown = source.strip()[:57] + "..."
                out.add(string_path, f"expression {{{{ {shown} }}}}: longer than "
                        f"{limits.max_expression_length} characters", node_id)


def _check_settings(settings: Any, path: str, node_id: str, out: _Collector) -> dict:
    if settings is None:
        return {}
    if not isinstance(settings, dict):
        out.add(path, f"must be an object, got {json_type(settings)}", node_id)
        return {}
    for name in ("continueOnFail", "alwaysOutputData"):
        if name in settings and not isinstance(settings[name], bool):
            out.add(join_path(path, name), f"must be true or false, got {json_type(settings[name])}", node_id)
    timeout = settings.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0):
        out.add(join_path(path, "timeout"), "must be a number of milliseconds (0 = no timeout)", node_id)
    elif timeout is not None and timeout > MAX_NODE_TIMEOUT_MS:
        out.add(join_path(path, "timeout"), f"at most {MAX_NODE_TIMEOUT_MS} ms (one day); the worker's job "
                "timeout (EXECUTION_JOB_TIMEOUT) bounds the whole execution anyway", node_id)
    return settings


def _parse_node(raw: Any, path: str, limits: Limits, out: _Collector) -> Node | None:
    if not isinstance(raw, dict):
        out.add(path, f"a node must be an object, got {json_type(raw)}")
        return None
    node_id = raw.get("id")
    if not isinstance(node_id, str) or not node_id:
        out.add(join_path(path, "id"), "is required (a non-empty string)")
        node_id = None
    reported_id = node_id
    type_id = raw.get("type")
    node_type = None
    if not isinstance(type_id, str) or not type_id:
        out.add(join_path(path, "type"), "is required (a node type such as 'set')", reported_id)
    else:
        node_type = get_node_type(type_id)
        if node_type is None:
            reason = refused_reason(type_id)
            if reason:
                out.add(join_path(path, "type"), f"node type '{type_id}' is not supported: {reason}", reported_id)
            else:
                message = f"unknown node type '{type_id}'; known types: {', '.join(known_types())}"
                if plugin_errors():
                    message += f" (custom node types that failed to load: {'; '.join(plugin_errors())})"
                out.add(join_path(path, "type"), message, reported_id)
    name = raw.get("name", node_id)
    if name is not None and not isinstance(name, str):
        out.add(join_path(path, "name"), f"must be a string, got {json_type(name)}", reported_id)
        name = None
    parameters = raw.get("parameters", {})
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, dict):
        out.add(join_path(path, "parameters"), f"must be an object, got {json_type(parameters)}", reported_id)
        parameters = {}
    disabled = raw.get("disabled", False)
    if disabled is None:
        disabled = False
    if not isinstance(disabled, bool):
        out.add(join_path(path, "disabled"), f"must be true or false, got {json_type(disabled)}", reported_id)
        disabled = False
    settings = _check_settings(raw.get("settings"), join_path(path, "settings"), reported_id or "", out)
    params_path = join_path(path, "parameters")
    if node_type is not None:
        for problem_path, message in check_fields(parameters, node_type.params, params_path):
            out.add(problem_path, message, reported_id)
        try:
            extra_problems = node_type.validate(parameters, limits)
        except Exception as exc:  # a buggy custom node type must not hide the other problems
            extra_problems = [("", f"node type '{type_id}' could not check its parameters: {exc}")]
        for relative, message in extra_problems:
            out.add(join_path(params_path, relative) if relative else params_path, message, reported_id)
    _check_expressions(parameters, params_path, reported_id or "", limits, out)
    if node_id is None or not isinstance(type_id, str):
        return None
    extra = {k: v for k, v in raw.items() if k not in NODE_FIELDS}
    return Node(node_id, type_id, name or node_id, parameters, disabled, dict(settings), extra)


def _parse_connection(raw: Any, path: str, index: int, nodes: dict[str, Node], out: _Collector) -> Connection | None:
    if not isinstance(raw, dict):
        out.add(path, f"a connection must be an object, got {json_type(raw)}")
        return None
    ok = True
    values: dict[str, str] = {}
    for field, default in (
        ("sourceNodeId", None),
        ("targetNodeId", None),
        ("sourceOutput", "main"),
        ("targetInput", "main"),
    ):
        value = raw.get(field, default)
        if value is None and default is not None:
            value = default
        if not isinstance(value, str) or not value:
            out.add(
                join_path(path, field), "is required (a non-empty string)" if default is None else "must be a string"
            )
            ok = False
        values[field] = value
    conn_id = raw.get("id", f"connection-{index}")
    if not isinstance(conn_id, str) or not conn_id:
        out.add(join_path(path, "id"), "must be a non-empty string")
        ok = False
    if not ok:
        return None
    source, target = nodes.get(values["sourceNodeId"]), nodes.get(values["targetNodeId"])
    if source is None:
        out.add(join_path(path, "sourceNodeId"), f"no node has id '{values['sourceNodeId']}'")
    if target is None:
        out.add(join_path(path, "targetNodeId"), f"no node has id '{values['targetNodeId']}'")
    if source is not None:
        source_type = get_node_type(source.type)
        output = values["sourceOutput"]
        if source_type is not None and not source_type.accepts_output(output, source.parameters):
            names = ", ".join(repr(n) for n in source_type.output_names(source.parameters)) or "none"
            out.add(
                join_path(path, "sourceOutput"),
                f"node '{source.name}' ({source.type}) has no output '{output}'; its outputs: {names}",
                source.id,
            )
    if target is not None:
        target_type = get_node_type(target.type)
        target_input = values["targetInput"]
        if target_type is not None and target_input not in target_type.inputs:
            if not target_type.inputs:
                message = f"node '{target.name}' ({target.type}) takes no input; it starts the workflow"
            else:
                names = ", ".join(repr(n) for n in target_type.inputs)
                message = f"node '{target.name}' ({target.type}) has no input '{target_input}'; its inputs: {names}"
            out.add(join_path(path, "targetInput"), message, target.id)
    extra = {k: v for k, v in raw.items() if k not in CONNECTION_FIELDS}
    return Connection(
        conn_id, values["sourceNodeId"], values["targetNodeId"], values["sourceOutput"], values["targetInput"], extra
    )


def parse_workflow(document: object, limits: Limits | None = None) -> Workflow:
    """Parse a NodeDrop workflow (an export envelope or the bare workflow; a dict, or JSON text/bytes).

    Everything is validated before anything can run; every problem found is reported at once in
    :class:`WorkflowInvalid`. Paths point into the submitted document.
    """
    limits = limits or Limits()
    out = _Collector()
    doc = _load(document, limits, out)
    if out.problems:
        raise WorkflowInvalid(out.problems)
    if not isinstance(doc, dict):
        raise WorkflowInvalid([Problem("", f"a workflow must be a JSON object, got {json_type(doc)}")])
    base = ""
    if "nodes" not in doc and "workflow" in doc:
        if not isinstance(doc["workflow"], dict):
            raise WorkflowInvalid([Problem("workflow", f"must be an object, got {json_type(doc['workflow'])}")])
        doc, base = doc["workflow"], "workflow"

    name = doc.get("name", doc.get("title", ""))
    if name is None:
        name = ""
    if not isinstance(name, str):
        out.add(join_path(base, "name"), f"must be a string, got {json_type(name)}")
        name = ""
    settings = doc.get("settings", {})
    if settings is None:
        settings = {}
    if not isinstance(settings, dict):
        out.add(join_path(base, "settings"), f"must be an object, got {json_type(settings)}")
        settings = {}

    raw_nodes = doc.get("nodes")
    nodes_path = join_path(base, "nodes")
    if raw_nodes is None:
        out.add(nodes_path, "is required (a list of nodes)")
        raw_nodes = []
    elif not isinstance(raw_nodes, list):
        out.add(nodes_path, f"must be a list, got {json_type(raw_nodes)}")
        raw_nodes = []
    elif not raw_nodes:
        out.add(nodes_path, "the workflow has no nodes")
    elif len(raw_nodes) > limits.max_nodes:
        out.add(nodes_path, f"{len(raw_nodes)} nodes; the limit is {limits.max_nodes}")
        raise WorkflowInvalid(out.problems)

    nodes: list[Node] = []
    by_id: dict[str, Node] = {}
    first_seen: dict[str, int] = {}
    for index, raw in enumerate(raw_nodes):
        path = join_path(nodes_path, index)
        node = _parse_node(raw, path, limits, out)
        raw_id = raw.get("id") if isinstance(raw, dict) else None
        if isinstance(raw_id, str) and raw_id:
            if raw_id in first_seen:
                out.add(
                    join_path(path, "id"),
                    f"duplicate node id '{raw_id}' (also {join_path(nodes_path, first_seen[raw_id])})",
                    raw_id,
                )
                continue
            first_seen[raw_id] = index
        if node is not None:
            nodes.append(node)
            by_id[node.id] = node

    raw_connections = doc.get("connections", [])
    connections_path = join_path(base, "connections")
    if raw_connections is None:
        raw_connections = []
    if not isinstance(raw_connections, list):
        out.add(connections_path, f"must be a list, got {json_type(raw_connections)}")
        raw_connections = []
    connections: list[Connection] = []
    connection_index: list[int] = []
    seen_connection_ids: dict[str, int] = {}
    for index, raw in enumerate(raw_connections):
        path = join_path(connections_path, index)
        connection = _parse_connection(raw, path, index, by_id, out)
        if connection is None:
            continue
        if connection.id in seen_connection_ids:
            previous = join_path(connections_path, seen_connection_ids[connection.id])
            out.add(join_path(path, "id"), f"duplicate connection id '{connection.id}' (also {previous})")
        seen_connection_ids.setdefault(connection.id, index)
        connections.append(connection)
        connection_index.append(index)

    node_ids = [n.id for n in nodes]
    edges = [
        (c.source_node_id, c.target_node_id)
        for c in connections
        if c.source_node_id in by_id and c.target_node_id in by_id
    ]
    for cycle in find_cycles(node_ids, edges):
        members = set(cycle)
        first = next(
            i
            for c, i in zip(connections, connection_index, strict=True)
            if c.source_node_id in members and c.target_node_id in members
        )
        names = " -> ".join(f"'{by_id[n].name}'" for n in cycle)
        out.add(
            join_path(connections_path, first),
            f"connections form a cycle through {names}; workflows must be acyclic (use a loop node to iterate)",
            cycle[0],
        )
    targets = {target for _, target in edges}
    if nodes and all(n.id in targets for n in nodes):
        out.add(nodes_path, "no entry node: every node has an incoming connection")

    if out.problems:
        raise WorkflowInvalid(out.problems)
    extra = {k: v for k, v in doc.items() if k not in WORKFLOW_FIELDS}
    return Workflow(name, nodes, connections, dict(settings), extra)


def _is_item(value: dict) -> bool:
    return "json" in value and set(value) <= {"json", "binary", "pairedItem"} and isinstance(value["json"], dict)


def normalize_input(data: object, limits: Limits | None = None) -> list[dict]:
    """Execution input as items: None -> []; an object -> one item; a list of objects -> items.

    An object that already is an item (``{"json": {...}}``) stays one. Anything else is refused with
    problems at path ``input``.
    """
    limits = limits or Limits()
    if data is None:
        return []
    if isinstance(data, dict):
        values: list[Any] = [data]
        single = True
    elif isinstance(data, list):
        values = data
        single = False
    else:
        raise WorkflowInvalid(
            [Problem("input", f"must be a JSON object (one item) or a list of objects, got {json_type(data)}")]
        )
    if len(values) > limits.max_items:
        raise WorkflowInvalid([Problem("input", f"{len(values)} items; the limit is {limits.max_items}")])
    problems = []
    items = []
    for index, value in enumerate(values):
        path = "input" if single else join_path("input", index)
        if not isinstance(value, dict):
            problems.append(Problem(path, f"an item must be a JSON object, got {json_type(value)}"))
            continue
        items.append({"json": value["json"]} if _is_item(value) else {"json": value})
    if problems:
        raise WorkflowInvalid(problems)
    try:
        return json.loads(json.dumps(items, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise WorkflowInvalid([Problem("input", f"is not JSON data: {exc}")]) from None
