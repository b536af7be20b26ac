"""NodeDrop-compatible workflow engine: parse, validate and run NodeDrop workflow JSON in-process.

Typical use::

    from nodedrop_rq.workflow import Limits, parse_workflow, normalize_input, run_workflow

    limits = Limits.from_settings(settings)
    workflow = parse_workflow(document, limits)        # raises WorkflowInvalid listing every problem
    result = run_workflow(workflow, normalize_input(data, limits), on_event=print, limits=limits)
    result.status, result.output, result.to_dict()

Custom node types: see ``README-nodes.md`` (entry-point group ``nodedrop_rq.nodes``).
Python functions for ``function`` nodes: :func:`register_function`, :func:`load_function_modules`.
"""

from __future__ import annotations

from nodedrop_rq.workflow.engine import run_workflow
from nodedrop_rq.workflow.expressions import ExpressionError
from nodedrop_rq.workflow.functions import load_function_modules, register_function
from nodedrop_rq.workflow.limits import Limits
from nodedrop_rq.workflow.model import Connection, Node, Workflow
from nodedrop_rq.workflow.node_type import NodeContext, NodeType
from nodedrop_rq.workflow.problems import Problem, WorkflowInvalid
from nodedrop_rq.workflow.registry import ENTRY_POINT_GROUP, get_node_type, known_types, register_node_type
from nodedrop_rq.workflow.results import NodeError, NodeEvent, NodeRun, RunResult
from nodedrop_rq.workflow.schema import workflow_schema
from nodedrop_rq.workflow.validation import normalize_input, parse_workflow

__all__ = [
    "ENTRY_POINT_GROUP",
    "Connection",
    "ExpressionError",
    "Limits",
    "Node",
    "NodeContext",
    "NodeError",
    "NodeEvent",
    "NodeRun",
    "NodeType",
    "Problem",
    "RunResult",
    "Workflow",
    "WorkflowInvalid",
    "get_node_type",
    "known_types",
    "load_function_modules",
    "normalize_input",
    "parse_workflow",
    "register_function",
    "register_node_type",
    "run_workflow",
    "workflow_schema",
]
