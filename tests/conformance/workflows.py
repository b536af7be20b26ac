# ruff: noqa: E501  (workflow documents read best one node per line)
"""The conformance workflows, in NodeDrop's exact export format, each naming the NodeDrop code its
expected result comes from. ``expected.json`` holds what that code gives (``tests/conformance/README.md``
says how it was produced); ``test_conformance.py`` runs each workflow here and compares."""

from __future__ import annotations

import json
from typing import Any

RESOLVER = "packages/utils/src/expressions/resolver.ts resolveValue/evaluateExpressionPath"
PARAMS = "backend/src/services/execution/SecureExecutionService.ts createSecureContext (getNodeParameter)"
SET = "backend/src/nodes/Set/Set.node.ts execute"
IFELSE = "backend/src/nodes/IfElse/IfElse.node.ts execute"
SWITCH = "backend/src/nodes/Switch/Switch.node.ts execute"
MERGE = "backend/src/nodes/Merge/Merge.node.ts execute"
JSON_NODE = "backend/src/nodes/Json/Json.node.ts execute"
SPLIT = "backend/src/nodes/Split/Split.node.ts execute"
PREVIEW = "backend/src/nodes/DataPreview/DataPreview.node.ts execute"
LOOP = "backend/src/nodes/Loop/Loop.node.ts execute + services/execution/RealtimeExecutionEngine.ts executeLoopNode"
MANUAL = "backend/src/nodes/ManualTrigger/ManualTrigger.node.ts execute"
WEBHOOK = "backend/src/nodes/WebhookTrigger/WebhookTrigger.node.ts execute"
SCHEDULE = "backend/src/nodes/ScheduleTrigger/ScheduleTrigger.node.ts execute"
CODE = "backend/src/nodes/Code/Code.node.ts execute + services/execution/BunVMService.ts execute"
NODE_SERVICE = "backend/src/services/nodes/NodeService.ts executeNode (continueOnFail)"

DATA = {"name": "ada", "n": 21, "ok": True, "price": 1.0, "tags": ["a", "b"], "user": {"email": "ada@example.com"},
        "nothing": None, "title": "Ada Lovelace"}


def node(node_id: str, type_: str, parameters: dict[str, Any] | None = None, *, name: str | None = None,
         settings: dict[str, Any] | None = None, disabled: bool = False) -> dict[str, Any]:
    return {"id": node_id, "type": type_, "name": name or node_id, "parameters": parameters or {},
            "position": {"x": 0, "y": 0}, "disabled": disabled, "settings": settings or {}}


def conn(source: str, target: str, output: str = "main") -> dict[str, Any]:
    return {"id": f"{source}-{output}-{target}", "sourceNodeId": source, "sourceOutput": output,
            "targetNodeId": target, "targetInput": "main"}


def export(name: str, nodes: list[dict], connections: list[dict]) -> dict[str, Any]:
    return {"version": "1.0.0", "exportedAt": "2025-12-20T10:00:00.000Z",
            "workflow": {"name": name, "nodes": nodes, "connections": connections, "settings": {}}}


def data(value: Any, node_id: str = "data") -> dict[str, Any]:
    return node(node_id, "json", {"mode": "json", "jsonData": json.dumps(value)}, name="Data")


def values(**fields: Any) -> dict[str, Any]:
    return {"values": [{"keyValue": {"key": k, "value": v}} for k, v in fields.items()]}


def set_after_data(name: str, source: str, fields: dict[str, Any], value: Any = DATA) -> dict[str, Any]:
    return {"name": name, "source": source, "workflow": export(name, [data(value), node("s", "set", values(**fields))],
                                                                 [conn("data", "s")])}


CASES: list[dict[str, Any]] = []


def case(name: str, source: str, workflow: dict[str, Any], input_items: list | None = None, *,
         engine_message: bool = False) -> None:
    """``engine_message``: the error text after NodeDrop's prefix is JavaScript's own, which V8 and
    QuickJS word differently; only the prefix is compared."""
    CASES.append({"name": name, "source": source, "workflow": workflow, "input": input_items or [],
                  "engine_message": engine_message})


def add(entry: dict[str, Any]) -> None:
    case(entry["name"], entry["source"], entry["workflow"])


