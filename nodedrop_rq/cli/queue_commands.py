"""Commands that talk to Redis: submit, status, cancel, failed, stats, worker, demo."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, NoReturn

import click

from nodedrop_rq import event_log, jsontext, search
from nodedrop_rq.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_TIMEOUT,
    EXIT_UNAVAILABLE,
    check_redis,
    connect,
    fail,
    handles_operation_errors,
    load_functions,
    load_settings,
    parse_json_option,
    print_json,
    read_json_source,
    redis_errors,
    routed_control,
)
from nodedrop_rq.execution.status import ALL
from nodedrop_rq.routed import RoutedControl, fleet_stats
from nodedrop_rq.routing import worker_settings
from nodedrop_rq.settings import SettingsError
from nodedrop_rq.state import QUEUED, TERMINAL
from nodedrop_rq.submit import submit_execution
from nodedrop_rq.workflow import Limits, WorkflowInvalid, normalize_input
from nodedrop_rq.workflows_store import WorkflowNotFound, WorkflowStore

# Seconds an execution may stay queued under `submit --wait` before the hint that no worker runs.
NO_WORKER_HINT_AFTER = 5.0
# Seconds `submit --wait` blocks on the event log before it looks at the state again.
WAIT_BLOCK = 1.0


def register(group: click.Group) -> None:
    for command in (submit, list_executions, status, cancel, failed, stats, worker, demo):
        group.add_command(command)


@click.command()
@click.argument("source", metavar="FILE|-", required=False)
@click.option("--workflow-id", metavar="ID", help="Run a stored workflow (`nodedrop-rq workflow put`) instead of FILE.")
@click.option("--input", "input_json", help="Input as JSON: one object (one item) or a list of them.")
@click.option("--idempotency-key", help="Submitting again with this key returns the same execution.")
@click.option("--queue", help="Queue to submit to (default: EXECUTION_QUEUE); a group of EXECUTION_QUEUE_SHARDS "
              "picks its shard by --shard-key.")
@click.option("--shard-key", help="With a sharded --queue: what picks the shard (default: the workflow's id, "
              "else its name), so executions with one key keep their order of arrival.")
@click.option("--wait", is_flag=True, help="Show progress and wait for the result.")
@click.option("--timeout", type=click.FloatRange(min=0), default=600.0, show_default=True,
              help="With --wait: stop waiting after this many seconds (exit 6; the execution goes on).")
@click.option("--json", "as_json", is_flag=True, help="Print the execution state as JSON.")
def submit(source: str | None, workflow_id: str | None, input_json: str | None, idempotency_key: str | None,
           queue: str | None, shard_key: str | None, wait: bool, timeout: float, as_json: bool) -> None:
    """Submit a workflow for execution on the worker pool: FILE (- for stdin), or a stored one."""
    if (source is None) == (workflow_id is None):
        fail("give exactly one of FILE or --workflow-id", EXIT_INVALID)
    settings = load_settings()
    document = read_json_source(source) if source is not None else None
    data = parse_json_option(input_json, "--input")
    try:
        normalize_input(data, Limits.from_settings(settings))
    except WorkflowInvalid as exc:
        _invalid("--input", exc)
    with redis_errors(settings):
        control = routed_control(settings)
        try:
            if workflow_id is not None:
                execution_id = WorkflowStore(control.router.home.client, settings).run(
                    workflow_id, data, idempotency_key=idempotency_key, queue=queue, router=control.router)
            else:
                execution_id = submit_execution(document, data, idempotency_key=idempotency_key,
                                                router=control.router, settings=settings, queue=queue,
                                                shard_key=shard_key)
        except WorkflowInvalid as exc:
            _invalid("the workflow", exc)
        except WorkflowNotFound as exc:
            fail(str(exc), EXIT_FAILED)
        if not wait:
            if as_json:
                print_json(control.get(execution_id))
            else:
                click.echo(execution_id)
            return
        # The id first, whatever happens next: it is what `status` and `cancel` need.
        click.echo(f"submitted {execution_id}", err=as_json)
        final = _wait(control, execution_id, timeout, show_progress=not as_json,
                      queue=queue or settings.queue)
    if as_json:
        print_json(final)
    else:
        _print_state(final)
    if final["status"] != "succeeded":
        sys.exit(EXIT_FAILED)


def _invalid(what: str, exc: WorkflowInvalid) -> NoReturn:
    click.echo(f"error: {what} is invalid ({len(exc.problems)} problem(s)):", err=True)
    for problem in exc.problems:
        click.echo(f"  {problem.path or '(document)'}: {problem.message}", err=True)
    sys.exit(EXIT_INVALID)


def _wait(control: RoutedControl, execution_id: str, timeout: float, show_progress: bool,
          queue: str) -> dict[str, Any]:
    """Follow the execution's event log (what ``GET /api/executions/{id}/events`` streams) until it ends."""
    started = time.monotonic()
    last_line = ""
    hinted = False
    tty = sys.stderr.isatty()
    current: dict[str, Any] = {"status": QUEUED}
    follow = f"follow it with `nodedrop-rq status {execution_id}`, stop it with `nodedrop-rq cancel {execution_id}`"

    def show(line: str) -> None:
        nonlocal last_line
        if show_progress and line != last_line:
            click.echo(("\r\033[K" if tty else "") + line, err=True, nl=not tty)
            last_line = line

    try:
        snapshot = event_log.read_snapshot(control.connection_of(execution_id), execution_id)
        current = snapshot.state or control.get(execution_id)
        cursor = event_log.begin(snapshot, None).cursor
        show(_progress_line(current))
        while current["status"] not in TERMINAL:
            waited = time.monotonic() - started
            if not hinted and current["status"] == QUEUED and waited >= NO_WORKER_HINT_AFTER:
                hinted = True
                click.echo(f"{chr(10) if tty else ''}no worker has picked up {execution_id} after "
                           f"{NO_WORKER_HINT_AFTER:g} s: is one running? Start one with `nodedrop-rq worker"
                           f"{'' if queue == control.settings.queue else ' --queue ' + queue}` (same REDIS_URL)",
                           err=True)
            if waited > timeout:
                fail(f"gave up waiting after {timeout:g} s: execution {execution_id} is still "
                     f"{current['status']} and goes on; {follow}", EXIT_TIMEOUT)
            until_hint = NO_WORKER_HINT_AFTER - waited if not hinted else WAIT_BLOCK
            block = max(min(WAIT_BLOCK, timeout - waited + 0.01, max(until_hint, 0.01)), 0.01)
            events = event_log.read_after(control.connection_of(execution_id), execution_id, cursor, int(block * 1000))
            for event in events:
                cursor = event.id
                current["status"] = _EVENT_STATUS.get(event.type, current["status"])
                show(_event_line(event, current))
            if not events or any(event.terminal for event in events):
                # A quiet log: the state is the truth (it may have expired, or ended without a log).
                current = control.get(execution_id)
        if show_progress and tty:
            click.echo("", err=True)
        return control.get(execution_id)
    except KeyboardInterrupt:
        fail(f"interrupted: execution {execution_id} is still {current['status']} and goes on; {follow}",
             EXIT_INTERRUPTED)


