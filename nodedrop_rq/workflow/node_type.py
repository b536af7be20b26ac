"""The base class of node types and the context a node runs with.

A node type is a small class::

    class Upper(NodeType):
        type = "upper-case"                       # the "type" of nodes in workflow JSON
        inputs = ("main",)
        outputs = ("main",)
        params = {"field": string(required=True)}  # checked by validation, before anything runs
        pure = True                               # never mutates its input items

        def execute(self, ctx, inputs):
            field = ctx.parameter("field")
            out = []
            for item in ctx.items:
                data = dict(item["json"])
                data[field] = str(data.get(field, "")).upper()
                out.append({"json": data})
            return {"main": out}

``inputs`` maps each input name to the item lists of the connections that delivered items, one list
per connection, in the order of the workflow's connections; ``ctx.items`` is the ``main`` input
flattened. ``execute`` returns ``{output name: [items]}``; a dict without ``"json"`` is wrapped as
``{"json": dict}``. Raise any exception to fail the node; its message is the node's error.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any, ClassVar

from nodedrop_rq.workflow.expressions import ExpressionError, Expressions
from nodedrop_rq.workflow.limits import Limits
from nodedrop_rq.workflow.model import Node, Workflow
from nodedrop_rq.workflow.params import Param

Item = dict[str, Any]
Inputs = dict[str, list[list[Item]]]
Outputs = dict[str, list[Item]]


class NodeCancelled(Exception):
    """The node was abandoned (it timed out); a sleeping node stops with this."""


class NodeContext:
    """What a node sees while it runs: its parameters (with expressions), input items and limits."""

    def __init__(
        self,
        *,
        node: Node,
        workflow: Workflow,
        items: list[Item],
        execution_input: list[Item],
        limits: Limits,
        expressions: Expressions,
        cancelled: threading.Event | None = None,
        execution_id: str | None = None,
    ) -> None:
        self.node = node
        self.workflow = workflow
        self.items = items
        self.execution_input = execution_input
        self.limits = limits
        self.expressions = expressions
        self.cancelled = cancelled or threading.Event()
        self.execution_id = execution_id
        self.logger = logging.getLogger(f"nodedrop_rq.workflow.nodes.{node.type}")

    def raw_parameter(self, name: str, default: Any = None) -> Any:
        """The parameter as written in the workflow, expressions unevaluated."""
        return self.node.parameters.get(name, default)

    def parameter(self, name: str, default: Any = None, *, item_index: int | None = None) -> Any:
        """The parameter as NodeDrop's ``getNodeParameter`` gives it (see ``expressions.py``): resolved
        once for the node, ``$json`` being the input item or, with several, the array of them all. With
        ``item_index`` (for custom nodes), ``$json`` is that one item's data."""
        try:
            return self.expressions.parameter(self.node.parameters.get(name, default), item_index)
        except ExpressionError as exc:
            raise ExpressionError(f"parameter '{name}': {exc}") from None

    def parameters(self, *, item_index: int | None = None) -> dict[str, Any]:
        return {name: self.parameter(name, item_index=item_index) for name in self.node.parameters}

    def render(self, value: Any, *, item_index: int | None = None, label: str | None = None) -> Any:
        """Any value (e.g. part of a parameter) resolved like a parameter."""
        try:
            return self.expressions.parameter(value, item_index)
        except ExpressionError as exc:
            if label:
                raise ExpressionError(f"{label}: {exc}") from None
            raise

    def sleep(self, seconds: float) -> None:
        """Sleep, but wake up and stop as soon as the node is abandoned (its timeout passed)."""
        if seconds > 0 and self.cancelled.wait(seconds):
            raise NodeCancelled("node was cancelled while waiting")


class NodeType:
    """Base of all node types; see the module docstring and ``README-nodes.md``."""

    type: ClassVar[str] = ""
    display_name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    inputs: ClassVar[tuple[str, ...]] = ("main",)
    outputs: ClassVar[tuple[str, ...]] = ("main",)
    params: ClassVar[Mapping[str, Param]] = {}
    # Entry nodes fed with the execution input (manual/webhook/schedule triggers).
    trigger: ClassVar[bool] = False
    # True when execute() never mutates its input items: the engine then skips defensive copies.
    pure: ClassVar[bool] = False
    # True for a loop: the engine runs the nodes after its "loop" output once per batch (see loop.py).
    iterates: ClassVar[bool] = False

    def output_names(self, parameters: Mapping[str, Any]) -> tuple[str, ...]:
        """Names a connection's ``sourceOutput`` may use, for a node with these parameters."""
        return self.outputs

    def accepts_output(self, name: str, parameters: Mapping[str, Any]) -> bool:
        return name in self.output_names(parameters)

    def validate(self, parameters: Mapping[str, Any], limits: Limits) -> list[tuple[str, str]]:
        """Checks beyond the ``params`` specs, as ``(path relative to parameters, message)`` pairs."""
        return []

    def execute(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        raise NotImplementedError

    def route(self, parameters: Mapping[str, Any], outputs: Outputs, name: str) -> list[Item]:
        """Items a connection from output ``name`` carries."""
        return outputs.get(name, [])

    def error_item(self, ctx: NodeContext, error: BaseException) -> Item:
        """The item that replaces the output when the node fails with ``continueOnFail`` and
        ``alwaysOutputData`` (NodeDrop's NodeService.executeNode; its JavaScript stack is left out)."""
        message = str(error) or type(error).__name__
        return {"json": {"error": message, "errorDetails": {"message": message, "name": "Error"}}}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.type!r}>"
