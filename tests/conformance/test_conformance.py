"""Each workflow of ``workflows.py`` gives what NodeDrop's code gives (``expected.json``).

Per node: its status, its items per output, and its error message. Timestamps and preview ids differ
from run to run in NodeDrop too, so both sides replace them with placeholders before comparing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from nodedrop_rq.workflow import Limits, normalize_input, parse_workflow, run_workflow
from tests.conformance.workflows import CASES

EXPECTED = {entry["name"]: entry for entry in json.loads((Path(__file__).parent / "expected.json").read_text())}
_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
_PREVIEW_ID = re.compile(r"^preview-\d+$")
# Messages JavaScript itself writes differ between V8 (NodeDrop) and QuickJS (here): the text after
# these prefixes is the engine's (README, deliberate differences).
_ENGINE_MESSAGE = re.compile(r"^(JavaScript execution failed: |Invalid JSON data: ).*", re.S)


def normalized(value: Any, engine_message: bool = False) -> Any:
    if isinstance(value, dict):
        return {k: normalized(v, engine_message) for k, v in value.items()}
    if isinstance(value, list):
        return [normalized(v, engine_message) for v in value]
    if isinstance(value, str):
        if _PREVIEW_ID.match(value):
            return "<preview-id>"
        value = _ISO.sub("<iso>", value)
        return _ENGINE_MESSAGE.sub(r"\1<engine message>", value) if engine_message else value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def observed(entry: dict[str, Any]) -> dict[str, Any]:
    limits = Limits()
    workflow = parse_workflow(entry["workflow"], limits)
    result = run_workflow(workflow, normalize_input(entry["input"], limits), limits=limits, execution_id="exec-1")
    nodes = {}
    for node_id, run in result.nodes.items():
        seen: dict[str, Any] = {"status": run.status}
        if run.status == "succeeded":
            seen["output"] = {name: [item for item in items] for name, items in run.output.items()}
        if run.error and run.status == "failed":
            seen["error"] = run.error
        nodes[node_id] = seen
    return {"status": result.status, "nodes": nodes}


@pytest.mark.parametrize("entry", CASES, ids=[c["name"] for c in CASES])
def test_as_nodedrop(entry: dict[str, Any]) -> None:
    expected = normalized(EXPECTED[entry["name"]], entry["engine_message"])
    got = normalized(observed(entry), entry["engine_message"])
    assert got["status"] == expected["status"], (entry["source"], got)
    for node_id, want in expected["nodes"].items():
        have = got["nodes"][node_id]
        assert have["status"] == want["status"], (entry["source"], node_id, have)
        if "output" in want:
            for name, items in want["output"].items():
                assert have["output"].get(name, []) == items, (entry["source"], node_id, name)
        if "error" in want:
            assert have.get("error") == want["error"], (entry["source"], node_id)


def test_there_are_at_least_fifty_workflows_each_citing_its_source() -> None:
    assert len(CASES) >= 50 and set(EXPECTED) == {c["name"] for c in CASES}
    assert all("backend/src" in c["source"] or "packages/utils" in c["source"] for c in CASES)
