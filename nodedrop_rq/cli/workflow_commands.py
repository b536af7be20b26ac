"""``nodedrop-rq workflow put|list|show|delete``: stored workflows (see :mod:`nodedrop_rq.workflows_store`).

``nodedrop-rq submit --workflow-id ID`` (queue_commands.py) runs one.
"""

from __future__ import annotations

import sys

import click

from nodedrop_rq.cli.common import (
    EXIT_FAILED,
    EXIT_INVALID,
    connect,
    fail,
    load_settings,
    print_json,
    read_json_source,
    redis_errors,
)
from nodedrop_rq.workflow import WorkflowInvalid
from nodedrop_rq.workflows_store import MAX_LIMIT, WebhookTaken, WorkflowStore


def register(group: click.Group) -> None:
    group.add_command(workflow)


@click.group()
def workflow() -> None:
    """Store workflows under an id, run them by id (`submit --workflow-id`), by schedule or by webhook."""


@workflow.command("put")
@click.argument("source", metavar="FILE|-")
@click.option("--id", "workflow_id", required=True, help="The workflow's id: 1 to 128 letters, digits, . _ -")
@click.option("--json", "as_json", is_flag=True, help="Print the stored record as JSON.")
def workflow_put(source: str, workflow_id: str, as_json: bool) -> None:
    """Store the workflow in FILE (- for stdin) as ID's next version. Invalid: exit 2, nothing stored; a
    webhook (path and method) of another stored workflow: exit 1."""
    settings = load_settings()
    document = read_json_source(source)
    with redis_errors(settings):
        try:
            stored = WorkflowStore(connect(settings), settings).put(workflow_id, document)
        except WorkflowInvalid as exc:
            click.echo(f"error: the workflow is invalid ({len(exc.problems)} problem(s)); nothing was stored:",
                       err=True)
            for problem in exc.problems:
                click.echo(f"  {problem.path or '(document)'}: {problem.message}", err=True)
            sys.exit(EXIT_INVALID)
        except WebhookTaken as exc:
            fail(f"{exc}; nothing was stored", EXIT_FAILED)
    if as_json:
        print_json(stored.to_dict(with_document=False) | {"changed": stored.changed})
        return
    change = "stored" if stored.changed else "unchanged"
    click.echo(f"{stored.id}  version {stored.version}  {change}  {stored.hash[:12]}")
    for hook in stored.webhooks:
        click.echo(f"  webhook {hook['method']} /webhook/{hook['path']} ({hook['responseMode']})")


@workflow.command("list")
@click.option("--limit", type=click.IntRange(1, MAX_LIMIT), default=50, show_default=True)
@click.option("--cursor", help="`more: --cursor C` of the previous page.")
@click.option("--json", "as_json", is_flag=True, help="Print {workflows, nextCursor} as JSON.")
def workflow_list(limit: int, cursor: str | None, as_json: bool) -> None:
    """Stored workflows in id order; `more: --cursor C` on stderr when there is a next page."""
    settings = load_settings()
    with redis_errors(settings):
        try:
            found, next_cursor = WorkflowStore(connect(settings), settings).list(limit, cursor)
        except ValueError as exc:
            fail(str(exc), EXIT_INVALID)
    if as_json:
        print_json({"workflows": [w.to_dict(with_document=False) for w in found], "nextCursor": next_cursor})
    else:
        for item in found:
            hooks = ", ".join(f"{h['method']} /webhook/{h['path']}" for h in item.webhooks) or "-"
            click.echo(f"{item.id:<32}  v{item.version:<4}  {item.name[:24]:<24}  {item.updated_at}  {hooks}")
    if next_cursor:
        click.echo(f"more: --cursor {next_cursor}", err=True)


@workflow.command("show")
@click.argument("workflow_id")
def workflow_show(workflow_id: str) -> None:
    """The stored record and workflow as JSON (webhook secrets redacted). Exit 1 if there is none."""
    settings = load_settings()
    with redis_errors(settings):
        found = WorkflowStore(connect(settings), settings).get(workflow_id)
    if found is None:
        fail(f"no stored workflow {workflow_id!r}", EXIT_FAILED)
    print_json(found.to_dict())


@workflow.command("delete")
@click.argument("workflow_id")
def workflow_delete(workflow_id: str) -> None:
    """Delete a stored workflow and its webhooks (executions already submitted go on). Exit 1 if none."""
    settings = load_settings()
    with redis_errors(settings):
        deleted = WorkflowStore(connect(settings), settings).delete(workflow_id)
    if not deleted:
        fail(f"no stored workflow {workflow_id!r}", EXIT_FAILED)
    click.echo(f"deleted {workflow_id}")
