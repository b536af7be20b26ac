import time

import pytest

from nodedrop_rq.workflow import Limits

from .helpers import conn, jsons, node, out, run, trigger, workflow


def one(type_, input_data=None, limits=None, settings=None, **params):
    doc = workflow([trigger(), node("n", type_, settings=settings, **params)])
    return run(doc, input_data, limits=limits)


# --- triggers -------------------------------------------------------------------------------------


# Field by field against NodeDrop's trigger nodes in tests/conformance; these check the input's part.


@pytest.mark.parametrize("type_", ["manual-trigger", "webhook-trigger", "schedule-trigger"])
def test_triggers_emit_one_item_whatever_the_input(type_):
    doc = workflow([node("t", type_)])
    for data in (None, {"a": 1}, [{"json": {"a": 1}}, {"b": 2}]):
        (item,) = out(run(doc, data), "t")
        assert "a" not in item and ("triggerType" in item or "method" in item)


def test_manual_trigger_custom_and_default_data():
    doc = workflow([node("t", "manual-trigger", allowCustomData=True, defaultData='{"x": 1}')])
    assert out(run(doc), "t")[0]["customData"] == {"x": 1}
    assert out(run(doc, [{"y": 2}, {"z": 3}]), "t")[0]["customData"] == {"y": 2}
    assert out(run(doc, {"a": 1, "constructor": 1}), "t")[0]["customData"] == {"a": 1}
    small = workflow([node("t", "manual-trigger", allowCustomData=True, maxDataSize=5)])
    refused = run(small, {"long": "x" * 10})
    assert refused.status == "failed" and "Trigger data validation failed: Data size" in refused.error.message


# --- set ------------------------------------------------------------------------------------------


def test_set_nested_paths_and_row_shapes():
    result = one(
        "set",
        {"name": "John", "user": {"age": 1}},
        values=[
            {"keyValue": {"key": "status", "value": "active"}},
            {"values": {"keyValue": {"key": "user.address.city", "value": "New York"}}},
            {"key": "items[1].name", "value": "second"},
            {"keyValue": {"key": "", "value": "ignored"}},
        ],
    )
    assert out(result, "n") == [
        {
            "name": "John",
            "user": {"age": 1, "address": {"city": "New York"}},
            "status": "active",
            "items": [None, {"name": "second"}],
        }
    ]


def test_set_resolves_once_and_does_not_touch_its_input():
    # Set.node.ts: `values` is resolved once; with several items $json is their array.
    result = one(
        "set",
        [{"n": 1, "deep": {"a": 1}}, {"n": 2, "deep": {"a": 2}}],
        values=[
            {"keyValue": {"key": "second", "value": "{{ $json[1].n * 2 }}"}},
            {"keyValue": {"key": "deep.b", "value": "{{ $json.deep.a }}"}},
        ],
    )
    assert out(result, "n") == [
        {"n": 1, "deep": {"a": 1, "b": "{{ $json.deep.a }}"}, "second": 4},
        {"n": 2, "deep": {"a": 2, "b": "{{ $json.deep.a }}"}, "second": 4},
    ]
    assert out(result, "t") == [{"n": 1, "deep": {"a": 1}}, {"n": 2, "deep": {"a": 2}}]


def test_set_with_no_input_builds_one_item():
    doc = workflow(
        [node("j", "json", jsonData="[]"), node("s", "set", values=[{"keyValue": {"key": "a", "value": 1}}])]
    )
    result = run(doc)
    assert result.nodes["s"].status == "skipped"  # nothing arrived: the node does not run at all


# --- ifElse / if ----------------------------------------------------------------------------------


def branches(result):
    return out(result, "n", "true"), out(result, "n", "false")


