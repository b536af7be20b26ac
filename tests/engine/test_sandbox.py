"""The JavaScript sandbox: no host access, limits per evaluation, nothing shared between executions."""

from __future__ import annotations

import os
import time

import pytest

from nodedrop_rq.workflow import Limits
from nodedrop_rq.workflow.js import JsLimits

from .helpers import node, out, run, trigger, workflow

TIGHT = Limits(js=JsLimits(time_limit_ms=300, memory_limit_bytes=32 * 1024 * 1024, stack_limit_bytes=256 * 1024),
               code_max_timeout_ms=300)


def code(source: str, data=None, limits: Limits | None = None, **parameters):
    doc = workflow([trigger(), node("c", "code", code=source, **parameters)])
    return run(doc, data if data is not None else {"a": 1}, limits=limits)


def expression(text: str, limits: Limits | None = None):
    doc = workflow([trigger(), node("s", "set", values=[{"keyValue": {"key": "v", "value": text}}])])
    return run(doc, {"a": 1}, limits=limits)


def test_no_host_objects_exist():
    names = ["require", "process", "module", "std", "os", "fetch", "XMLHttpRequest", "setTimeout", "Bun",
             "Deno", "print", "scriptArgs", "WebAssembly"]
    source = f"return {names!r}.map(n => [n, typeof globalThis[n]]);"
    assert dict(out(code(source), "c")) == {name: "undefined" for name in names}


def test_modules_cannot_be_loaded():
    result = code("await import('os'); return 1;")
    assert result.status == "failed" and "could not load module" in result.error.message


def test_constructor_chains_reach_only_the_sandbox():
    source = ("const F = (function () {}).constructor.constructor;"
              "return [F('return typeof process')(), F('return typeof std')(), F('return this === globalThis')()];")
    assert out(code(source), "c") == ["undefined", "undefined", True]


def test_prototype_pollution_does_not_outlive_its_code():
    polluter = ("Object.prototype.polluted = 1; Array.prototype.map = null; JSON.parse = () => 'owned';"
                "globalThis.leak = 1; try { Object.defineProperty(Object.prototype, 'x', {value: 1}); } catch (e) {}"
                "return [({}).polluted, typeof [].map, JSON.parse('1'), typeof leak];")
    # Sloppy-mode assignments to frozen built-ins are ignored: even the polluting code sees nothing.
    assert out(code(polluter), "c") == [None, "function", 1, "undefined"]
    strict = code("'use strict'; Object.prototype.polluted = 1;")
    assert strict.status == "failed" and "JavaScript execution failed" in strict.error.message
    # A later execution (same worker process, same context) and a later expression see clean built-ins.
    check = "return [({}).polluted, [1].map(x => x * 2), JSON.parse('2'), typeof leak, ({}).x];"
    assert out(code(check), "c") == [None, [2], 2, "undefined", None]
    assert out(expression("{{ [1, 2].map(x => x + ({}).polluted) }}"), "s")[0]["v"] == [None, None]


def test_an_infinite_loop_stops_at_the_time_limit():
    started = time.monotonic()
    result = code("while (true) {}", limits=TIGHT, timeout=60_000)
    assert time.monotonic() - started < 5
    assert result.status == "failed"
    assert result.error.message == "JavaScript execution failed: Script execution timed out after 300ms"
    looping = expression("{{ (() => { while (true) {} })() }}", limits=TIGHT)
    assert looping.status == "failed" and "time limit of 300 ms" in looping.error.message
    assert "while (true)" in looping.error.message  # the expression is named


def test_the_time_limit_is_per_evaluation():
    busy = "const end = Date.now() + 600; while (Date.now() < end) {} return 1;"
    limits = Limits(js=JsLimits(time_limit_ms=1000), code_max_timeout_ms=1000)
    doc = workflow([trigger(), node("a", "code", code=busy), node("b", "code", code=busy)])
    assert run(doc, {"a": 1}, limits=limits).status == "succeeded"  # 1.2 s in all, 0.6 s each


def test_huge_allocations_hit_the_memory_limit_and_the_sandbox_recovers():
    for source in ("let a = []; while (true) a.push('x'.repeat(1 << 16));", "return 'x'.repeat(2 ** 29).length;",
                   "return new Array(2 ** 26).fill(1.5).length;"):
        result = code(source, limits=TIGHT)
        assert result.status == "failed" and "JavaScript execution failed" in result.error.message, source
    assert out(code("return items.length;", limits=TIGHT), "c") == [1]


def test_deep_recursion_hits_the_stack_limit():
    result = code("function f(n) { return f(n + 1) + 1; } return f(0);", limits=TIGHT)
    assert result.status == "failed" and "stack" in result.error.message.lower()
    deep = expression("{{ (function f(n) { return f(n + 1); })(0) }}", limits=TIGHT)
    assert deep.status == "failed" and "stack limit" in deep.error.message
    assert out(code("return 1;", limits=TIGHT), "c") == [1]


def test_a_forked_child_evaluates_with_the_parents_sandbox():
    assert out(code("return 1;"), "c") == [1]  # the sandbox of this thread now exists
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            result = code("return items[0].a + 41;")
            os.write(write, str(out(result, "c")).encode())
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        assert pipe.read() == "[42]" and status == 0


@pytest.mark.parametrize("language", ["python"])
def test_python_code_is_refused_at_validation(language):
    from nodedrop_rq.workflow import WorkflowInvalid

    with pytest.raises(WorkflowInvalid, match="python3 process"):
        code("print(1)", language=language)


def test_expression_running_out_of_memory_fails_the_node():
    result = expression("{{ (() => { let a = []; while (true) a.push('x'.repeat(1 << 16)); })() }}", limits=TIGHT)
    assert result.status == "failed" and "memory" in result.error.message


def test_an_endless_chain_of_awaits_stops_at_the_time_limit():
    started = time.monotonic()
    result = code("for (;;) { await null; }", limits=TIGHT, timeout=60_000)
    assert time.monotonic() - started < 5
    assert result.error.message == "JavaScript execution failed: Script execution timed out after 300ms"


def test_a_regex_that_backtracks_for_ever_stops_at_the_time_limit():
    condition = {"key": "s", "expression": "regex", "value": "^(a+)+$"}
    doc = workflow([trigger(), node("if", "ifElse", mode="simple", condition=condition)])
    started = time.monotonic()
    result = run(doc, {"s": "a" * 40 + "b"}, limits=TIGHT)
    assert time.monotonic() - started < 5
    assert result.status == "failed" and "time limit of 300 ms" in result.error.message