# --- expressions (one item) ------------------------------------------------------------------------
add(set_after_data("field paths", RESOLVER, {
    "a": "{{$json.name}}", "b": "{{json.name}}", "c": "{{ $json.user.email }}", "d": "{{$json.tags[1]}}",
    "e": "Hi {{name}}", "f": "{{ $json['title'] }}"}))
add(set_after_data("typed whole-parameter values", RESOLVER, {
    "n": "{{ $json.n }}", "ok": "{{ $json.ok }}", "user": "{{ $json.user }}", "tags": "{{ $json.tags }}",
    "nothing": "{{ $json.nothing }}", "sum": "{{ $json.n + 1 }}"}))
add(set_after_data("templates mixing text and values", RESOLVER, {
    "a": "Hi {{ $json.name }}, you are {{ $json.n }}", "b": "user={{ $json.user }}", "c": "ok={{ $json.ok }}",
    "d": "none={{ $json.nothing }}", "e": "tags={{ $json.tags }}", "f": "{{ $json.price }} EUR"}))
add(set_after_data("unresolved references stay as text", RESOLVER, {
    "a": "{{ $json.missing }}", "b": "x {{ $json.missing }} y {{ $json.name }}", "c": "{{ $json.a.b.c }}",
    "d": "{{ $json.missing ?? null }}", "e": "{{ nope + 1 }}", "f": "{{ $json.name.nope.deeper }}"}))
add(set_after_data("javascript operators", RESOLVER, {
    "optional": "{{ $json.user?.email }}", "coalesce": "{{ $json.missing ?? 'fallback' }}",
    "ternary": "{{ $json.n > 10 ? 'big' : 'small' }}", "concat": "{{ 'ada' + '-' + 5 }}",
    "max": "{{ Math.max(1, $json.n, 3) }}", "float": "{{ 0.1 + 0.2 }}", "third": "{{ 1 / 3 }}"}))
add(set_after_data("arrow functions, template literals and built-ins", RESOLVER, {
    "mapped": "{{ $json.tags.map(t => t.toUpperCase()) }}", "filtered": "{{ [1, 2, 3, 4].filter(x => x % 2 === 0) }}",
    "literal": "{{ `${$json.name}-${$json.n}` }}", "date": "{{ new Date(0).toISOString() }}",
    "keys": "{{ Object.keys($json.user) }}", "pad": "{{ String($json.n).padStart(5, '0') }}",
    "json": "{{ JSON.stringify($json.user) }}"}))
add(set_after_data("operators without a complex marker are paths", RESOLVER, {
    "gt": "{{ $json.n > 10 }}", "eq": "{{ $json.n === 21 }}", "mod": "{{ $json.n % 2 }}", "not": "{{ !$json.ok }}"}))
add(set_after_data("whole-parameter literals and markers", PARAMS, {
    "literal": "{{name}}", "now": "{{ $now }}", "marker": "={{ $json.n }}", "text": "=plain",
    "index": "{{ $itemIndex + 1 }}"}))
add(set_after_data("url-decoded templates", PARAMS + "; " + RESOLVER, {
    "decoded": "a%20b {{ $json.name }}", "lone": "100% {{ $json.name }}", "plain": "100%"}))
add(set_after_data("errors and forbidden patterns leave the text", RESOLVER + " (validateExpression)", {
    "syntax": "{{ 1 + }}", "thrown": "{{ $json.nothing.x + 1 }}", "ctor": "{{ (1).constructor.constructor('return 1')() }}",
    "proto": "{{ ({}).__proto__ + 1 }}", "process": "{{ typeof process + 1 }}"}))
add(set_after_data("helpers inside expressions", RESOLVER + " (HELPER_POLYFILL, DATE_TIME_POLYFILL)", {
    "executed": "{{ isExecuted('Data') }}", "missing": "{{ getNodeData('Nope', 'dflt') }}",
    "has": "{{ hasData('Data') }}", "iso": "{{ DateTime.fromISO('2020-01-02T03:04:05Z').toISODate() }}",
    "first": "{{ firstExecuted(['Nope', 'Data']).name }}"}))