# The status an event leaves the execution in (node events leave it running).
_EVENT_STATUS = {"started": "running", "node-started": "running", "node-completed": "running",
                 "node-failed": "running", "node-skipped": "running", "retrying": "retrying",
                 "completed": "succeeded", "failed": "failed", "cancelled": "cancelled"}


def _event_line(event: event_log.Event, current: dict[str, Any]) -> str:
    data = json.loads(event.data)
    attempt = f"attempt {data.get('attempt') or current.get('attempt') or 1}/{current.get('maxAttempts')}"
    if event.type == "node-started":
        return f"[{attempt}] running node {data.get('nodeName') or data.get('nodeId')!r}"
    if event.type == "retrying":
        return f"[{attempt}] failed: {data.get('error', '')}; retrying at {data.get('nextRetryAt')}"
    if event.type.startswith("node-"):
        return f"[{attempt}] node {data.get('nodeName') or data.get('nodeId')!r} {event.type[5:]}"
    return f"[{attempt}] {_EVENT_STATUS.get(event.type, event.type)}"


def _progress_line(current: dict[str, Any]) -> str:
    attempt = f"attempt {current.get('attempt') or 1}/{current.get('maxAttempts')}"
    status = current["status"]
    if status == "running" and current.get("currentNode"):
        node = (current.get("nodes") or {}).get(current["currentNode"], {})
        return f"[{attempt}] running node {node.get('name') or current['currentNode']!r}"
    if status == "retrying":
        message = (current.get("error") or {}).get("message", "")
        return f"[{attempt}] failed: {message}; retrying at {current.get('nextRetryAt')}"
    return f"[{attempt}] {status}"