@pytest.mark.parametrize(
    ("condition", "taken"),
    [
        ({"key": "status", "expression": "equal", "value": "active"}, "true"),
        ({"key": "status", "expression": "notEqual", "value": "active"}, "false"),
        ({"key": "amount", "expression": "larger", "value": "100"}, "true"),
        ({"key": "amount", "expression": "smallerEqual", "value": "150"}, "true"),
        ({"key": "{{json.amount}}", "expression": "largerEqual", "value": "151"}, "false"),
        ({"key": "user.email", "expression": "endsWith", "value": "@example.com"}, "true"),
        ({"key": "user.email", "expression": "contains", "value": "zzz"}, "false"),
        ({"key": "note", "expression": "isEmpty", "value": ""}, "true"),
        ({"key": "status", "expression": "isNotEmpty", "value": ""}, "true"),
        ({"key": "status", "expression": "regex", "value": "^act"}, "true"),
        ({"key": "{{ $json.amount * 2 }}", "expression": "equal", "value": "300"}, "true"),
        ({"key": "literal", "expression": "equal", "value": "literal"}, "true"),  # NodeDrop: unknown key is a literal
        ({"key": "status", "expression": "equal", "value": "{{ $json.status }}"}, "true"),
    ],
)
def test_if_else_simple(condition, taken):
    data = {"status": "active", "amount": 150, "user": {"email": "a@example.com"}, "note": "  "}
    true, false = branches(one("ifElse", data, mode="simple", condition=condition))
    assert (true if taken == "true" else false) == [data]
    assert (false if taken == "true" else true) == []


def test_if_else_first_item_decides_for_all():
    true, false = branches(
        one("ifElse", [{"a": 1}, {"a": 0}], condition={"key": "a", "expression": "equal", "value": "1"})
    )
    assert true == [{"a": 1}, {"a": 0}] and false == []


def test_if_else_combine_and_grouped():
    data = {"a": 3, "b": 4}
    cond = lambda key, value: {"condition": {"key": key, "expression": "equal", "value": value}}  # noqa: E731
    true, _ = branches(
        one("ifElse", data, mode="combine", combineOperation="AND", conditions=[cond("a", "3"), cond("b", "4")])
    )
    assert true == [data]
    _, false = branches(
        one("ifElse", data, mode="combine", combineOperation="AND", conditions=[cond("a", "3"), cond("b", "5")])
    )
    assert false == [data]
    true, _ = branches(
        one(
            "ifElse",
            data,
            mode="combine",
            combineOperation="OR",
            conditions=[{"values": cond("a", "9")}, cond("b", "4")],
        )
    )
    assert true == [data]
    _, false = branches(one("ifElse", data, mode="combine", conditions=[]))
    assert false == [data]
    # (a == 3 || a == 4) && (b == 1 || b == 4)
    groups = [
        {"groupOperation": "OR", "conditions": [cond("a", "3"), cond("a", "4")]},
        {"values": {"groupOperation": "OR", "conditions": [cond("b", "1"), cond("b", "4")]}},
    ]
    true, _ = branches(one("ifElse", data, mode="grouped", combineGroups="AND", conditionGroups=groups))
    assert true == [data]
    _, false = branches(one("ifElse", {"a": 3, "b": 2}, mode="grouped", combineGroups="AND", conditionGroups=groups))
    assert false == [{"a": 3, "b": 2}]


def test_removed_if_node_is_refused():
    from nodedrop_rq.workflow import WorkflowInvalid

    with pytest.raises(WorkflowInvalid, match="NodeDrop removed the 'if' node"):
        one("if", {"x": "y"}, condition={"key": "x", "expression": "equal", "value": "y"})


# --- switch ---------------------------------------------------------------------------------------

TICKETS = [
    {"id": 1, "priority": "high"},
    {"id": 2, "category": "billing"},
    {"id": 3, "priority": "low"},
    {"id": 4, "priority": "high", "category": "billing"},
]
RULES = [
    {"rule": {"key": "priority", "expression": "equals", "value": "high"}},
    {"id": "money", "values": {"rule": {"key": "category", "expression": "equals", "value": "billing"}}},
]


def switch_doc(rules, *outputs):
    nodes = [trigger(), node("sw", "switch", mode="rules", outputs=rules)]
    connections = [conn("t", "sw")]
    for index, name in enumerate(outputs):
        nodes.append(node(f"o{index}", "set"))
        connections.append(conn("sw", f"o{index}", output=name))
    return workflow(nodes, connections)


