"""Scheduled executions (cron, one-off, fixed interval), stored in Redis through rq-scheduler.

A schedule is an rq-scheduler job (id = schedule id) whose score in ``rq:scheduler:scheduled_jobs`` is its
next firing time. The job is never run by a worker: at each firing the scheduler process
(:mod:`nodedrop_rq.schedules.runner`) submits a normal execution, with an idempotency key made of the
schedule id and the firing time, and moves the score to the next firing.
"""

from nodedrop_rq.schedules.definitions import Schedule, ScheduleInvalid, parse_delay
from nodedrop_rq.schedules.store import ScheduleStore

__all__ = ["Schedule", "ScheduleInvalid", "ScheduleStore", "parse_delay"]
