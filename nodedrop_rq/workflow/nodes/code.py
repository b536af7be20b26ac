"""``code``: run the node's JavaScript over its input items (NodeDrop's Code.node.ts, language
``javascript``), in the QuickJS sandbox (``workflow/js``).

The code is the body of an async function with ``items``, the input items' json, in scope; ``await``
works, and what it returns becomes the output: an array gives one item per element, anything else one
item (``return [{json: {...}}]`` therefore nests, as in NodeDrop). ``timeout`` (ms, default 30000) limits
the run, capped at ``NODEDROP_CODE_MAX_TIMEOUT_MS``. A failure is ``JavaScript execution failed: <the JS
message>``; with the node's own ``continueOnFail`` parameter it becomes the item
``{"error": true, "message": ...}``.

Language ``python`` is refused at validation: NodeDrop runs it as a python3 process on its server, which
would give every workflow author arbitrary code execution on the workers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nodedrop_rq.workflow.expressions import sanitize
from nodedrop_rq.workflow.js import UNDEFINED, JsError, JsLimitExceeded, thread_sandbox
from nodedrop_rq.workflow.js.values import js_number_or, stringify
from nodedrop_rq.workflow.limits import Limits
from nodedrop_rq.workflow.node_type import Inputs, NodeContext, NodeType, Outputs
from nodedrop_rq.workflow.nodes.items import data_of
from nodedrop_rq.workflow.params import Param, boolean, options, string

PYTHON_REFUSED = (
    "language 'python' is refused: NodeDrop runs it as a python3 process on the server, which would let "
    "any workflow run arbitrary code on the workers; write the code in JavaScript (language "
    "'javascript', run in a sandbox), or call operator-registered Python with a 'function' node"
)
DEFAULT_TIMEOUT_MS = 30_000


class CodeNode(NodeType):
    type = "code"
    display_name = "Code"
    description = "Run JavaScript over the input items, in a sandbox."
    pure = True  # the code sees a JSON copy of the items
    params = {
        "language": options("javascript", "python"),
        "code": string(),
        "timeout": Param(("number", "string")),
        "continueOnFail": boolean(),
    }

    def validate(self, parameters: Mapping[str, Any], limits: Limits) -> list[tuple[str, str]]:
        if parameters.get("language", "javascript") == "python":
            return [("language", PYTHON_REFUSED)]
        return []

    def execute(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        code = ctx.parameter("code", "")
        timeout = js_number_or(ctx.parameter("timeout", DEFAULT_TIMEOUT_MS), DEFAULT_TIMEOUT_MS)
        timeout_ms = int(min(max(timeout, 1), ctx.limits.code_max_timeout_ms))
        items = [data_of(item) for item in ctx.items]
        try:
            result = self._run(ctx, code if isinstance(code, str) else "", items, timeout_ms)
        except ValueError as exc:
            if ctx.parameter("continueOnFail", False) is True:
                return {"main": [{"json": {"error": True, "message": str(exc)}}]}
            raise
        # NodeService.executeNode sanitises every node's output the same way.
        result = sanitize(result)
        results = result if isinstance(result, list) else [result]
        return {"main": [{"json": None if value is UNDEFINED else value} for value in results]}

    @staticmethod
    def _run(ctx: NodeContext, code: str, items: list[Any], timeout_ms: int) -> Any:
        sandbox = thread_sandbox(ctx.limits.js)
        try:
            return sandbox.run_code(code, stringify(items), timeout_ms)
        except JsLimitExceeded as exc:
            text = str(exc)
            if "time limit" in text:
                # Node's vm says so in these words; NodeDrop passes the message on.
                text = f"Script execution timed out after {timeout_ms}ms"
            raise ValueError(f"JavaScript execution failed: {text}") from None
        except JsError as exc:
            raise ValueError(f"JavaScript execution failed: {exc}") from None