add(set_after_data("$execution, $workflow and $vars", PARAMS + " (expressionContext)", {
    "id": "{{ $execution.id }}", "mode": "{{ $execution.mode }}", "workflow": "{{ $workflow.name }}",
    "var": "{{ $vars.apiKey }}", "jsmode": "{{ $execution.mode.toUpperCase() }}"}))
add(set_after_data("$input, $items and json inside JavaScript do not exist in NodeDrop", RESOLVER + " (safeEvaluateExpression)", {
    "input": "{{ $input.first().json.name }}", "items": "{{ $items('Data')[0].json.name }}", "json": "{{ json.name + '!' }}",
    "path": "{{ $input.item.json.name }}"}))
add(set_after_data("numbers printed as JavaScript prints them", RESOLVER, {
    "big": "n={{ 1e21 }}", "small": "n={{ 0.0000001 }}", "neg": "n={{ -5 / 2 }}", "int": "n={{ 4 / 2 }}"},
    value={"x": 1}))

# --- expressions (several items, $node) ------------------------------------------------------------
TWO = [{"name": "ada", "n": 1}, {"name": "alan", "n": 2}]
add(set_after_data("several items: $json is their array", PARAMS + " ($json: processedItems)", {
    "a": "{{ $json.name }}", "b": "{{ $json[1].name }}", "c": "{{ $json.length }}", "d": "{{ $json.map(i => i.n) }}",
    "e": "{{ json[0].n }}", "f": "{{ $json[5].name }}"}, value=TWO))
case("$node by name, by id, with spaces", PARAMS + " (nodeContext); " + RESOLVER, export("node refs", [
    data({"a": 1, "label": "first"}),
    node("second", "set", values(b=2), name="Second Step"),
    node("s", "set", values(byName="{{ $node[\"Data\"].label }}", byId="{{ $node[\"data\"].a }}",
                            spaces="{{ $node[\"Second Step\"].b }}", json="{{ $node[\"Data\"].json.label }}",
                            js="{{ $node['Second Step'].b + 1 }}", unknown="{{ $node[\"Nope\"].x }}")),
], [conn("data", "second"), conn("second", "s")]))
case("$node of a node with several items merges their fields", PARAMS + " (nodeContext merge)", export("node merge", [
    data([{"x": 10}, {"y": 9}, {"x": 1, "z": None}]),
    node("one", "json", {"jsonData": "{\"k\": 1}"}),
    node("s", "set", values(x="{{ $node[\"Data\"].x }}", y="{{ $node[\"Data\"].y }}", z="{{ $node[\"Data\"].z }}")),
], [conn("data", "one"), conn("one", "s")]))

# --- triggers --------------------------------------------------------------------------------------
case("manual trigger without custom data", MANUAL, export("manual", [node("t", "manual-trigger", {"description": ""})], []),
     [{"ignored": True}])
case("manual trigger with custom data", MANUAL, export("manual custom", [
    node("t", "manual-trigger", {"allowCustomData": True, "description": "Orders"})], []), [{"orderId": 7}])
case("manual trigger falls back to default data", MANUAL, export("manual default", [
    node("t", "manual-trigger", {"allowCustomData": True, "defaultData": "{\"x\": 1}"})], []))
case("manual trigger drops dangerous keys", MANUAL + "; NodeService.executeNode (validateInputData)", export(
    "manual sanitized", [node("t", "manual-trigger", {"allowCustomData": True})], []),
    [{"a": 1, "constructor": {"x": 1}, "nested": {"prototype": 2, "ok": 3}}])
case("webhook trigger with the default fields", WEBHOOK, export("webhook", [node("w", "webhook-trigger", {"httpMethod": "POST"})], []),
     [{"method": "POST", "headers": {"content-type": "application/json"}, "query": {"q": "1"}, "body": {"amount": 250},
       "path": "/orders", "params": {"id": "7"}, "ip": "10.0.0.1"}])
case("webhook trigger with options", WEBHOOK, export("webhook options", [node("w", "webhook-trigger", {"options": {
    "includeData": ["headers", "body", "clientInfo"], "headersToInclude": "X-Token, missing"}})], []),
    [{"method": "PUT", "headers": {"x-token": "t", "other": "o"}, "body": {"a": 1}, "ip": "10.0.0.1", "userAgent": "ua"}])
