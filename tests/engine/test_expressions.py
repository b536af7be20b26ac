import re

import pytest

from nodedrop_rq.workflow import ExpressionError
from nodedrop_rq.workflow.expression_values import NodeData
from nodedrop_rq.workflow.expressions import Expressions, check_expression, evaluate_standalone

from .helpers import node, out, run, trigger, workflow

ITEMS = [
    {"json": {"name": "Ada", "n": 3, "tags": ["a", "b"], "user": {"city": "Paris"}, "class": "x"}},
    {"json": {"name": "Alan", "n": 4}},
]


def ev(source, index=0, find=None):
    return Expressions(ITEMS, find_node=find).evaluate(source, index)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("$json.n * 2", 6),
        ("json.user.city", "Paris"),
        ('$json["user"]["city"]', "Paris"),
        ("$json.tags[1]", "b"),
        ("$json.tags.length", 2),
        ("$json.missing", None),
        ("$json.missing or 'default'", "default"),
        ("n + 1", 4),  # NodeDrop: a bare name is a field of $json
        ("$json.class", "x"),  # a Python keyword as a field name
        ("$json.n === 3 && !false", True),
        ("$json.n !== 3 || null", None),
        ("$json.name.toUpperCase()", "ADA"),
        ("$json.name.upper() + '!'", "ADA!"),
        ("$json.tags.join('-')", "a-b"),
        ("$input.all()[1].json.name", "Alan"),
        ("$input.first().json.n + $input.last().json.n", 7),
        ("$input.item.json.name", "Ada"),
        ("len($input.all())", 2),
        ("$itemIndex", 0),
        ("Math.round(2.5) + Math.floor(1.9)", 4),
        ("JSON.stringify({'a': [1, 2]})", '{"a":[1,2]}'),
        ("JSON.parse('[1, 2]')", [1, 2]),
        ("'big' if $json.n > 2 else 'small'", "big"),
        ("sum([1, 2, 3.5])", 6.5),
        ("{'a': $json.n, 'b': [1, 2]}", {"a": 3, "b": [1, 2]}),
        ("(3.14159).toFixed(2)", "3.14"),
        ("parseInt('42px') + Number('1.5')", 43.5),
    ],
)
def test_expression_values(source, expected):
    assert ev(source) == expected


def test_current_item_follows_index():
    assert ev("$json.name", 1) == "Alan"
    assert ev("$itemIndex", 1) == 1


def test_now_and_today():
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", ev("$now"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", ev("$today"))


def test_node_lookup():
    def find(key):
        if key == "Prices":
            return NodeData("Prices", True, [{"json": {"eur": 10}}, {"json": {"eur": 20, "usd": 22}}])
        raise ExpressionError(f"no node is named '{key}'")

    assert ev('$node["Prices"].json.eur', find=find) == 10
    assert ev('$node["Prices"].usd', find=find) == 22  # NodeDrop: .json is optional
    assert ev('$node["Prices"].all()[1].json.eur', find=find) == 20
    assert ev('$node["Prices"].isExecuted', find=find) is True
    assert ev("isExecuted('Prices')", find=find) is True
    with pytest.raises(ExpressionError, match="no node is named 'Nope'"):
        ev('$node["Nope"].json', find=find)