def test_switch_first_match_wins_and_unmatched_items_are_dropped():
    result = run(switch_doc(RULES, "priority", "category"), TICKETS)
    assert [d["id"] for d in out(result, "o0")] == [1, 4]
    assert [d["id"] for d in out(result, "o1")] == [2]
    assert result.nodes["sw"].output_count == 3
    assert set(result.nodes["sw"].output) == {"output0", "output1"}


def test_switch_output_aliases():
    result = run(switch_doc(RULES, "output0", "money"), TICKETS)
    assert [d["id"] for d in out(result, "o0")] == [1, 4]
    assert [d["id"] for d in out(result, "o1")] == [2]


def test_switch_rules_on_the_same_key_share_the_output_name():
    rules = [
        {"rule": {"key": "priority", "expression": "equals", "value": "high"}},
        {"rule": {"key": "priority", "expression": "equals", "value": "low"}},
    ]
    result = run(switch_doc(rules, "priority", "output1"), TICKETS)
    assert [d["id"] for d in out(result, "o0")] == [1, 4, 3]  # rule by rule, as NodeDrop concatenates
    assert [d["id"] for d in out(result, "o1")] == [3]


def test_switch_operations_and_legacy_rule_shape():
    rules = [
        {"field": "n", "condition": "greaterThan", "value": "10"},
        {"rule": {"key": "n", "expression": "isEmpty", "value": ""}},
    ]
    result = run(switch_doc(rules, "output0", "output1"), [{"n": 11}, {"n": 0}, {"n": 5}])
    assert out(result, "o0") == [{"n": 11}]
    assert out(result, "o1") == [{"n": 0}]  # NodeDrop's switch treats 0 as empty


def test_switch_without_rules_and_expression_mode():
    result = run(
        workflow(
            [trigger(), node("sw", "switch", outputs=[]), node("p", "set")], [conn("t", "sw"), conn("sw", "p")]
        ),
        [{"a": 1}],
    )
    assert out(result, "p") == [{"a": 1}]
    doc = workflow(
        [
            trigger(),
            node("sw", "switch", mode="expression", expression="priority"),
            node("p0", "set"),
            node("p2", "set"),
            node("all", "set"),
        ],
        [conn("t", "sw"), conn("sw", "p0", "output0"), conn("sw", "p2", "output2"), conn("sw", "all")],
    )
    result = run(doc, [{"priority": 0}, {"priority": 2}, {"priority": 2}])
    assert out(result, "p0") == [{"priority": 0}]
    assert out(result, "p2") == [{"priority": 2}, {"priority": 2}]
    assert len(out(result, "all")) == 3
    doc["nodes"][1]["parameters"]["expression"] = "{{ $json.priority + 1 }}"
    result = run(doc, [{"priority": -1}, {"priority": 1}])
    assert out(result, "p0") == [{"priority": -1}] and out(result, "p2") == [{"priority": 1}]


# --- merge ----------------------------------------------------------------------------------------


def merge_result(mode, **params):
    doc = workflow(
        [
            trigger(),
            node("a", "json", jsonData='[{"id": 1, "name": "A"}, {"id": 2, "name": "B"}]'),
            node("b", "json", jsonData='[{"id": 2, "age": 30}, {"id": 3, "age": 40}, {"age": 50}]'),
            node("m", "merge", mode=mode, **params),
        ],
        [conn("t", "a"), conn("t", "b"), conn("a", "m"), conn("b", "m")],
    )
    return out(run(doc), "m")


def test_merge_modes():
    assert [d.get("id") for d in merge_result("append")] == [1, 2, 2, 3, None]
    assert merge_result("mergeByPosition") == [
        {"id": 2, "name": "A", "age": 30},
        {"id": 3, "name": "B", "age": 40},
        {"age": 50},
    ]
    assert merge_result("mergeByKey", mergeByKey="id") == [
        {"id": 1, "name": "A"},
        {"id": 2, "name": "B", "age": 30},
        {"id": 3, "age": 40},
    ]
    assert merge_result("keepFirst") == [{"id": 1, "name": "A"}, {"id": 2, "name": "B"}]
    assert [d.get("age") for d in merge_result("keepLast")] == [30, 40, 50]