case("webhook trigger with no request", WEBHOOK, export("webhook empty", [node("w", "webhook-trigger")], []))
case("schedule trigger, simple mode", SCHEDULE + " (convertSimpleToCron)", export("schedule simple", [
    node("s", "schedule-trigger", {"scheduleMode": "simple", "interval": "day", "timeOfDay": "09:30",
                                   "weekdaysOnly": True, "timezone": "Europe/Berlin", "description": "daily"})], []))
case("schedule trigger, cron mode", SCHEDULE, export("schedule cron", [
    node("s", "schedule-trigger", {"scheduleMode": "cron", "cronExpression": "*/5 * * * *"})], []))

# --- set -------------------------------------------------------------------------------------------
add(set_after_data("set: nested paths and row shapes", SET, {}, value={"user": {"age": 1}}))
CASES[-1]["workflow"]["workflow"]["nodes"][1]["parameters"] = {"values": [
    {"keyValue": {"key": "user.address.city", "value": "Paris"}}, {"values": {"keyValue": {"key": "items[1].name", "value": "b"}}},
    {"keyValue": {"key": "", "value": "skipped"}}, {"keyValue": {"key": "user.age", "value": 2}}]}
case("set as the first node builds one item", SET, export("set alone", [node("s", "set", values(a=1, b="{{ $json.a }}"))], []))
add(set_after_data("set: several items get the same values", SET, {"tag": "x", "who": "{{ $json.name }}"}, value=TWO))

# --- ifElse ----------------------------------------------------------------------------------------


def if_case(name: str, value: Any, parameters: dict[str, Any]) -> None:
    case(name, IFELSE, export(name, [data(value), node("if", "ifElse", parameters), node("yes", "set", values(branch="yes")),
                                     node("no", "set", values(branch="no"))],
                              [conn("data", "if"), conn("if", "yes", "true"), conn("if", "no", "false")]))


def simple(key: Any, expression: str, value: Any) -> dict[str, Any]:
    return {"mode": "simple", "condition": {"key": key, "expression": expression, "value": value}}


if_case("ifElse: field equal", {"status": "paid"}, simple("status", "equal", "paid"))
if_case("ifElse: equality is case-sensitive", {"status": "Paid"}, simple("status", "equal", "paid"))
if_case("ifElse: larger compares numbers from text", {"amount": "250"}, simple("amount", "larger", "100"))
if_case("ifElse: a key that is no field is a literal", {"x": 1}, simple("hello", "startsWith", "he"))
if_case("ifElse: missing field is empty", {"x": 1}, simple("missing.field", "isEmpty", ""))
if_case("ifElse: first item decides for all items", [{"n": 5}, {"n": 500}], simple("{{json.n}}", "smaller", "10"))
if_case("ifElse: regex", {"email": "ada@example.com"}, simple("email", "regex", "^[a-z]+@example\\.com$"))
if_case("ifElse: contains on a resolved text key", {"title": "Big Sale"}, simple("{{ $json.title }}", "contains", "Sale"))
if_case("ifElse: combine AND", {"a": 1, "b": 2}, {"mode": "combine", "combineOperation": "AND", "conditions": [
    {"condition": {"key": "a", "expression": "equal", "value": "1"}},
    {"values": {"condition": {"key": "b", "expression": "larger", "value": "5"}}}]})
if_case("ifElse: combine OR", {"a": 1, "b": 2}, {"mode": "combine", "combineOperation": "OR", "conditions": [
    {"condition": {"key": "a", "expression": "equal", "value": "1"}},
    {"condition": {"key": "b", "expression": "larger", "value": "5"}}]})
if_case("ifElse: grouped", {"a": 1, "b": 2}, {"mode": "grouped", "combineGroups": "AND", "conditionGroups": [
    {"values": {"groupOperation": "OR", "conditions": [{"condition": {"key": "a", "expression": "equal", "value": "9"}},
                                                         {"condition": {"key": "b", "expression": "equal", "value": "2"}}]}},
    {"groupOperation": "AND", "conditions": [{"condition": {"key": "a", "expression": "notEqual", "value": "3"}}]}]})
