"""Commands that need no Redis: ``schema`` and ``run`` (a workflow, in this process).

Exit codes: 0 the run succeeded, 1 a node failed, 2 the document or input is invalid or unreadable
(or the settings are, or a module of NODEDROP_FUNCTION_MODULES).
"""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import click

from nodedrop_rq import jsontext
from nodedrop_rq.cli.common import read_text_source
from nodedrop_rq.settings import SettingsError, get_settings
from nodedrop_rq.workflow import (
    Limits,
    RunResult,
    WorkflowInvalid,
    load_function_modules,
    normalize_input,
    parse_workflow,
    run_workflow,
    workflow_schema,
)

EXIT_FAILED, EXIT_INVALID = 1, 2


def register(group: click.Group) -> None:
    group.add_command(schema)
    group.add_command(run)


def _fail(message: str, code: int = EXIT_INVALID) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _invalid(what: str, exc: WorkflowInvalid) -> NoReturn:
    click.echo(f"error: {what} is invalid ({len(exc.problems)} problem(s)):", err=True)
    for problem in exc.problems:
        node = f" [node {problem.node_id}]" if problem.node_id else ""
        click.echo(f"  {problem.path or '(document)'}: {problem.message}{node}", err=True)
    sys.exit(EXIT_INVALID)


def _read_document(source: str) -> Any:
    name = "standard input" if source == "-" else source
    try:
        return jsontext.loads(read_text_source(source))
    except jsontext.JsonTextError as exc:
        _fail(f"{name} is not valid JSON: {exc}")


@click.command()
def schema() -> None:
    """Print the JSON Schema of the workflow format."""
    click.echo(json.dumps(workflow_schema(), indent=2, ensure_ascii=False))


def _count(n: int) -> str:
    return f"{n} item" if n == 1 else f"{n} items"


def _print_human(result: RunResult, name: str) -> None:
    click.echo(f"Workflow {name!r}: {result.status} in {result.duration_ms:.1f} ms")
    for run in result.nodes.values():
        label = f"{run.name} ({run.type})"
        if run.status == "skipped":
            click.echo(f"  {'skipped':<9} {label}: {run.skip_reason}")
            continue
        duration = f"{run.duration_ms:.1f} ms" if run.duration_ms is not None else "-"
        line = f"  {run.status:<9} {label}  {duration}  in {run.input_count}, out {run.output_count}"
        if run.error:
            line += f"  error: {run.error}"
        click.echo(line)
    if result.status == "succeeded":
        click.echo(f"Output ({_count(len(result.output))}):")
        click.echo(jsontext.dumps(result.output))


@click.command()
@click.argument("source", metavar="FILE|-")
@click.option("--input", "input_json", help="Input as JSON: one object (one item) or a list of them.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def run(source: str, input_json: str | None, as_json: bool) -> None:
    """Run a workflow in this process (no Redis, no worker) and print what each node did."""
    try:
        settings = get_settings()
    except SettingsError as exc:
        _fail(str(exc))
    limits = Limits.from_settings(settings)
    try:
        load_function_modules(settings.function_modules)
    except ImportError as exc:
        _fail(f"NODEDROP_FUNCTION_MODULES: {exc}")
    document = _read_document(source)
    data = None
    if input_json is not None:
        try:
            data = jsontext.loads(input_json)
        except jsontext.JsonTextError as exc:
            _fail(f"--input is not valid JSON: {exc}")
    try:
        items = normalize_input(data, limits)
    except WorkflowInvalid as exc:
        _invalid("--input", exc)
    try:
        workflow = parse_workflow(document, limits)
    except WorkflowInvalid as exc:
        _invalid("the workflow", exc)
    except RecursionError:
        _fail("the workflow is nested too deeply")
    result = run_workflow(workflow, items, limits=limits)
    if as_json:
        click.echo(jsontext.dumps({"workflow": workflow.name, **result.to_dict()}))
    else:
        _print_human(result, workflow.name)
    if result.error is not None:
        click.echo(f"error: {result.error}", err=True)
        sys.exit(EXIT_FAILED)
