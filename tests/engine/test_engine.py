import json
import threading
import time

import pytest

from nodedrop_rq.workflow import Limits, NodeType, parse_workflow, run_workflow
from nodedrop_rq.workflow.registry import register_node_type, unregister_node_type
from tests.conftest import wait_for

from .helpers import conn, node, out, run, trigger, workflow


def if_doc(value, *extra_nodes, extra_connections=()):
    nodes = [
        trigger(),
        node("check", "ifElse", "Check", condition={"key": "go", "expression": "equal", "value": "yes"}),
        node("yes", "set", "Yes", values=[{"keyValue": {"key": "branch", "value": "yes"}}]),
        node("yes2", "set", "Yes Again", values=[{"keyValue": {"key": "again", "value": True}}]),
        node("no", "set", "No", values=[{"keyValue": {"key": "branch", "value": "no"}}]),
        *extra_nodes,
    ]
    connections = [
        conn("t", "check"),
        conn("check", "yes", "true"),
        conn("yes", "yes2"),
        conn("check", "no", "false"),
        *extra_connections,
    ]
    return workflow(nodes, connections), {"go": value}


def test_branch_not_taken_is_skipped_with_its_descendants():
    doc, data = if_doc("no")
    result = run(doc, data)
    statuses = {k: v.status for k, v in result.nodes.items()}
    assert statuses == {"t": "succeeded", "check": "succeeded", "yes": "skipped", "no": "succeeded", "yes2": "skipped"}
    assert result.nodes["yes"].skip_reason == "received no items"
    assert result.output == [{"json": {"go": "no", "branch": "no"}}]


def test_merge_waits_for_all_inputs_and_runs_with_what_arrived():
    merge = node("m", "merge", "Merge")
    doc, data = if_doc("yes", merge, extra_connections=[conn("yes2", "m"), conn("no", "m")])
    result = run(doc, data)
    order = list(result.nodes)
    assert order.index("m") > order.index("yes2") and order.index("m") > order.index("no")
    assert out(result, "m") == [{"go": "yes", "branch": "yes", "again": True}]
    assert result.nodes["m"].input_count == 1


def test_merge_with_all_inputs_delivering():
    doc = workflow(
        [
            trigger(),
            node("a", "set", values=[{"keyValue": {"key": "a", "value": 1}}]),
            node("b", "set", values=[{"keyValue": {"key": "b", "value": 2}}]),
            node("m", "merge"),
        ],
        [conn("t", "a"), conn("t", "b"), conn("a", "m"), conn("b", "m")],
    )
    result = run(doc)
    assert out(result, "m") == [{"a": 1}, {"b": 2}]
    assert result.nodes["m"].input_count == 2


def test_node_receiving_nothing_from_any_input_is_skipped():
    doc = workflow(
        [
            trigger(),
            node("i", "ifElse", condition={"key": "x", "expression": "equal", "value": "1"}),
            node("a", "set"),
            node("b", "set"),
            node("m", "merge"),
            node("after", "set"),
        ],
        [
            conn("t", "i"),
            conn("i", "a", "true"),
            conn("i", "b", "true"),
            conn("a", "m"),
            conn("b", "m"),
            conn("m", "after"),
        ],
    )
    result = run(doc, {"x": "2"})
    assert [result.nodes[n].status for n in ("a", "b", "m", "after")] == ["skipped"] * 4
    # No leaf ran: the output is the last node that did.
    assert result.output == [{"json": {"x": "2"}}]


def test_disabled_node_is_skipped_like_nodedrop():
    doc = workflow(
        [
            trigger(),
            node("d", "set", disabled=True, values=[{"keyValue": {"key": "a", "value": 1}}]),
            node("after", "set"),
        ]
    )
    result = run(doc)
    assert result.status == "succeeded"
    assert result.nodes["d"].status == "skipped" and result.nodes["d"].skip_reason == "disabled"
    assert result.nodes["after"].status == "skipped"


