"""``stop-and-error``: fail the run with a message (NodeDrop has no such node; n8n's Stop and Error).

Like any node it runs only when it receives items, so put it on a branch (e.g. ``ifElse`` ``false``)
to fail a run conditionally. ``errorMessage`` may use expressions (evaluated against the first
item); with ``errorType`` ``errorObject``, ``errorObject`` (an object or JSON text) is the message.
"""

from __future__ import annotations

import json

from nodedrop_rq.workflow.node_type import Inputs, NodeContext, NodeType, Outputs
from nodedrop_rq.workflow.params import Param, options, string

DEFAULT_MESSAGE = "Workflow stopped by a Stop and Error node"


class StopWorkflow(Exception):
    """Raised on purpose by ``stop-and-error``."""


class StopAndErrorNode(NodeType):
    type = "stop-and-error"
    display_name = "Stop and Error"
    description = "Fail the run with the configured message."
    pure = True
    params = {
        "errorMessage": string(),
        "errorType": options("errorMessage", "errorObject"),
        "errorObject": Param(("object", "string")),
    }

    def execute(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        if ctx.parameter("errorType", "errorMessage") == "errorObject":
            error = ctx.parameter("errorObject", {})
            message = error if isinstance(error, str) else json.dumps(error, ensure_ascii=False)
        else:
            message = ctx.parameter("errorMessage", "")
        raise StopWorkflow(str(message) if message not in (None, "") else DEFAULT_MESSAGE)
