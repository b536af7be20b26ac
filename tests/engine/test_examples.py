import json
from pathlib import Path

import pytest

import nodedrop_rq
from nodedrop_rq.workflow import Limits, parse_workflow, run_workflow, workflow_schema
from nodedrop_rq.workflow.schema import render_schema

EXAMPLES = sorted((Path(nodedrop_rq.__file__).parent / "examples").glob("*.json"))
FAST = Limits(max_delay_seconds=0.05)


def load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def test_there_are_examples_of_each_kind():
    names = [p.name for p in EXAMPLES]
    assert len(names) >= 5
    assert any("fail" in n for n in names) and any("slow" in n for n in names)
    assert any("workflow" in load(p) for p in EXAMPLES)  # at least one export envelope


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_parses_and_runs(path):
    workflow = parse_workflow(load(path), FAST)
    result = run_workflow(workflow, [], limits=FAST)
    if "fail" in path.name:
        assert result.status == "failed"
        assert result.error.node_type == "stop-and-error"
        assert result.error.node_name == "Out Of Stock"
    else:
        assert result.status == "succeeded", result.error
        assert result.output
    assert parse_workflow(workflow.to_document(), FAST).to_document() == workflow.to_document()


def test_order_routing_routes_by_total():
    workflow = parse_workflow(load(EXAMPLES[0].parent / "order-routing.json"))
    # The manual trigger's customData is the first input item (allowCustomData).
    big = run_workflow(workflow, [{"json": {"price": 50, "quantity": 3}}])
    assert big.output[0]["json"]["lane"] == "priority"
    assert big.nodes["node-standard"].status == "skipped"
    small = run_workflow(workflow, [{"json": {"price": 5, "quantity": 3}}])
    assert small.output[0]["json"]["lane"] == "standard" and small.output[0]["json"]["total"] == 15


def test_slow_example_delays_three_seconds():
    document = load(EXAMPLES[0].parent / "slow-delay-report.json")
    delay = next(n for n in document["workflow"]["nodes"] if n["type"] == "delay")
    assert delay["parameters"]["amount"] * 1000 >= 2000 and delay["parameters"]["timeUnit"] == "seconds"


def test_schema_file_is_current_and_valid():
    jsonschema = pytest.importorskip("jsonschema")
    schema = workflow_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    path = Path(nodedrop_rq.__file__).parent / "workflow" / "workflow.schema.json"
    assert path.read_text(encoding="utf-8") == render_schema(), "regenerate: python -m nodedrop_rq.workflow.schema"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_validate_against_the_schema(path):
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator(workflow_schema()).validate(load(path))


def test_schema_rejects_bad_shapes():
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(workflow_schema())
    good_node = {"id": "a", "type": "merge", "parameters": {"mode": "append"}}
    assert validator.is_valid({"nodes": [good_node]})
    assert not validator.is_valid({"nodes": []})
    assert not validator.is_valid({"nodes": [{"id": "a"}]})
    assert not validator.is_valid({"nodes": [{"id": "a", "type": "if"}]})
    assert not validator.is_valid({"nodes": [dict(good_node, parameters={"mode": "zip"})]})
    assert validator.is_valid({"nodes": [dict(good_node, parameters={"mode": "{{ $json.mode }}"})]})
    assert not validator.is_valid({"nodes": [good_node], "connections": [{"sourceNodeId": "a"}]})
