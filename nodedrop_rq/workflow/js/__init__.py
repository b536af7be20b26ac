"""The JavaScript sandbox that evaluates expressions and runs Code nodes (QuickJS via ``quickjs-ng``)."""

from nodedrop_rq.workflow.js.sandbox import UNDEFINED, JsError, JsLimitExceeded, JsLimits, JsSandbox, thread_sandbox

__all__ = ["UNDEFINED", "JsError", "JsLimitExceeded", "JsLimits", "JsSandbox", "thread_sandbox"]
