import sys
import textwrap
from importlib.metadata import EntryPoint

import pytest

from nodedrop_rq.workflow import WorkflowInvalid, load_function_modules, parse_workflow, register_function, registry
from nodedrop_rq.workflow.functions import unregister_function

from .helpers import node, out, run, trigger, workflow


def test_function_node_calls_the_registered_function():
    def add_vat(items, params):
        rate = params["rate"]
        return [{"net": i["json"]["net"], "gross": round(i["json"]["net"] * (1 + rate), 2)} for i in items]

    register_function("test-add-vat", add_vat)
    try:
        doc = workflow([trigger(), node("f", "function", functionName="test-add-vat", rate="{{ $json.rate }}")])
        result = run(doc, [{"net": 10, "rate": 0.5}, {"net": 4, "rate": 0.1}])
        assert out(result, "f") == [{"net": 10, "gross": 15.0}, {"net": 4, "gross": 6.0}]
    finally:
        unregister_function("test-add-vat")


def test_function_results_items_none_and_errors():
    register_function("test-items", lambda items, params: [{"json": {"x": 1}}, {"y": 2}])
    register_function("test-none", lambda items, params: None)
    register_function("test-object", lambda items, params: [{"when": object()}])
    register_function("test-raises", lambda items, params: 1 / 0)
    try:
        assert out(run(workflow([trigger(), node("f", "function", functionName="test-items")])), "f") == [
            {"x": 1},
            {"y": 2},
        ]
        assert out(run(workflow([trigger(), node("f", "function", functionName="test-none")])), "f") == []
        bad = run(workflow([trigger(), node("f", "function", functionName="test-object")]))
        assert "not JSON" in bad.error.message
        raised = run(workflow([trigger(), node("f", "function", functionName="test-raises")]))
        assert "division by zero" in raised.error.message
        missing = run(workflow([trigger(), node("f", "function", functionName="nope")]))
        assert "no Python function is registered as 'nope'" in missing.error.message
    finally:
        for name in ("test-items", "test-none", "test-object", "test-raises"):
            unregister_function(name)


def test_function_cannot_mutate_upstream_items():
    def mutate(items, params):
        items[0]["json"]["changed"] = True
        return items

    register_function("test-mutate", mutate)
    try:
        result = run(workflow([trigger(), node("f", "function", functionName="test-mutate")]), {"a": 1})
        assert out(result, "t") == [{"a": 1}]
        assert out(result, "f") == [{"a": 1, "changed": True}]
    finally:
        unregister_function("test-mutate")


def test_register_function_checks_arguments():
    with pytest.raises(ValueError):
        register_function("", len)
    with pytest.raises(TypeError):
        register_function("x", 5)


def test_load_function_modules(tmp_path, monkeypatch):
    (tmp_path / "nd_test_functions.py").write_text(
        textwrap.dedent("""
        from nodedrop_rq.workflow import register_function
        register_function("test-from-module", lambda items, params: [{"loaded": True}])
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        load_function_modules(["nd_test_functions", " "])
        result = run(workflow([trigger(), node("f", "function", functionName="test-from-module")]))
        assert out(result, "f") == [{"loaded": True}]
        with pytest.raises(ImportError, match="nd_no_such_module"):
            load_function_modules(["nd_no_such_module"])
    finally:
        unregister_function("test-from-module")
        sys.modules.pop("nd_test_functions", None)


SLUGIFY = """
import re

from nodedrop_rq.workflow import NodeType
from nodedrop_rq.workflow.params import options, string


class Slugify(NodeType):
    type = "acme-slugify"
    display_name = "Slugify"
    params = {"field": string(required=True), "separator": options("-", "_")}
    pure = True

    def execute(self, ctx, inputs):
        out = []
        for index, item in enumerate(ctx.items):
            field = ctx.parameter("field", item_index=index)
            separator = ctx.parameter("separator", "-")
            data = dict(item["json"])
            data[field] = re.sub(r"[^a-z0-9]+", separator, str(data.get(field, "")).lower()).strip(separator)
            out.append({"json": data})
        return {"main": out}


class Broken:
    pass
"""


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    (tmp_path / "acme_nodes.py").write_text(SLUGIFY)
    monkeypatch.syspath_prepend(str(tmp_path))
    points = [
        EntryPoint("acme-slugify", "acme_nodes:Slugify", registry.ENTRY_POINT_GROUP),
        EntryPoint("acme-broken", "acme_nodes:Broken", registry.ENTRY_POINT_GROUP),
        EntryPoint("acme-set", "nodedrop_rq.workflow.nodes.set_fields:SetNode", registry.ENTRY_POINT_GROUP),
    ]
    monkeypatch.setattr(registry, "entry_points", lambda group: points if group == registry.ENTRY_POINT_GROUP else [])
    registry.reload_node_types()
    yield
    monkeypatch.undo()
    registry.reload_node_types()
    sys.modules.pop("acme_nodes", None)


def test_custom_node_type_from_entry_point(plugin):
    doc = workflow([trigger(), node("s", "acme-slugify", field="title", separator="_")])
    assert out(run(doc, {"title": "Hello, World!"}), "s") == [{"title": "hello_world"}]
    errors = registry.plugin_errors()
    assert any("acme-broken" in e for e in errors)
    assert any("replace built-in node type 'set'" in e for e in errors)
    with pytest.raises(WorkflowInvalid) as info:
        parse_workflow(workflow([trigger(), node("s", "acme-slugify", separator="+"), node("x", "acme-missing")]))
    messages = {p.path: p.message for p in info.value.problems}
    assert messages["nodes[1].parameters.field"] == "is required"
    assert "must be one of" in messages["nodes[1].parameters.separator"]
    assert "failed to load" in messages["nodes[2].type"]


def test_custom_type_may_provide_code(monkeypatch):
    from nodedrop_rq.workflow import NodeType

    class SafeCode(NodeType):
        type = "code"

        def execute(self, ctx, inputs):
            return {"main": [{"json": {"handled": "by operator"}}]}

    registry.register_node_type(SafeCode, replace=True)
    try:
        assert out(run(workflow([trigger(), node("c", "code", code="ignored")])), "c") == [{"handled": "by operator"}]
    finally:
        registry.unregister_node_type("code")
    # Unregistered, the built-in Code node (JavaScript in the sandbox) is back.
    assert out(run(workflow([trigger(), node("c", "code", code="return {n: 1}")])), "c") == [{"n": 1}]


@pytest.mark.parametrize("timeout_ms", [None, 5000])
def test_a_failed_node_releases_its_data_at_once(timeout_ms):
    # A node that ran out of memory must not keep what it allocated alive (through its traceback's
    # frames) until the cyclic GC runs: the worker has to record the failure with that memory.
    import gc
    import weakref

    held: list[weakref.ref] = []

    class Block:
        pass

    def hog(items, params):
        blocks = [Block() for _ in range(3)]
        held.extend(weakref.ref(b) for b in blocks)
        raise MemoryError

    register_function("test-hog", hog)
    gc.disable()
    try:
        settings = {"timeout": timeout_ms} if timeout_ms else {}
        doc = workflow([trigger(), node("f", "function", functionName="test-hog", settings=settings)])
        result = run(doc)
        assert "out of memory" in result.error.message
        assert held and all(ref() is None for ref in held)
    finally:
        gc.enable()
        unregister_function("test-hog")