def _print_state(current: dict[str, Any]) -> None:
    click.echo(f"execution {current['id']}  workflow {current.get('workflowName')!r}")
    click.echo(f"  status:   {current['status']} (attempt {current.get('attempt')}/{current.get('maxAttempts')})")
    for label in ("createdAt", "startedAt", "finishedAt", "nextRetryAt"):
        if current.get(label):
            click.echo(f"  {label + ':':<10}{current[label]}")
    for node_id, node in (current.get("nodes") or {}).items():
        took = f"{node['durationMs']:.1f} ms" if node.get("durationMs") is not None else ""
        click.echo(f"  - {node.get('name') or node_id:<24} {node.get('status', ''):<10} {took}"
                   + (f"  {node['error']}" if node.get("error") else ""))
    if current.get("error"):
        error = current["error"]
        where = error.get("nodeName") or error.get("nodeId") or "-"
        click.echo(f"  error:    {error.get('message')} (node {where})")
    if current["status"] == "succeeded":
        click.echo("  output:   " + jsontext.dumps(current.get("output")).replace("\n", "\n  "))


@click.command("list")
@click.option("--status", "status_", type=click.Choice(sorted(ALL)), help="Only executions in this status.")
@click.option("--workflow-id", help="Only executions of the workflow with this id.")
@click.option("--since", help="Created at or after this ISO 8601 time (with a UTC offset).")
@click.option("--until", help="Created before this ISO 8601 time (with a UTC offset).")
@click.option("--limit", type=int, default=50, show_default=True, help=f"At most this many (1 to {search.MAX_LIMIT}).")
@click.option("--cursor", help="Continue after the page that printed this cursor.")
@click.option("--json", "as_json", is_flag=True, help='Print {"executions": [...], "nextCursor": ...}.')
def list_executions(status_: str | None, workflow_id: str | None, since: str | None, until: str | None, limit: int,
                    cursor: str | None, as_json: bool) -> None:
    """List executions, newest first (as GET /api/executions)."""
    settings = load_settings()
    try:
        window = search.parse_moment("--since", since), search.parse_moment("--until", until)
        with redis_errors(settings):
            page = search.search(connect(settings), settings, status=status_, workflow_id=workflow_id,
                                 since=window[0], until=window[1], limit=limit, cursor=cursor)
    except search.SearchInvalid as exc:
        fail(f"{_option(exc.parameter)}: {exc.message}", EXIT_INVALID)
    if as_json:
        print_json(page.to_dict())
        return
    for item in page.executions:
        message = (item.get("error") or {}).get("message") or ""
        click.echo(f"{item['id']}  {item['status']:<9}  {item.get('createdAt') or '-'}  "
                   f"{item.get('workflowName') or '-'}" + (f" ({item['workflowId']})" if item.get("workflowId") else "")
                   + (f"  {message}" if message else ""))
    if not page.executions:
        click.echo("no executions", err=True)
    if page.next_cursor:
        click.echo(f"more: --cursor {page.next_cursor}", err=True)


def _option(parameter: str) -> str:
    return {"workflowId": "--workflow-id"}.get(parameter, parameter if parameter.startswith("--") else f"--{parameter}")


@click.command()
@click.argument("execution_id")
@click.option("--json", "as_json", is_flag=True)
@handles_operation_errors
def status(execution_id: str, as_json: bool) -> None:
    """Show an execution's state."""
    settings = load_settings()
    with redis_errors(settings):
        current = routed_control(settings).get(execution_id)
    print_json(current) if as_json else _print_state(current)


@click.command()
@click.argument("execution_id")
@handles_operation_errors
def cancel(execution_id: str) -> None:
    """Cancel a queued, retrying or running execution."""
    settings = load_settings()
    with redis_errors(settings):
        current = routed_control(settings).cancel(execution_id)
    if current["status"] == "cancelled":
        click.echo(f"cancelled {execution_id}")
    else:
        click.echo(f"cancel requested: {execution_id} stops at its next node boundary")


@click.group()
def failed() -> None:
    """Review and requeue executions that used up their retries."""


@failed.command("list")
@click.option("--queue")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def failed_list(queue: str | None, limit: int, as_json: bool) -> None:
    """List failed executions, newest first."""
    settings = load_settings()
    with redis_errors(settings):
        control = routed_control(settings)
        items = control.list_failed(queue, limit=limit)
        total = control.failed_count(queue)
    if as_json:
        print_json({"total": total, "executions": [item.to_dict() for item in items]})
        return
    click.echo(f"{total} failed execution(s)" + (f", showing {len(items)}" if total > len(items) else ""))
    for item in items:
        message = (item.error or {}).get("message") or (item.exc_string or "").strip().splitlines()[-1:] or ""
        click.echo(f"{item.id}  {item.failed_at or '-'}  {item.workflow_name or '-'}  {message}")


