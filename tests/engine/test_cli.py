import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import nodedrop_rq
from nodedrop_rq.cli import engine_commands
from nodedrop_rq.settings import Settings

EXAMPLES = Path(nodedrop_rq.__file__).parent / "examples"


@pytest.fixture
def cli(monkeypatch):
    monkeypatch.setenv("WORKFLOW_MAX_DELAY_SECONDS", "0")
    # Read the environment on every call, so a test can change it (the real one caches).
    monkeypatch.setattr(engine_commands, "get_settings", Settings.from_env)

    @click.group()
    def group():
        pass

    engine_commands.register(group)
    runner = CliRunner()
    return lambda *args, **kw: runner.invoke(group, list(args), catch_exceptions=False, **kw)


def test_run_succeeds(cli):
    result = cli("run", str(EXAMPLES / "order-routing.json"), "--input", '{"price": 1, "quantity": 1}')
    assert result.exit_code == 0, result.output
    assert "Workflow 'Order routing': succeeded" in result.output
    assert "skipped   Priority Lane (set): received no items" in result.output
    assert '"lane": "standard"' in result.output


def test_run_json_output(cli):
    result = cli("run", str(EXAMPLES / "ticket-triage-switch.json"), "--json")
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["status"] == "succeeded" and data["workflow"] == "Support ticket triage"
    assert {n["nodeId"]: n["status"] for n in data["nodes"]}["merge"] == "succeeded"
    assert len(data["output"]) == 3
    assert data["nodes"][1]["output"]["main"][0]["json"]["id"] == 101


def test_run_failure_exits_1_naming_the_node(cli):
    result = cli("run", str(EXAMPLES / "fail-stop-and-error.json"))
    assert result.exit_code == 1
    assert "node 'Out Of Stock' (stop-and-error) failed: Out of stock: LAMP-42" in result.output
    as_json = cli("run", str(EXAMPLES / "fail-stop-and-error.json"), "--json")
    assert as_json.exit_code == 1


def test_run_from_stdin_with_list_input(cli):
    # ManualTrigger.node.ts: with allowCustomData, the first input item becomes customData.
    document = json.dumps({"nodes": [{"id": "t", "type": "manual-trigger", "parameters": {"allowCustomData": True}}]})
    result = cli("run", "-", "--input", '[{"a": 1}, {"json": {"b": 2}}]', "--json", input=document)
    assert result.exit_code == 0
    (item,) = json.loads(result.output)["output"]
    assert item["json"]["customData"] == {"a": 1} and item["json"]["triggerType"] == "manual"


def test_invalid_document_exits_2_listing_every_problem(cli, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(
        json.dumps(
            {
                "nodes": [{"id": "a", "type": "if"}, {"id": "a", "type": "set"}],
                "connections": [{"sourceNodeId": "a", "targetNodeId": "zz"}],
            }
        )
    )
    result = cli("run", str(path))
    assert result.exit_code == 2
    assert "is invalid (3 problem(s))" in result.output
    assert "nodes[0].type" in result.output and "nodes[1].id" in result.output
    assert "connections[0].targetNodeId" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "/no/such/file.json"], "cannot read /no/such/file.json"),
        (["run", "-"], "standard input is not valid JSON"),
        (["run", str(EXAMPLES / "order-routing.json"), "--input", "{oops"], "--input is not valid JSON"),
        (["run", str(EXAMPLES / "order-routing.json"), "--input", "5"], "--input is invalid"),
    ],
)
def test_unreadable_input_exits_2(cli, args, message):
    result = cli(*args, input="not json")
    assert result.exit_code == 2
    assert message in result.output


def test_bad_settings_exit_2(cli, monkeypatch):
    monkeypatch.setenv("WORKFLOW_MAX_NODES", "zero")
    result = cli("run", str(EXAMPLES / "order-routing.json"))
    assert result.exit_code == 2 and "WORKFLOW_MAX_NODES" in result.output


def test_schema_command_prints_json(cli):
    result = cli("schema")
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
