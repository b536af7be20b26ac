"""A QuickJS context (PyPI ``quickjs-ng``) with NodeDrop's expression globals and the Code node's wrapper.

QuickJS has no file, network, process, timer or module API unless the embedder adds one, and this module
adds none: code inside can compute, and nothing else. Each evaluation runs under a time limit, the
context's heap under a memory limit and its stack under a stack limit; hitting one raises
:class:`JsLimitExceeded`, and the context stays usable.

Building a context with the prelude takes about 3.3 ms (most of it freezing the built-ins), 25 times the
engine's run of a trivial execution, so a context lives as long as its thread (:func:`thread_sandbox`): one per
worker process, reused by every execution. That is safe because the prelude freezes every built-in
and the global object itself: code can create values, but cannot leave anything behind that the next
evaluation would see (``tests/engine/test_sandbox.py``). A context is only touched from the thread that
created it, because QuickJS checks its stack depth against the stack of that thread.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import quickjs

from nodedrop_rq.workflow.js.prelude import PRELUDE

UNDEFINED: Any = object()  # a result that NodeDrop treats as "not resolved" (undefined, null, "{{...")


class JsError(Exception):
    """JavaScript threw (a syntax error, a TypeError, ``throw``...); ``message`` is the JS message."""


class JsLimitExceeded(JsError):
    """The code ran past the time, memory or stack limit."""


@dataclass(frozen=True)
class JsLimits:
    time_limit_ms: int = 5000
    memory_limit_bytes: int = 64 * 1024 * 1024
    stack_limit_bytes: int = 512 * 1024


def _limit_message(error: BaseException, seconds: float) -> str | None:
    text = str(error)
    if isinstance(error, quickjs.StackOverflow) or "stack" in text.lower() and "exceeded" in text.lower():
        return "the JavaScript stack limit was exceeded (too deep recursion)"
    if "interrupted" in text:
        return f"JavaScript ran longer than its time limit of {seconds * 1000:g} ms"
    if "out of memory" in text or text.strip() in ("", "null"):
        # quickjs-ng reports some allocation failures with an empty ("null") exception.
        return "JavaScript ran out of memory (the sandbox's memory limit)"
    return None


class JsSandbox:
    """One QuickJS context; use it from the thread that created it."""

    def __init__(self, limits: JsLimits) -> None:
        self._context = quickjs.Context()
        self.retune(limits)
        self._context.eval(PRELUDE)
        self._evaluate = self._context.eval("__nd.evaluate")
        self._start_code = self._context.eval("__nd.startCode")
        self._code_result = self._context.eval("__nd.codeResult")

    def retune(self, limits: JsLimits) -> None:
        self.limits = limits
        self._context.set_memory_limit(limits.memory_limit_bytes)
        self._context.set_max_stack_size(limits.stack_limit_bytes)
        self._context.set_time_limit(max(limits.time_limit_ms, 1) / 1000)

    def _call(self, function: Any, seconds: float, *args: Any) -> Any:
        self._context.set_time_limit(seconds)
        try:
            return function(*args)
        except quickjs.JSException as exc:
            limit = _limit_message(exc, seconds)
            if limit is not None:
                raise JsLimitExceeded(limit) from None
            raise JsError(str(exc).splitlines()[0] if str(exc) else "JavaScript failed") from None

    def evaluate(self, expression: str, json_text: str, node_text: str | None, execution_text: str) -> Any:
        """The value of one NodeDrop expression, or :data:`UNDEFINED`; raises JsError when it threw."""
        answer = json.loads(self._call(self._evaluate, self.limits.time_limit_ms / 1000,
                                       expression, json_text, node_text, execution_text))
        kind = answer["k"]
        if kind == "v":
            return answer["v"]
        if kind == "e":
            raise JsError(answer["v"])
        return UNDEFINED

    def run_code(self, code: str, items_text: str, timeout_ms: int) -> Any:
        """What the Code node's async body returns (:data:`UNDEFINED` for nothing); raises JsError."""
        seconds = max(timeout_ms, 1) / 1000
        deadline = time.monotonic() + seconds
        self._call(self._start_code, seconds, code, items_text)
        answer = json.loads(self._call(self._code_result, seconds))
        # Promises settle as the job queue runs; a body that awaits something that never resolves leaves
        # the queue empty while still pending. The limit covers all the jobs together: an endless chain
        # of awaits would otherwise run each short job under a fresh limit, for ever.
        while answer["k"] == "p":
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise JsLimitExceeded(f"JavaScript ran longer than its time limit of {seconds * 1000:g} ms")
            self._context.set_time_limit(remaining)
            try:
                ran = self._context.execute_pending_job()
            except quickjs.JSException as exc:
                limit = _limit_message(exc, seconds)
                raise JsLimitExceeded(limit or str(exc)) from None
            answer = json.loads(self._call(self._code_result, seconds))
            if not ran and answer["k"] == "p":
                raise JsError("the code awaited a promise that never settles")
        if answer["k"] == "e":
            raise JsError(answer["v"])
        return UNDEFINED if answer["k"] == "u" else answer["v"]


_local = threading.local()


def thread_sandbox(limits: JsLimits) -> JsSandbox:
    """This thread's sandbox, created on first use and kept for the life of the thread (so a worker
    process builds one and reuses it for every execution, also in children forked after it)."""
    sandbox: JsSandbox | None = getattr(_local, "sandbox", None)
    if sandbox is None:
        sandbox = _local.sandbox = JsSandbox(limits)
    elif sandbox.limits != limits:
        sandbox.retune(limits)
    return sandbox


# Built when the engine is imported: a worker imports it before it forks a child per execution
# (EXECUTION_ISOLATION=fork), and each child then inherits a ready context instead of spending 3.3 ms
# building its own.
_local.sandbox = JsSandbox(JsLimits())