@failed.command("show")
@click.argument("execution_id")
@handles_operation_errors
def failed_show(execution_id: str) -> None:
    """Show why an execution failed, with RQ's record of the last attempt."""
    settings = load_settings()
    with redis_errors(settings):
        item, current = routed_control(settings).show_failed(execution_id)
    if current:
        _print_state(current)
    else:
        click.echo(f"execution {execution_id} (state expired; RQ's record follows)")
    if item.exc_string:
        click.echo("  last attempt's traceback:")
        click.echo("    " + item.exc_string.strip().replace("\n", "\n    "))


@failed.command("requeue")
@click.argument("execution_ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Requeue every failed execution of the queue.")
@click.option("--queue")
@handles_operation_errors
def failed_requeue(execution_ids: tuple[str, ...], all_: bool, queue: str | None) -> None:
    """Run failed executions again (with the full retry schedule)."""
    if not execution_ids and not all_:
        fail("give execution ids or --all", EXIT_INVALID)
    settings = load_settings()
    with redis_errors(settings):
        control = routed_control(settings)
        done = control.requeue_all(queue) if all_ else [control.requeue(i)["id"] for i in execution_ids]
    for execution_id in done:
        click.echo(f"requeued {execution_id}")
    if all_:
        click.echo(f"{len(done)} execution(s) requeued")


@click.command()
@click.option("--json", "as_json", is_flag=True)
def stats(as_json: bool) -> None:
    """Waiting/active/completed/failed (and scheduled) executions per queue."""
    settings = load_settings()
    with redis_errors(settings):
        found = fleet_stats(routed_control(settings).router)
    rows = found.rows
    if as_json:
        print_json({row.queue: row.as_health() | {"scheduled": row.scheduled} for row in rows})
    else:
        click.echo(f"{'queue':<20}{'waiting':>9}{'active':>9}{'scheduled':>11}{'completed':>11}{'failed':>9}")
        for row in rows:
            click.echo(f"{row.queue:<20}{row.waiting:>9}{row.active:>9}{row.scheduled:>11}{row.completed:>11}"
                       f"{row.failed:>9}")
    for error in found.unreachable:  # the other servers' queues are shown above
        click.echo(f"error: {error}", err=True)
    if found.unreachable:
        sys.exit(EXIT_UNAVAILABLE)


@click.command()
@click.option("--concurrency", type=click.IntRange(min=1), help="Worker processes (default: "
              "EXECUTION_WORKER_CONCURRENCY).")
@click.option("--queue", "queues", multiple=True, help="Queue to work on (default: EXECUTION_QUEUE); repeat it "
              "or separate with commas for several (all on one Redis); a group of EXECUTION_QUEUE_SHARDS means "
              "its shards.")
@click.option("--burst", is_flag=True, help="Quit when the queue is empty.")
@click.option("--isolation", type=click.Choice(["supervised", "fork", "inline"]),
              help="supervised (default, EXECUTION_ISOLATION): executions run in the long-lived worker "
                   "processes, and the pool ends a dead one's attempt at once; fork: a forked process per "
                   "execution, about 8x slower; inline: as supervised (under plain `rq worker`, with no "
                   "supervisor process).")
def worker(concurrency: int | None, queues: tuple[str, ...], burst: bool, isolation: str | None) -> None:
    """Run a pool of ExecutionWorker processes (one container = N concurrent executions)."""
    from nodedrop_rq.rq_integration.pool import ExecutionWorkerPool

    settings = load_settings()
    load_functions(settings)
    try:  # the Redis of these queues (EXECUTION_QUEUE_REDIS_URLS) becomes the pool's
        settings, names = worker_settings(settings, [q.strip() for arg in queues for q in arg.split(",") if q.strip()])
    except SettingsError as exc:
        fail(str(exc), EXIT_INVALID)
    check_redis(settings)
    if isolation:
        settings = settings.with_overrides(isolation=isolation)
    pool = ExecutionWorkerPool(settings, concurrency=concurrency, queue=names)
    pool.start(burst=burst, logging_level=settings.log_level)


@click.command()
@click.option("--concurrency", type=click.IntRange(min=1, max=16), default=2, show_default=True)
def demo(concurrency: int) -> None:
    """Start Redis (unless REDIS_URL is set) and a worker pool, run the examples, print a summary."""
    from nodedrop_rq.demo import run_demo

    sys.exit(run_demo(load_settings(), concurrency=concurrency))