# --- json, split, loop, data-preview ---------------------------------------------------------------


def test_json_node():
    assert out(one("json", jsonData='{"a": 1}'), "n") == [{"a": 1}]
    assert out(one("json", jsonData=[{"a": 1}, 2]), "n") == [{"a": 1}, 2]
    assert out(one("json", {"who": "Ada"}, jsonData='{"greeting": "hi {{ $json.who }}"}'), "n") == [
        {"greeting": "hi Ada"}
    ]
    result = one("json", {"bad": "x"}, jsonData='{{ "[" + $json.bad }}')
    assert result.status == "failed" and "Invalid JSON data" in result.error.message
    pairs = [{"keyValue": {"key": "user.name", "value": "=Ada"}}, {"values": {"keyValue": {"key": "=n", "value": 1}}}]
    assert out(one("json", mode="keyValue", keyValuePairs=pairs), "n") == [{"user": {"name": "Ada"}, "n": 1}]


def test_split_modes():
    data = [{"i": i, "type": "A" if i % 2 else "B"} for i in range(5)]
    batches = out(one("split", data, mode="batch", batchSize=2), "n")
    assert [b["batchSize"] for b in batches] == [2, 2, 1]
    assert batches[0]["batch"] == data[:2]
    assert [d["i"] for d in out(one("split", data, mode="evenOdd"), "n")] == [0, 2, 4]
    assert [d["i"] for d in out(one("split", data, mode="byField", splitField="type"), "n")] == [0, 2, 4]
    assert [d["i"] for d in out(one("split", data, mode="percentage", percentage=40), "n")] == [0, 1]
    assert [d["i"] for d in out(one("split", data, mode="parts", parts=2), "n")] == [0, 1, 2]


def test_loop_outputs():
    result = one("loop", [{"id": 1}, {"id": 2}, {"id": 3}], loopOver="items", batchSize=2)
    loop = out(result, "n", "loop")
    assert [d["id"] for d in loop] == [1, 2, 3]
    assert loop[0]["$iteration"] == 1 and loop[2]["$isLast"] is True and loop[2]["$batchIndex"] == 0
    assert loop[1]["$batchSize"] == 2 and loop[2]["$batchSize"] == 1
    assert out(result, "n", "done") == [{"completed": True, "totalIterations": 3}]
    repeat = out(one("loop", loopOver="repeat", repeatTimes=3), "n", "loop")
    assert [(d["iteration"], d["index"], d["total"]) for d in repeat] == [(1, 0, 3), (2, 1, 3), (3, 2, 3)]
    field = out(one("loop", {"users": [{"u": 1}, {"u": 2}]}, loopOver="field", fieldName="users"), "n", "loop")
    assert [d["u"] for d in field] == [1, 2]
    failed = one("loop", {"users": 5}, loopOver="field", fieldName="users")
    assert failed.status == "failed" and "is not an array" in failed.error.message


def test_loop_branches_feed_different_nodes():
    doc = workflow(
        [
            trigger(),
            node("l", "loop", loopOver="repeat", repeatTimes=2),
            node("each", "set"),
            node("after", "set"),
        ],
        [conn("t", "l"), conn("l", "each", "loop"), conn("l", "after", "done")],
    )
    result = run(doc)
    assert len(out(result, "each")) == 2
    assert out(result, "after") == [{"completed": True, "totalIterations": 2}]


