"""The conformance workflows give the same result on a real worker pool as with ``nodedrop-rq run``."""

from __future__ import annotations

import json

import click
from click.testing import CliRunner

from nodedrop_rq.cli import engine_commands
from nodedrop_rq.control import ExecutionControl
from nodedrop_rq.submit import submit_execution
from tests.conformance.test_conformance import normalized
from tests.conformance.workflows import CASES
from tests.conftest import wait_for

# Every node kind, in both isolations' reach: the pool below runs the default (fork).
SAMPLE = [c for c in CASES if not c["name"].startswith("code: a time-out")][::3]


def run_cli(entry: dict) -> dict:
    @click.group()
    def group() -> None:
        pass

    engine_commands.register(group)
    result = CliRunner().invoke(group, ["run", "-", "--json", "--input", json.dumps(entry["input"])],
                                input=json.dumps(entry["workflow"]), catch_exceptions=False)
    return json.loads(result.stdout)  # a failed run also writes its error line to stderr


def test_worker_pool_gives_what_nodedrop_rq_run_gives(start_pool, redis_conn, settings):
    pool = start_pool(concurrency=2)
    control = ExecutionControl(redis_conn, settings)
    submitted = {entry["name"]: submit_execution(entry["workflow"], entry["input"] or None,
                                                 connection=redis_conn, settings=settings)
                 for entry in SAMPLE}

    def finished(execution_id: str) -> bool:
        status = (control.get(execution_id) or {}).get("status")
        # A failing workflow is retried by the queue; its first attempt's result is what run gives.
        return status in ("succeeded", "failed", "retrying")

    for entry in SAMPLE:
        execution_id = submitted[entry["name"]]
        name = entry["name"]
        wait_for(lambda i=execution_id: finished(i), 60,
                 what=lambda n=name: f"{n} to finish; the pool said: {pool.output()[-2000:]}")
        state = control.get(execution_id)
        local = run_cli(entry)
        expected_status = "succeeded" if local["status"] == "succeeded" else ("failed", "retrying")
        assert state["status"] in expected_status, (entry["name"], state["status"], local["status"])
        if local["status"] == "succeeded":
            assert normalized(state["output"], entry["engine_message"]) == normalized(
                local["output"], entry["engine_message"]), entry["name"]
        else:
            assert normalized(state["error"]["message"], entry["engine_message"]) == normalized(
                local["error"]["message"], entry["engine_message"]), entry["name"]
