"""``nodedrop-rq schedule add|list|remove`` and ``nodedrop-rq scheduler``."""

from __future__ import annotations

import logging
import signal
import sys
from datetime import datetime, timezone
from types import FrameType

import click

from nodedrop_rq.cli.common import (
    EXIT_FAILED,
    EXIT_INVALID,
    check_redis,
    connect,
    fail,
    load_settings,
    parse_json_option,
    print_json,
    read_json_source,
    redis_errors,
)
from nodedrop_rq.schedules import (
    Schedule,
    ScheduleInvalid,
    ScheduleStore,
    at_schedule,
    cron_schedule,
    every_schedule,
    in_schedule,
)
from nodedrop_rq.settings import queue_name_problem
from nodedrop_rq.workflow import WorkflowInvalid


def register(group: click.Group) -> None:
    group.add_command(schedule)
    group.add_command(scheduler)


@click.group()
def schedule() -> None:
    """Run workflows on a cron schedule, or once at a given time. `nodedrop-rq scheduler` fires them."""


@schedule.command("add")
@click.argument("source", metavar="FILE|-", required=False)
@click.option("--workflow-id", metavar="ID", help="A stored workflow instead of FILE: each firing runs its current "
                                                  "version.")
@click.option("--cron", "cron_expr", metavar="EXPR", help='Cron expression, e.g. "*/5 * * * *".')
@click.option("--tz", help="IANA time zone of --cron (default UTC), or of an --at time without a UTC offset.")
@click.option("--at", "at_time", metavar="ISO8601", help="Run once at this time, e.g. 2026-12-24T18:00:00+01:00.")
@click.option("--in", "in_delay", metavar="DELAY", help="Run once after this delay: 30s, 5m, 2h or 1d.")
@click.option("--every", metavar="DELAY", hidden=True,
              help="Run every N whole seconds (fixed interval, for tests and demos).")
@click.option("--input", "input_json", help="Input as JSON: one object or a list of them.")
@click.option("--name", help="A name to recognise the schedule by.")
@click.option("--queue", help="Queue its executions go to (default EXECUTION_QUEUE), on that queue's Redis.")
@click.option("--json", "as_json", is_flag=True, help="Print the stored schedule as JSON.")
def schedule_add(source: str | None, workflow_id: str | None, cron_expr: str | None, tz: str | None,
                 at_time: str | None, in_delay: str | None, every: str | None, input_json: str | None,
                 name: str | None, queue: str | None, as_json: bool) -> None:
    """Add a schedule; each firing submits a normal execution of the workflow in FILE (- for stdin), or of
    the stored workflow --workflow-id.

    The workflow and input are validated now; nothing is stored when anything is invalid (exit 2).
    """
    chosen = [flag for flag, value in (("--cron", cron_expr), ("--at", at_time), ("--in", in_delay),
                                       ("--every", every)) if value is not None]
    if len(chosen) != 1:
        fail("give exactly one of --cron, --at or --in", EXIT_INVALID)
    if tz is not None and chosen[0] not in ("--cron", "--at"):
        fail(f"--tz applies to --cron and --at, not {chosen[0]}", EXIT_INVALID)
    if (source is None) == (workflow_id is None):
        fail("give exactly one of FILE or --workflow-id", EXIT_INVALID)
    settings = load_settings()
    if queue is not None and (problem := queue_name_problem(queue)):
        fail(f"--queue: {problem}", EXIT_INVALID)
    document = read_json_source(source) if source is not None else None
    data = parse_json_option(input_json, "--input")
    plan = _plan(cron_expr, tz, at_time, in_delay, every, name)
    with redis_errors(settings):
        store = ScheduleStore(connect(settings), settings)
        try:
            schedule_id = store.add(plan, document, data, queue, workflow_id)
        except WorkflowInvalid as exc:
            click.echo(f"error: the workflow is invalid ({len(exc.problems)} problem(s)); nothing was stored:",
                       err=True)
            for problem in exc.problems:
                click.echo(f"  {problem.path or '(document)'}: {problem.message}", err=True)
            sys.exit(EXIT_INVALID)
        info = store.get(schedule_id)
    if info is None:  # fired and finished already (a one-off due within the second)
        click.echo(schedule_id)
        return
    if as_json:
        print_json(info.to_dict())
    else:
        click.echo(f"{schedule_id}  {plan.describe()}  next run {_when(info.next_fire)}")