def test_failure_stops_the_run_and_skips_the_rest():
    doc = workflow([trigger(), node("boom", "stop-and-error", "Boom", errorMessage="bad"), node("after", "set")])
    events = []
    result = run(doc, on_event=events.append)
    assert result.status == "failed"
    assert result.error.to_dict() == {
        "nodeId": "boom",
        "nodeType": "stop-and-error",
        "nodeName": "Boom",
        "message": "bad",
    }
    assert result.nodes["after"].status == "skipped"
    assert "Boom" in result.nodes["after"].skip_reason
    assert result.output == []
    assert [(e.kind, e.node_id) for e in events] == [
        ("node-started", "t"),
        ("node-completed", "t"),
        ("node-started", "boom"),
        ("node-failed", "boom"),
        ("node-skipped", "after"),
    ]
    failed = events[3]
    assert failed.error == "bad" and failed.duration_ms is not None and failed.node_type == "stop-and-error"


def test_continue_on_fail_with_always_output_data_turns_the_error_into_an_item():
    # NodeService.executeNode (NodeDrop) continues only when both settings are on.
    both = {"continueOnFail": True, "alwaysOutputData": True}
    doc = workflow(
        [
            trigger(),
            node("boom", "stop-and-error", errorMessage="bad {{ $json.x }}", settings=both),
            node("after", "set"),
        ]
    )
    result = run(doc, {"x": 1})
    assert result.status == "succeeded"
    assert result.nodes["boom"].status == "succeeded" and result.nodes["boom"].error == "bad 1"
    assert out(result, "after") == [{"error": "bad 1", "errorDetails": {"message": "bad 1", "name": "Error"}}]
    for alone in ({"continueOnFail": True}, {"alwaysOutputData": True}):
        doc["nodes"][1]["settings"] = alone
        failed = run(doc, {"x": 1})
        assert failed.status == "failed" and failed.nodes["after"].status == "skipped"


def test_always_output_data_alone_changes_nothing_on_success():
    doc = workflow(
        [
            trigger(),
            node("j", "json", jsonData="[]", settings={"alwaysOutputData": True}),
            node("after", "set"),
        ]
    )
    result = run(doc)
    assert out(result, "j") == [] and result.nodes["after"].status == "skipped"


def test_timeout_fails_the_node_and_stops_its_sleep():
    doc = workflow([trigger(), node("slow", "delay", amount=30, timeUnit="seconds", settings={"timeout": 100})])
    before = {t.name for t in threading.enumerate()}
    started = time.monotonic()
    result = run(doc)
    assert time.monotonic() - started < 5
    assert result.status == "failed"
    assert result.error.message == "node timed out after 100 ms"
    # The abandoned sleep is woken up and its thread ends.
    wait_for(lambda: "node-slow" not in {t.name for t in threading.enumerate()} - before, 5,
             what="the timed-out node's thread to end")


def test_timeout_with_continue_on_fail():
    settings = {"timeout": 50, "continueOnFail": True, "alwaysOutputData": True}
    doc = workflow([trigger(), node("slow", "delay", amount=30, settings=settings)])
    result = run(doc)
    assert result.status == "succeeded"
    assert out(result, "slow")[0]["error"] == "node timed out after 50 ms"


def test_on_event_exceptions_propagate_immediately():
    class Cancelled(Exception):
        pass

    calls = []

    def on_event(event):
        calls.append(event.kind)
        if event.kind == "node-completed":
            raise Cancelled()

    doc = workflow([trigger(), node("a", "set"), node("b", "set")])
    with pytest.raises(Cancelled):
        run(doc, on_event=on_event)
    assert calls == ["node-started", "node-completed"]


def test_events_and_result_are_json_serialisable():
    events = []
    doc, data = if_doc("yes")
    result = run(doc, data, on_event=events.append)
    assert {e.kind for e in events} == {"node-started", "node-completed", "node-skipped"}
    completed = [e for e in events if e.kind == "node-completed"]
    assert all(e.duration_ms is not None and e.output_count == 1 for e in completed)
    json.dumps([e.to_dict() for e in events])
    as_dict = json.loads(json.dumps(result.to_dict()))
    assert as_dict["status"] == "succeeded"
    assert [n["nodeId"] for n in as_dict["nodes"]] == list(result.nodes)
    run_yes = next(n for n in as_dict["nodes"] if n["nodeId"] == "yes")
    assert run_yes["output"]["main"][0]["json"]["branch"] == "yes"
    assert run_yes["inputCount"] == 1 and run_yes["outputCount"] == 1
    assert as_dict["output"] == [{"json": {"go": "yes", "branch": "yes", "again": True}}]


