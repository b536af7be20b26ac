"""``nodedrop-rq schedule add|list|remove`` and ``nodedrop-rq scheduler``."""

from __future__ import annotations

import logging
import sys
from datetime import datetime, timezone

import click

from nodedrop_rq.cli.common import (
    EXIT_FAILED,
    EXIT_INVALID,
    connect,
    fail,
    load_settings,
    parse_json_option,
    print_json,
    read_json_source,
    redis_errors,
)
from nodedrop_rq.schedules import ScheduleInvalid, ScheduleStore
from nodedrop_rq.schedules.definitions import at_schedule, cron_schedule, every_schedule, parse_delay
from nodedrop_rq.workflow import WorkflowInvalid


def register(group: click.Group) -> None:
    group.add_command(schedule)
    group.add_command(scheduler)


@click.group()
def schedule() -> None:
    """Run workflows on a cron schedule or once at a given time."""


@schedule.command("add")
@click.argument("source", metavar="FILE|-")
@click.option("--cron", "cron_expr", help='Cron expression, e.g. "*/5 * * * *".')
@click.option("--tz", default="UTC", show_default=True, help="Time zone of --cron (IANA name).")
@click.option("--at", "at_time", help="Run once at this ISO 8601 time (with a UTC offset).")
@click.option("--in", "in_delay", help="Run once after this delay, e.g. 30s, 5m, 2h.")
@click.option("--every", hidden=True, help="Run every N seconds (rq-scheduler's interval mode; for tests).")
@click.option("--input", "input_json", help="Input as JSON: one object or a list of them.")
@click.option("--name", help="A name to recognise the schedule by.")
@click.option("--json", "as_json", is_flag=True)
def schedule_add(source: str, cron_expr: str | None, tz: str, at_time: str | None, in_delay: str | None,
                 every: str | None, input_json: str | None, name: str | None, as_json: bool) -> None:
    """Add a schedule; each firing submits a normal execution."""
    chosen = [x for x in (cron_expr, at_time, in_delay, every) if x]
    if len(chosen) != 1:
        fail("give exactly one of --cron, --at or --in", EXIT_INVALID)
    settings = load_settings()
    document = read_json_source(source)
    data = parse_json_option(input_json, "--input")
    now = datetime.now(timezone.utc)
    try:
        if cron_expr:
            plan = cron_schedule(cron_expr, tz, name)
        elif at_time:
            plan = at_schedule(at_time, now, name)
        elif in_delay:
            from datetime import timedelta

            plan = at_schedule(now + timedelta(seconds=parse_delay(in_delay)), now, name)
        else:
            plan = every_schedule(every or "", name)
    except ScheduleInvalid as exc:
        fail(str(exc), EXIT_INVALID)
    with redis_errors(settings):
        store = ScheduleStore(connect(settings), settings)
        try:
            schedule_id = store.add(plan, document, data)
        except WorkflowInvalid as exc:
            click.echo(f"error: the workflow is invalid ({len(exc.problems)} problem(s)):", err=True)
            for problem in exc.problems:
                click.echo(f"  {problem.path or '(document)'}: {problem.message}", err=True)
            sys.exit(EXIT_INVALID)
        info = next(i for i in store.list() if i.id == schedule_id)
    if as_json:
        print_json(info.to_dict())
    else:
        click.echo(f"{schedule_id}  next run {info.next_fire.isoformat() if info.next_fire else '-'}")


@schedule.command("list")
@click.option("--json", "as_json", is_flag=True)
def schedule_list(as_json: bool) -> None:
    """List schedules with their next run times."""
    settings = load_settings()
    with redis_errors(settings):
        items = ScheduleStore(connect(settings), settings).list()
    if as_json:
        print_json([item.to_dict() for item in items])
        return
    for item in items:
        rule = {"cron": f"cron {item.schedule.cron!r} {item.schedule.tz}", "at": "once",
                "every": f"every {item.schedule.every:g} s"}[item.schedule.kind]
        click.echo(f"{item.id}  {item.schedule.name or item.workflow_name:<24} {rule:<32} "
                   f"next {item.next_fire.isoformat() if item.next_fire else '-'}")
    click.echo(f"{len(items)} schedule(s)")


@schedule.command("remove")
@click.argument("schedule_id")
def schedule_remove(schedule_id: str) -> None:
    """Remove a schedule (executions already submitted go on)."""
    settings = load_settings()
    with redis_errors(settings):
        removed = ScheduleStore(connect(settings), settings).remove(schedule_id)
    if not removed:
        fail(f"no schedule {schedule_id!r}", EXIT_FAILED)
    click.echo(f"removed {schedule_id}")


@click.command()
@click.option("--interval", type=click.FloatRange(min=0.2, max=60), default=1.0, show_default=True,
              help="Seconds between checks for due schedules.")
def scheduler(interval: float) -> None:
    """Fire due schedules (run one or more; a lock lets one fire at a time)."""
    from redis.exceptions import RedisError

    from nodedrop_rq.connection import redis_from_settings, wait_for_redis
    from nodedrop_rq.schedules.runner import ScheduleRunner

    settings = load_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("nodedrop_rq.scheduler")
    connection = redis_from_settings(settings, socket_timeout=10)
    while True:
        wait_for_redis(connection, settings.redis_url, log)
        try:
            # rq-scheduler's loop ends on SIGTERM/SIGINT (SystemExit) or when Redis goes away (RedisError):
            # the latter is waited out here, so the scheduler recovers by itself.
            ScheduleRunner(connection, settings, interval=interval).run()
            return
        except RedisError as exc:
            log.warning("lost Redis (%s: %s); resuming once it answers", type(exc).__name__, exc)
