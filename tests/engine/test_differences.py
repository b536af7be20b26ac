"""The deliberate differences from NodeDrop listed in the README, each as it behaves here."""

from __future__ import annotations

from .helpers import conn, node, out, run, trigger, workflow


def test_a_condition_key_that_resolves_to_a_number_is_tested():
    # NodeDrop: IfElse's resolveValue calls key.match() on the number 250 and fails with a TypeError.
    condition = {"key": "{{ $json.amount }}", "expression": "larger", "value": "100"}
    doc = workflow([trigger(), node("if", "ifElse", mode="simple", condition=condition)])
    assert out(run(doc, {"amount": 250}), "if", "true") == [{"amount": 250}]


def test_a_switch_output_expression_that_resolves_to_a_number_picks_that_output():
    # NodeDrop: outputExpression.includes() on the number 1 fails with a TypeError.
    doc = workflow([trigger(), node("sw", "switch", mode="expression", outputsCount=2,
                                    outputExpression="{{ $json.lane }}")])
    result = run(doc, {"lane": 1})
    assert out(result, "sw", "output1") == [{"lane": 1}] and out(result, "sw", "output0") == []


def test_a_merge_after_an_if_else_runs_with_the_branch_that_delivered():
    # NodeDrop's engine waits for both inputs of the merge; one branch never delivers.
    condition = {"key": "x", "expression": "equal", "value": "1"}
    doc = workflow(
        [trigger(), node("if", "ifElse", mode="simple", condition=condition),
         node("yes", "set", values=[{"keyValue": {"key": "b", "value": "yes"}}]),
         node("no", "set", values=[{"keyValue": {"key": "b", "value": "no"}}]),
         node("m", "merge", mode="append")],
        [conn("t", "if"), conn("if", "yes", "true"), conn("if", "no", "false"), conn("yes", "m"), conn("no", "m")],
    )
    result = run(doc, {"x": 1})
    assert result.status == "succeeded" and out(result, "m") == [{"x": 1, "b": "yes"}]


def test_missing_parameters_take_the_node_definitions_default():
    # NodeDrop's getNodeParameter gives undefined (ifElse would then run its grouped mode).
    doc = workflow([trigger(), node("if", "ifElse", condition={"key": "a", "expression": "equal", "value": "1"})])
    assert out(run(doc, {"a": 1}), "if", "true") == [{"a": 1}]


def test_paths_read_own_fields_only():
    doc = workflow([trigger(), node("s", "set", values=[
        {"keyValue": {"key": "ctor", "value": "{{ $json.constructor }}"}},
        {"keyValue": {"key": "length", "value": "{{ $json.name.length }}"}}])])
    assert out(run(doc, {"name": "ada"}), "s") == [{"name": "ada", "ctor": "{{ $json.constructor }}", "length": 3}]