def test_loop_body_runs_once_per_batch_in_sequence():
    # RealtimeExecutionEngine.executeLoopNode (NodeDrop): the nodes after `loop` run per batch, and only
    # then does `done` reach its nodes.
    doc = workflow(
        [
            trigger(),
            node("l", "loop", loopOver="repeat", repeatTimes=3, batchSize=1),
            node("wait", "delay", amount=30, timeUnit="milliseconds"),
            node("each", "set", values=[{"keyValue": {"key": "seen", "value": "{{ $json.iteration }}"}}]),
            node("after", "set", values=[{"keyValue": {"key": "last", "value": "{{ $node[\"each\"].seen }}"}}]),
        ],
        [conn("t", "l"), conn("l", "wait", "loop"), conn("wait", "each"), conn("l", "after", "done")],
    )
    events = []
    result = run(doc, on_event=events.append)
    started = [e.node_id for e in events if e.kind == "node-started"]
    assert started == ["t", "l", "wait", "each", "wait", "each", "wait", "each", "after"]
    waits = [e for e in events if e.kind == "node-completed" and e.node_id == "wait"]
    assert len(waits) == 3 and all(e.duration_ms >= 25 for e in waits)  # the delay slept each time
    assert [d["seen"] for d in out(result, "each")] == [1, 2, 3]
    # $node after the loop sees the last iteration, as NodeDrop's nodeOutputs (overwritten per run).
    assert out(result, "after")[0]["last"] == 3
    assert result.nodes["wait"].output_count == 3


def test_a_failing_loop_body_stops_the_loop():
    doc = workflow(
        [
            trigger(),
            node("l", "loop", loopOver="repeat", repeatTimes=3),
            node("boom", "code", code="if (items[0].iteration === 2) throw new Error('at 2'); return items;"),
            node("after", "set"),
        ],
        [conn("t", "l"), conn("l", "boom", "loop"), conn("l", "after", "done")],
    )
    events = []
    result = run(doc, on_event=events.append)
    assert result.status == "failed" and "at 2" in result.error.message
    assert [e.kind for e in events if e.node_id == "boom"] == ["node-started", "node-completed", "node-started",
                                                               "node-failed"]
    assert result.nodes["after"].status == "skipped"


def test_data_preview_outputs_one_preview_record():
    (record,) = out(one("data-preview", [{"a": 1}, {"b": 2}], previewFormat="json-compact"), "n")
    assert record["preview"] == '[{"a":1},{"b":2}]' and record["metadata"]["inputItems"] == 2


def test_stop_and_error():
    result = one("stop-and-error", {"sku": "X"}, errorMessage="Out of stock: {{ $json.sku }}")
    assert result.status == "failed"
    assert result.error.message == "Out of stock: X"
    assert result.error.node_type == "stop-and-error"
    obj = one("stop-and-error", errorType="errorObject", errorObject={"code": 42})
    assert obj.error.message == '{"code": 42}'
    assert one("stop-and-error").error.message.startswith("Workflow stopped")


# --- delay / wait ---------------------------------------------------------------------------------


def test_delay_adds_info_and_is_capped():
    started = time.monotonic()
    result = one("delay", {"a": 1}, limits=Limits(max_delay_seconds=0.05), amount=5, timeUnit="minutes")
    assert time.monotonic() - started < 5
    item = out(result, "n")[0]
    assert item["a"] == 1
    assert item["delayInfo"]["requestedDelay"] == {"amount": 5, "unit": "minutes", "milliseconds": 300000}
    assert item["delayInfo"]["cappedTo"] == {"milliseconds": 50}
    assert float(item["delayInfo"]["actualDelay"]["seconds"]) >= 0.04


def test_delay_milliseconds():
    item = out(one("delay", amount=20, timeUnit="milliseconds"), "n")[0]
    assert 15 <= item["delayInfo"]["actualDelay"]["milliseconds"] < 2000
    assert "cappedTo" not in item["delayInfo"]


def test_wait_modes():
    assert out(one("wait", [{"a": 1}], mode="afterInterval", duration=0.01, unit="seconds"), "n") == [{"a": 1}]
    # An entry wait node gets no items: NodeDrop then emits a completion item.
    done = out(run(workflow([node("w", "wait", duration=0.01)], [])), "w")
    assert done[0]["_waitCompleted"] is True and done[0]["_waitMode"] == "afterInterval"
    past = one("wait", {"a": 1}, mode="atDateTime", dateTime="2001-01-01T00:00:00Z")
    assert out(past, "n") == [{"a": 1}]
    capped = one("wait", limits=Limits(max_delay_seconds=0.01), mode="atDateTime", dateTime="2999-01-01T00:00:00")
    assert capped.status == "succeeded"
    assert jsons(capped.nodes["n"].output["main"]) == [{}]  # the trigger's empty item passes on