def _plan(cron_expr: str | None, tz: str | None, at_time: str | None, in_delay: str | None, every: str | None,
          name: str | None) -> Schedule:
    now = datetime.now(timezone.utc)
    try:
        if cron_expr is not None:
            return cron_schedule(cron_expr, tz or "UTC", name)
        if at_time is not None:
            return at_schedule(at_time, now, name, tz=tz)
        if in_delay is not None:
            return in_schedule(in_delay, now, name)
        return every_schedule(every or "", name)
    except ScheduleInvalid as exc:
        fail(f"{exc}; nothing was stored", EXIT_INVALID)
        raise  # unreachable: fail() exits


@schedule.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the schedules as a JSON list.")
def schedule_list(as_json: bool) -> None:
    """List schedules (id, name, kind, rule, next run times), soonest first."""
    settings = load_settings()
    with redis_errors(settings):
        items = ScheduleStore(connect(settings), settings).list()
    if as_json:
        print_json([item.to_dict() for item in items])
        return
    if items:
        click.echo(f"{'ID':<32}  {'NAME':<20}  {'KIND':<5}  {'RULE':<36}  NEXT RUNS")
    for item in items:
        runs = ", ".join(_when(t) for t in item.next_fires) or "-"
        click.echo(f"{item.id:<32}  {(item.schedule.name or item.workflow_name)[:20]:<20}  "
                   f"{item.schedule.kind:<5}  {item.schedule.describe()[:36]:<36}  {runs}")
    click.echo(f"{len(items)} schedule(s)")


@schedule.command("remove")
@click.argument("schedule_id")
def schedule_remove(schedule_id: str) -> None:
    """Remove a schedule (executions it already submitted go on). Exit 1 if there is no such schedule."""
    settings = load_settings()
    with redis_errors(settings):
        removed = ScheduleStore(connect(settings), settings).remove(schedule_id)
    if not removed:
        fail(f"no schedule {schedule_id!r}", EXIT_FAILED)
    click.echo(f"removed {schedule_id}")


def _when(moment: datetime | None) -> str:
    return moment.isoformat() if moment else "-"


@click.command()
@click.option("--interval", type=click.FloatRange(min=0.2, max=60),
              help="Seconds between checks for due schedules (default NODEDROP_SCHEDULER_INTERVAL, 1).")
@click.option("--lock-ttl", type=click.FloatRange(min=1, max=300),
              help="Lease of the scheduler lock in seconds (default NODEDROP_SCHEDULER_LOCK_TTL, 5).")
def scheduler(interval: float | None, lock_ttl: float | None) -> None:
    """Fire due schedules as executions. Run one or more: a lock lets one fire at a time, and a standby
    takes over within lock TTL + interval when the active one dies."""
    from redis.exceptions import RedisError

    from nodedrop_rq.connection import describe_redis_url, redis_from_settings, wait_for_redis
    from nodedrop_rq.schedules.runner import ScheduleRunner

    settings = load_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("nodedrop_rq.scheduler")
    check_redis(settings)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    # Until rq-scheduler's loop installs its own handlers (and while waiting for Redis): exit cleanly.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    connection = redis_from_settings(settings, socket_timeout=10)
    token = None
    while True:
        wait_for_redis(connection, settings.redis_url, log)
        try:
            runner = ScheduleRunner(connection, settings, interval=interval, lock_ttl=lock_ttl, token=token)
            token = runner.token
            log.info("scheduler %s firing schedules from %s every %.1f s (lock lease %.1f s)", runner.name,
                     describe_redis_url(settings.redis_url), runner._interval, runner.lock_ttl_ms / 1000)
            # rq-scheduler's loop ends on SIGTERM/SIGINT (SystemExit) or when Redis goes away (RedisError):
            # the latter is waited out here, so the scheduler recovers by itself.
            runner.run()
            return
        except RedisError as exc:
            log.warning("lost Redis (%s: %s); resuming once it answers", type(exc).__name__, exc)