if_case("ifElse: combine with no conditions is false", {"a": 1}, {"mode": "combine", "conditions": []})

# --- switch ----------------------------------------------------------------------------------------
TICKETS = [{"id": 1, "priority": "high", "category": "outage"}, {"id": 2, "priority": "low", "category": "billing"},
           {"id": 3, "priority": "high", "category": "billing"}, {"id": 4, "priority": "normal"}]


def switch_case(name: str, value: Any, parameters: dict[str, Any], outputs: int) -> None:
    sinks = [node(f"o{i}", "set", values(out=i)) for i in range(outputs)]
    case(name, SWITCH, export(name, [data(value), node("sw", "switch", parameters), *sinks],
                              [conn("data", "sw")] + [conn("sw", f"o{i}", f"output{i}") for i in range(outputs)]))


def rule(key: Any, expression: str, value: Any) -> dict[str, Any]:
    return {"values": {"condition": {"key": key, "expression": expression, "value": value}}}


switch_case("switch rules: first match wins, unmatched dropped", TICKETS, {"mode": "rules", "rules": [
    rule("priority", "equal", "high"), rule("category", "equal", "billing")]}, 2)
switch_case("switch rules: a rule without key is skipped", TICKETS, {"mode": "rules", "rules": [
    rule("", "equal", ""), rule("{{json.category}}", "equal", "billing"), {"condition": {"key": "id", "expression": "larger", "value": "3"}}]}, 3)
switch_case("switch expression: field name", [{"lane": 0}, {"lane": "1"}, {"lane": 2}, {"lane": 9}, {"x": 1}],
            {"mode": "expression", "outputsCount": 3, "outputExpression": "lane"}, 3)
switch_case("switch expression: {{json.field}} with several items", [{"p": 1}, {"p": 0}, {"p": 1.5}],
            {"mode": "expression", "outputsCount": 2, "outputExpression": "{{json.p}}"}, 2)
switch_case("switch expression: a number", [{"a": 1}, {"a": 2}], {"mode": "expression", "outputsCount": 1,
                                                                     "outputExpression": "1"}, 2)

# --- merge -----------------------------------------------------------------------------------------


def merge_case(name: str, parameters: dict[str, Any], left: Any, right: Any) -> None:
    case(name, MERGE, export(name, [data(left, "left"), data(right, "right"), node("m", "merge", parameters)],
                             [conn("left", "m"), conn("right", "m")]))


LEFT, RIGHT = [{"id": 1, "a": "x"}, {"id": 2, "a": "y"}, {"a": "nokey"}], [{"id": 2, "b": "z"}, {"id": 3, "b": "w"}]
merge_case("merge append", {"mode": "append"}, LEFT, RIGHT)
merge_case("merge by position", {"mode": "mergeByPosition"}, LEFT, RIGHT)
merge_case("merge by key with missing keys", {"mode": "mergeByKey", "mergeByKey": "id"}, LEFT, RIGHT)
merge_case("merge keep first", {"mode": "keepFirst"}, LEFT, RIGHT)
merge_case("merge keep last", {"mode": "keepLast"}, LEFT, RIGHT)

# --- json ------------------------------------------------------------------------------------------
case("json: array of objects and primitives", JSON_NODE, export("json array", [
    node("j", "json", {"mode": "json", "jsonData": "[{\"a\": 1}, 2, \"three\", null]"})], []))
case("json: key-value mode", JSON_NODE, export("json kv", [node("j", "json", {"mode": "keyValue", "keyValuePairs": [
    {"keyValue": {"key": "user.name", "value": "=Ada"}}, {"values": {"keyValue": {"key": "=items[0]", "value": 1}}},
    {"keyValue": {"key": "", "value": "skipped"}}]})], []))
case("json: expressions in the text", JSON_NODE + "; " + RESOLVER, export("json expr", [
    data({"who": "Ada"}), node("j", "json", {"jsonData": "{\"greeting\": \"hi {{ $json.who }}\", \"n\": {{ 1 + 1 }}}"})],
    [conn("data", "j")]))
case("json: invalid JSON fails the node", JSON_NODE, export("json bad", [
    data({"x": "["}), node("j", "json", {"jsonData": "{{ $json.x }}"})], [conn("data", "j")]), engine_message=True)