def test_render_raw_and_mixed():
    e = Expressions(ITEMS)
    assert e.render("{{ $json.n }}") == 3
    assert e.render("  {{ $json.user }} ") == {"city": "Paris"}
    assert e.render("={{ $json.n }}") == 3  # NodeDrop's expression-mode marker
    assert e.render("=5") == "=5"
    assert e.render("n={{ $json.n }}, tags={{ $json.tags }}, none={{ $json.x }}, t={{ true }}") == (
        'n=3, tags=["a","b"], none=, t=true'
    )
    assert e.render({"a": ["{{ $json.name }}", 1], "b": {"c": "{{ $json.n + 1 }}"}}) == {"a": ["Ada", 1], "b": {"c": 4}}
    assert e.render("{{ {'x': 1} }}") == {"x": 1}
    assert e.render("no expression {{ here") == "no expression {{ here"


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("__import__('os').system('id')", "dunder"),
        ("().__class__.__bases__[0].__subclasses__()", "dunder"),
        ("$json.__class__", "dunder"),
        ("$json.name.__class__.__mro__", "dunder"),
        ("$json._private", "starting with '_'"),
        ("_x", "starting with '_'"),
        ("getattr($json, 'x')", "unknown function 'getattr'"),
        ("import os", "import"),
        ("9**9**9", "too large"),
        ("2 ** 100000", "too large"),
        ("10.0 ** 400", "too large"),
        ("'x' * 10**9", "too long"),
        ("'ab' * 60000", "too long"),
        ("[1] * 10", "repeating lists"),
        ("'%99999999s' % 'a'", "%-formatting"),
        ("('x' * 90000).replace('x', 'xx')", "too long"),
        ("lambda: 1", "lambda"),
        ("[x for x in $input.all()]", "comprehensions"),
        ("{k: 1 for k in 'abc'}", "comprehensions"),
        ("f'{$json.n:>99999999}'", "syntax"),
        ("f'{n:>99999999}'", "f-strings"),
        ("$json.name.ljust(10**9)", "no method 'ljust'"),
        ("$json.name.format()", "no method 'format'"),
        ("1 << 100000", "too large"),
        ("(x := 1)", "assignments"),
        ("eval('1')", "eval"),
        ("open('/etc/passwd')", "open"),
        ("$vars.secret", "$vars"),
        ("$json.n +", "syntax"),
        ("-" * 500 + "1", "nested more than"),
        ("1" + "+1" * 500, "nested more than"),
    ],
)
def test_escapes_and_huge_results_are_refused(source, reason):
    with pytest.raises(ExpressionError) as info:
        ev(source)
    message = str(info.value)
    assert reason.lower() in message.lower(), message
    assert message.startswith("expression {{")


def test_check_expression_reports_length_and_syntax():
    assert check_expression("1 + 1", 100) is None
    assert "limit is 3" in check_expression("1 + 1", 3)
    assert "dunder" in check_expression("().__class__", 100)


def test_standalone_helper():
    assert evaluate_standalone("$json.a + 1", {"a": 1}) == 2


def test_expression_error_is_a_node_error_with_a_clear_message():
    doc = workflow(
        [trigger(), node("s", "set", "Compute", values=[{"keyValue": {"key": "x", "value": "{{ 9**9**9 }}"}}])]
    )
    result = run(doc)
    assert result.status == "failed"
    assert result.error.node_id == "s"
    assert "number too large" in result.error.message
    assert "values[0]" in result.error.message


def test_expressions_see_earlier_nodes_and_input():
    doc = workflow(
        [
            trigger(),
            node("a", "set", "Prices", values=[{"keyValue": {"key": "eur", "value": 10}}]),
            node(
                "b",
                "set",
                "Total",
                values=[
                    {"keyValue": {"key": "double", "value": "{{ $node['Prices'].json.eur * 2 }}"}},
                    {"keyValue": {"key": "byId", "value": "{{ $node['a'].eur }}"}},
                    {"keyValue": {"key": "count", "value": "{{ len($input.all()) }}"}},
                    {"keyValue": {"key": "label", "value": "{{ $json.name }}: {{ $json.eur }} EUR"}},
                ],
            ),
        ]
    )
    result = run(doc, [{"name": "x"}, {"name": "y"}])
    assert out(result, "b") == [
        {"name": "x", "eur": 10, "double": 20, "byId": 10, "count": 2, "label": "x: 10 EUR"},
        {"name": "y", "eur": 10, "double": 20, "byId": 10, "count": 2, "label": "y: 10 EUR"},
    ]
