"""Executions per second of the engine alone (``run_workflow`` in this process, no Redis).

Two workflows: the queue benchmarks' trivial one (trigger -> set -> set, one expression) and an
expression-heavy one (a JSON node emitting one item, then a set node with 20 expressions: field paths,
arithmetic, comparisons, string methods, templates mixing text and values).

    .venv/bin/python -m bench.engine --executions 2000
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from bench.common import trivial_workflow, write_result
from nodedrop_rq.workflow import parse_workflow, run_workflow

EXPRESSIONS = [
    "{{ $json.n * 2 }}", "{{ $json.name }}", "Hello {{ $json.name }}!", "{{ $json.n > 10 }}",
    "{{ $json.tags.length }}", "{{ $json.tags[0] }}", "{{ $json.name.toUpperCase() }}", "{{ $json.n + 1 }}",
    "{{ $json.price * $json.qty }}", "{{ $json.user.email }}", "{{ $json.user.city }}",
    "{{ $json.n % 2 === 0 }}", "{{ Math.round($json.price * 100) / 100 }}", "{{ $json.tags.join('-') }}",
    "order {{ $json.id }} for {{ $json.user.email }}", "{{ JSON.stringify($json.user) }}",
    "{{ $json.name.length > 2 }}", "{{ $json.qty }}", "{{ String($json.id) }}",
    "{{ $json.price.toFixed(2) }}",
]


def expression_heavy_workflow() -> dict[str, Any]:
    data = {"n": 21, "name": "ada", "tags": ["a", "b"], "price": 9.99, "qty": 3, "id": 42,
            "user": {"email": "ada@example.com", "city": "Paris"}}
    values = [{"keyValue": {"key": f"f{i}", "value": text}} for i, text in enumerate(EXPRESSIONS)]
    nodes = [{"id": "data", "type": "json", "name": "Data", "parameters": {"jsonData": json.dumps(data)}},
             {"id": "fields", "type": "set", "name": "Fields", "parameters": {"values": values}}]
    connections = [{"id": "c", "sourceNodeId": "data", "sourceOutput": "main", "targetNodeId": "fields",
                    "targetInput": "main"}]
    return {"name": "expression-heavy", "nodes": nodes, "connections": connections, "settings": {}}


def measure(document: dict[str, Any], executions: int) -> float:
    workflow = parse_workflow(document)
    for _ in range(min(50, executions)):
        run_workflow(workflow, [{"n": 21}])
    began = time.perf_counter()
    for _ in range(executions):
        result = run_workflow(workflow, [{"n": 21}])
        assert result.status == "succeeded", result.to_dict()
    return executions / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=2000)
    parser.add_argument("--label", default="current")
    args = parser.parse_args()
    rows = {"trivial": measure(trivial_workflow(), args.executions),
            "expression-heavy": measure(expression_heavy_workflow(), args.executions)}
    for name, rate in rows.items():
        print(f"{name:18} {rate:8.0f} executions/s")
    write_result(f"engine-{args.label}", {"executions": args.executions, "executions_per_second": rows})


if __name__ == "__main__":
    main()