# --- split -----------------------------------------------------------------------------------------
ROWS = [{"i": i, "type": "A" if i % 2 else "B"} for i in range(5)]
for mode, extra in [("batch", {"batchSize": 2}), ("byField", {"splitField": "type"}), ("evenOdd", {}),
                    ("percentage", {"percentage": 40}), ("parts", {"parts": 2})]:
    case(f"split {mode}", SPLIT, export(f"split {mode}", [data(ROWS), node("sp", "split", {"mode": mode, **extra})],
                                        [conn("data", "sp")]))

# --- loop: the nodes after `loop` once per batch, then `done` ------------------------------------------


def loop_case(name: str, value: Any, parameters: dict[str, Any]) -> None:
    case(name, LOOP, export(name, [
        data(value), node("lp", "loop", parameters),
        node("each", "set", values(seen="{{ $json.$index }}", batch="{{ $json.$batchSize }}")),
        node("after", "set", values(last="{{ $node[\"each\"].seen }}"))],
        [conn("data", "lp"), conn("lp", "each", "loop"), conn("lp", "after", "done")]))


loop_case("loop over items in batches", [{"n": 1}, {"n": 2}, {"n": 3}], {"loopOver": "items", "batchSize": 2})
loop_case("loop repeat", {"x": 1}, {"loopOver": "repeat", "repeatTimes": 3, "batchSize": 1})
loop_case("loop over a field of objects", {"list": [{"a": 1}, {"b": 2}]}, {"loopOver": "field", "fieldName": "list",
                                                                           "batchSize": 1})

# --- data-preview ----------------------------------------------------------------------------------
for fmt, extra in [("json", {}), ("json-compact", {"previewSource": "last"}), ("text", {"previewSource": "first"}),
                   ("table", {}), ("json", {"maxLines": 3, "appendMode": True})]:
    label = f"data-preview {fmt} {' '.join(f'{k}={v}' for k, v in extra.items())}".strip()
    case(label, PREVIEW, export(label, [data([{"a": 1, "b": "x"}, {"a": 22, "c": True}]),
                                        node("p", "data-preview", {"previewFormat": fmt, **extra})], [conn("data", "p")]))

# --- code ------------------------------------------------------------------------------------------


def code_case(name: str, code: str, value: Any = TWO, engine_message: bool = False, **parameters: Any) -> None:
    case(name, CODE, export(name, [data(value), node("c", "code", {"language": "javascript", "code": code, **parameters})],
                            [conn("data", "c")]), engine_message=engine_message)


code_case("code: items are the json data", "return items.map(i => ({...i, double: i.n * 2}));")
code_case("code: a single object is one item", "return {count: items.length};")
code_case("code: returning {json} nests it", "return [{json: {a: 1}}];")
code_case("code: await", "const x = await Promise.resolve(items[0].n); return [{x}];")
code_case("code: a throw fails the node", "throw new Error('boom ' + items.length);")
code_case("code: continueOnFail parameter", "null.x;", engine_message=True, continueOnFail=True)
code_case("code: a time-out fails the node", "while (true) {}", timeout=200)

# --- engine: continueOnFail, disabled --------------------------------------------------------------
case("continueOnFail with alwaysOutputData passes the error on", NODE_SERVICE, export("continue", [
    data({"a": 1}), node("c", "code", {"code": "throw new Error('bad')"},
                         settings={"continueOnFail": True, "alwaysOutputData": True}),
    node("after", "set", values(seen="{{ $json.error }}"))], [conn("data", "c"), conn("c", "after")]))
case("continueOnFail alone still fails", NODE_SERVICE, export("continue alone", [
    data({"a": 1}), node("c", "code", {"code": "throw new Error('bad')"}, settings={"continueOnFail": True}),
    node("after", "set", values(seen=1))], [conn("data", "c"), conn("c", "after")]))
case("a disabled node is skipped with the nodes after it", "backend/src/services/execution/FlowExecutionEngine.ts", export(
    "disabled", [data({"a": 1}), node("off", "set", values(b=2), disabled=True), node("after", "set", values(c=3))],
    [conn("data", "off"), conn("off", "after")]))
