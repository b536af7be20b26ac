import json

import pytest

from nodedrop_rq.settings import Settings
from nodedrop_rq.workflow import Limits, Problem, WorkflowInvalid, normalize_input, parse_workflow

from .helpers import conn, node, trigger, workflow


def test_limits_from_settings():
    settings = Settings(
        max_nodes=7, max_input_items=8, max_expression_length=9, max_document_bytes=4096, max_delay_seconds=1.5
    )
    assert Limits.from_settings(settings) == Limits(
        max_nodes=7, max_items=8, max_expression_length=9, max_document_bytes=4096, max_delay_seconds=1.5
    )


@pytest.mark.parametrize(
    ("data", "items"),
    [
        (None, []),
        ({"a": 1}, [{"json": {"a": 1}}]),
        ({"json": {"a": 1}}, [{"json": {"a": 1}}]),
        ({"json": 5}, [{"json": {"json": 5}}]),
        ([{"a": 1}, {"json": {"b": 2}}], [{"json": {"a": 1}}, {"json": {"b": 2}}]),
        ([], []),
    ],
)
def test_normalize_input(data, items):
    assert normalize_input(data) == items


def test_normalize_input_refusals():
    for bad, path in ((5, "input"), ("x", "input"), ([{"a": 1}, 2], "input[1]")):
        with pytest.raises(WorkflowInvalid) as info:
            normalize_input(bad)
        assert info.value.problems[0].path == path
    with pytest.raises(WorkflowInvalid, match="limit is 2"):
        normalize_input([{}, {}, {}], Limits(max_items=2))


def test_envelope_unwrapped_and_document_round_trip():
    bare = workflow(
        [trigger(), node("i", "ifElse", settings={"continueOnFail": True, "timeout": 500}), node("s", "set")],
        [conn("t", "i"), conn("i", "s", "false")],
        name="Flow",
    )
    bare["description"] = "kept"
    wf = parse_workflow({"version": "1.0.0", "exportedAt": "x", "exportedBy": "y", "workflow": bare})
    assert wf.name == "Flow"
    assert wf.node("i").continue_on_fail and wf.node("i").timeout_seconds == 0.5
    doc = wf.to_document()
    assert doc["description"] == "kept" and doc["nodes"][1]["settings"]["timeout"] == 500
    assert json.loads(json.dumps(doc)) == doc
    assert parse_workflow(doc).to_document() == doc


def test_parse_accepts_json_text_and_bytes():
    text = json.dumps(workflow([trigger()]))
    assert parse_workflow(text).nodes[0].id == "t"
    assert parse_workflow(text.encode()).nodes[0].id == "t"


def test_problem_and_exception_formats():
    problem = Problem("nodes[0].id", "is required", "n1")
    assert problem.to_dict() == {"path": "nodes[0].id", "message": "is required", "nodeId": "n1"}
    exc = WorkflowInvalid([problem, Problem("", "bad")])
    assert str(exc) == "nodes[0].id: is required\n(document): bad"
    assert isinstance(exc, ValueError)
