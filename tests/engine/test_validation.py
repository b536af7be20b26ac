import json

import pytest

from nodedrop_rq.workflow import Limits, WorkflowInvalid, parse_workflow

from .helpers import conn, node, out, run, trigger, workflow


def problems(doc, limits=None):
    with pytest.raises(WorkflowInvalid) as info:
        parse_workflow(doc, limits)
    return {(p.path, p.message) for p in info.value.problems}, info.value


def paths(doc, limits=None):
    return {path for path, _ in problems(doc, limits)[0]}


def test_valid_document_parses():
    wf = parse_workflow(workflow([trigger(), node("s", "set", values=[{"keyValue": {"key": "a", "value": 1}}])]))
    assert [n.id for n in wf.nodes] == ["t", "s"]
    assert wf.connections[0].source_output == "main"


def test_not_a_json_object():
    found, _ = problems([1, 2])
    assert found == {("", "a workflow must be a JSON object, got array")}
    found, _ = problems("{not json")
    assert any("not valid JSON" in m for _, m in found)
    found, _ = problems({"workflow": 5})
    assert ("workflow", "must be an object, got integer") in found


def test_missing_and_empty_nodes():
    assert "nodes" in paths({"name": "x"})
    found, _ = problems({"nodes": []})
    assert ("nodes", "the workflow has no nodes") in found


def test_unknown_type_removed_if_node_and_python_code_refused():
    doc = workflow([
        trigger(),
        node("c", "code", language="python", code="print('[]')"),
        node("i", "if", condition={"key": "a", "expression": "equal", "value": "1"}),
        node("u", "frobnicate"),
    ])
    found, exc = problems(doc)
    messages = dict(found)
    python = messages["nodes[1].parameters.language"]
    assert "python3 process" in python and "JavaScript" in python and "'function' node" in python
    assert "NodeDrop removed the 'if' node" in messages["nodes[2].type"] and "'ifElse'" in messages["nodes[2].type"]
    assert "unknown node type 'frobnicate'" in messages["nodes[3].type"]
    assert {p.node_id for p in exc.problems} >= {"c", "i", "u"}
    # JavaScript code is accepted.
    parse_workflow(workflow([trigger(), node("c", "code", language="javascript", code="return items")]))


def test_duplicate_ids():
    doc = workflow([trigger("a"), node("a", "set")], connections=[])
    found, _ = problems(doc)
    assert any(p == "nodes[1].id" and "duplicate node id 'a'" in m for p, m in found)


def test_connections_to_missing_nodes_and_bad_outputs_inputs():
    doc = workflow(
        [trigger(), node("i", "ifElse"), node("s", "set")],
        connections=[
            conn("t", "i"),
            conn("i", "s", output="maybe"),
            conn("i", "ghost", output="true"),
            conn("nobody", "s"),
            conn("s", "t"),
        ],
    )
    found = dict(problems(doc)[0])
    assert "no output 'maybe'" in found["connections[1].sourceOutput"]
    assert "'true'" in found["connections[1].sourceOutput"]
    assert found["connections[2].targetNodeId"] == "no node has id 'ghost'"
    assert found["connections[3].sourceNodeId"] == "no node has id 'nobody'"
    assert "takes no input" in found["connections[4].targetInput"]


def test_cycle_is_reported():
    doc = workflow(
        [trigger(), node("a", "set"), node("b", "set")],
        connections=[conn("t", "a"), conn("a", "b"), conn("b", "a")],
    )
    found = dict(problems(doc)[0])
    message = next(m for p, m in found.items() if p.startswith("connections["))
    assert "cycle" in message and "'a'" in message and "'b'" in message


def test_no_entry_node():
    doc = workflow([node("a", "set"), node("b", "set")], connections=[conn("a", "b"), conn("b", "a")])
    found = dict(problems(doc)[0])
    assert "no entry node" in found["nodes"]


def test_parameter_types_and_allowed_values():
    doc = workflow(
        [
            trigger(),
            node("s", "set", values=[{"keyValue": {"key": 5, "value": 1}}, "oops"]),
            node("m", "merge", mode="zip"),
            node("d", "delay", amount="soon"),
            node("f", "function"),
        ]
    )
    found = dict(problems(doc)[0])
    assert found["nodes[1].parameters.values[0].keyValue.key"] == "expected a string, got integer 5"
    assert "expected an object" in found["nodes[1].parameters.values[1]"]
    assert "must be one of 'append'" in found["nodes[2].parameters.mode"]
    assert "expected a number" in found["nodes[3].parameters.amount"]
    assert found["nodes[4].parameters.functionName"] == "is required"


def test_expression_is_accepted_where_a_number_is_expected():
    doc = workflow([trigger(), node("d", "delay", amount="{{ $json.seconds }}", timeUnit="milliseconds")])
    parse_workflow(doc)