def test_output_of_several_leaves_in_execution_order():
    doc = workflow(
        [
            trigger(),
            node("a", "set", values=[{"keyValue": {"key": "a", "value": 1}}]),
            node("b", "set", values=[{"keyValue": {"key": "b", "value": 2}}]),
        ],
        [conn("t", "a"), conn("t", "b")],
    )
    assert run(doc).output == [{"json": {"a": 1}}, {"json": {"b": 2}}]


def test_output_item_limit():
    doc = workflow([trigger(), node("j", "json", jsonData="{{ [1, 2, 3].concat([4]) }}")])
    result = run(doc, limits=Limits(max_items=3))
    assert result.status == "failed" and "limit is 3" in result.error.message


def test_execution_id_and_workflow_name_in_expressions():
    doc = workflow(
        [
            trigger(),
            node(
                "s",
                "set",
                values=[
                    {"keyValue": {"key": "e", "value": "{{ $execution.id }}"}},
                    {"keyValue": {"key": "w", "value": "{{ $workflow.name }}"}},
                ],
            ),
        ],
        name="Flow",
    )
    result = run_workflow(parse_workflow(doc), [], execution_id="exec-1")
    # NodeDrop's backend puts no $workflow in the expression context (SecureExecutionService), so the
    # reference stays as text there and here.
    assert out(result, "s") == [{"e": "exec-1", "w": "{{ $workflow.name }}"}]


class Mutator(NodeType):
    type = "test-mutator"

    def execute(self, ctx, inputs):
        for item in ctx.items:
            item["json"]["mutated"] = True
        return {"main": ctx.items + [{"plain": "dict"}]}


class BadOutput(NodeType):
    type = "test-bad-output"

    def execute(self, ctx, inputs):
        return {"main": ["not an item"]}


@pytest.fixture
def custom_types():
    register_node_type(Mutator, replace=True)
    register_node_type(BadOutput(), replace=True)
    yield
    unregister_node_type("test-mutator")
    unregister_node_type("test-bad-output")


def test_non_pure_nodes_get_copies_and_outputs_are_normalised(custom_types):
    doc = workflow([trigger(), node("m", "test-mutator")])
    result = run(doc, {"a": 1})
    assert out(result, "m") == [{"a": 1, "mutated": True}, {"plain": "dict"}]
    assert out(result, "t") == [{"a": 1}]


def test_invalid_node_output_is_a_node_error(custom_types):
    result = run(workflow([trigger(), node("b", "test-bad-output")]))
    assert result.status == "failed" and "not an item" in result.error.message


def test_node_type_missing_at_run_time(custom_types):
    wf = parse_workflow(workflow([trigger(), node("m", "test-mutator")]))
    unregister_node_type("test-mutator")
    result = run_workflow(wf, [])
    assert result.status == "failed" and result.error.message == "unknown node type 'test-mutator'"


def test_execution_order_is_topological_with_document_order_ties():
    doc = workflow(
        [node("late", "set"), trigger(), node("b", "set"), node("a", "set")],
        [conn("t", "late"), conn("late", "a"), conn("t", "b")],
    )
    assert list(run(doc).nodes) == ["t", "late", "b", "a"]


def test_interrupt_exceptions_propagate_instead_of_failing_the_node():
    import pytest

    from nodedrop_rq.workflow import parse_workflow, register_function, run_workflow

    class Interrupted(Exception):
        pass

    def interrupt(items, parameters):
        raise Interrupted("job timeout")

    register_function("interrupt_for_test", interrupt)
    workflow = parse_workflow({
        "name": "interrupt",
        "nodes": [{"id": "t", "type": "manual-trigger", "name": "T", "parameters": {}},
                  {"id": "f", "type": "function", "name": "F", "parameters": {"functionName": "interrupt_for_test"}}],
        "connections": [{"id": "c", "sourceNodeId": "t", "sourceOutput": "main", "targetNodeId": "f",
                         "targetInput": "main"}],
    })
    assert run_workflow(workflow, []).status == "failed"
    with pytest.raises(Interrupted):
        run_workflow(workflow, [], interrupts=(Interrupted,))
