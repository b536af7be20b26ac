"""Scheduled executions (cron with a time zone, one-off at a time or after a delay, fixed interval), stored
in Redis through rq-scheduler.

A schedule is an rq-scheduler job (id = schedule id, function
:func:`~nodedrop_rq.schedules.firing.fire_schedule`, JSON-serialized) whose score in
``rq:scheduler:scheduled_jobs`` is its next firing. At each firing ``nodedrop-rq scheduler``
(:mod:`nodedrop_rq.schedules.runner`) calls ``fire_schedule``, which submits a normal execution with the
idempotency key ``schedule:<id>:<firing time>``, and moves the score to the next firing.

For the API and the exporter: :class:`ScheduleStore` (``add``, ``list``, ``get``, ``remove``) and
:func:`schedule_metrics` (or :func:`add_schedule_metric_commands` + :func:`schedule_metrics_from` inside
an existing pipeline).
"""

from nodedrop_rq.schedules.definitions import (
    Schedule,
    ScheduleInvalid,
    at_schedule,
    cron_schedule,
    every_schedule,
    in_schedule,
    parse_delay,
)
from nodedrop_rq.schedules.firing import fire_schedule, firing_key
from nodedrop_rq.schedules.store import (
    ScheduleInfo,
    ScheduleMetrics,
    ScheduleStore,
    add_schedule_metric_commands,
    schedule_metrics,
    schedule_metrics_from,
)

__all__ = [
    "Schedule",
    "ScheduleInfo",
    "ScheduleInvalid",
    "ScheduleMetrics",
    "ScheduleStore",
    "add_schedule_metric_commands",
    "at_schedule",
    "cron_schedule",
    "every_schedule",
    "fire_schedule",
    "firing_key",
    "in_schedule",
    "parse_delay",
    "schedule_metrics",
    "schedule_metrics_from",
]