def test_node_settings_checked():
    doc = workflow([trigger(), node("s", "set", settings={"continueOnFail": "yes", "timeout": -1})])
    found = dict(problems(doc)[0])
    assert "true or false" in found["nodes[1].settings.continueOnFail"]
    assert "milliseconds" in found["nodes[1].settings.timeout"]


def test_many_problems_reported_at_once_with_envelope_paths():
    doc = {
        "version": "1.0.0",
        "workflow": workflow(
            [
                trigger(),
                node("x", "nope"),
                node("s", "set", values="not a list"),
                node("t", "stop-and-error", errorMessage="{{ " + "x" * 3000 + " }}"),
            ],
            connections=[conn("t", "zzz")],
        ),
    }
    found, exc = problems(doc)
    found_paths = {p for p, _ in found}
    assert {
        "workflow.nodes[1].type",
        "workflow.nodes[2].parameters.values",
        "workflow.nodes[3].parameters.errorMessage",
        "workflow.connections[0].targetNodeId",
    } <= found_paths
    assert len(exc.problems) >= 4
    assert str(exc).count("\n") == len(exc.problems) - 1
    assert exc.problems[0].to_dict().keys() == {"path", "message", "nodeId"}


def test_expression_syntax_is_not_checked_at_validation():
    # NodeDrop leaves an expression that does not evaluate as text (resolver.ts safeEvaluateExpression
    # returns the {{ }} text on any error), so a JavaScript syntax error is no invalid workflow.
    doc = workflow([trigger(), node("s", "set", values=[{"keyValue": {"key": "a", "value": "={{ 1 + }}"}}])])
    assert out(run(doc), "s") == [{"a": "{{ 1 + }}"}]


def test_size_limits():
    limits = Limits(max_nodes=2, max_expression_length=10, max_document_bytes=2000, max_items=3)
    too_many = workflow([trigger(), node("a", "set"), node("b", "set")])
    assert "limit is 2" in dict(problems(too_many, limits)[0])["nodes"]

    long_expr = workflow(
        [trigger(), node("s", "set", values=[{"keyValue": {"key": "a", "value": "{{ 1 + 1 + 1 + 1 + 1 }}"}}])]
    )
    assert "longer than 10 characters" in dict(problems(long_expr, limits)[0])[
        "nodes[1].parameters.values[0].keyValue.value"]

    big = workflow([trigger(), node("j", "json", jsonData=json.dumps({"blob": "x" * 3000}))])
    found = dict(problems(big, limits)[0])
    assert "limit is 2000" in found[""]
    assert "limit is 2000" in dict(problems(json.dumps(big), limits)[0])[""]

    many_items = workflow([trigger(), node("j", "json", jsonData="[1, 2, 3, 4]")])
    assert "the limit is 3" in dict(problems(many_items, limits)[0])["nodes[1].parameters.jsonData"]


def test_json_node_with_invalid_json_text():
    doc = workflow([trigger(), node("j", "json", jsonData="{oops")])
    assert "Invalid JSON data" in dict(problems(doc)[0])["nodes[1].parameters.jsonData"]


def test_wait_on_webhook_and_http_credentials_refused():
    doc = workflow(
        [
            trigger(),
            node("w", "wait", mode="onWebhook"),
            node("h", "http-request", url="ftp://x", authentication="cred_1"),
        ]
    )
    found = dict(problems(doc)[0])
    assert "onWebhook" in found["nodes[1].parameters.mode"]
    assert "credentials are not supported" in found["nodes[2].parameters.authentication"]


def test_invalid_regex_and_unknown_operation():
    doc = workflow(
        [
            trigger(),
            node("i", "ifElse", condition={"key": "a", "expression": "regex", "value": "(unclosed"}),
            node("j", "ifElse", condition={"key": "a", "expression": "equals", "value": "x"}),
        ],
        connections=[conn("t", "i"), conn("t", "j")],
    )
    found = dict(problems(doc)[0])
    assert "invalid regex" in found["nodes[1].parameters.condition.value"]
    assert "must be one of" in found["nodes[2].parameters.condition.expression"]


def test_ui_only_fields_are_accepted_and_kept():
    doc = workflow([dict(trigger(), icon="fa:play", color="#fff", mockData={"a": 1}, credentials=[], locked=False)])
    wf = parse_workflow(doc)
    again = parse_workflow(wf.to_document())
    assert again.nodes[0].extra["icon"] == "fa:play"
    assert json.loads(json.dumps(wf.to_document())) == wf.to_document()


def test_node_timeout_beyond_a_day_is_refused():
    import pytest

    from nodedrop_rq.workflow import WorkflowInvalid, parse_workflow

    document = {"name": "t", "nodes": [{"id": "t", "type": "manual-trigger", "name": "T", "parameters": {},
                                        "settings": {"timeout": 9.2e15}}], "connections": []}
    with pytest.raises(WorkflowInvalid) as info:
        parse_workflow(document)
    assert info.value.problems[0].path.endswith("settings.timeout")
