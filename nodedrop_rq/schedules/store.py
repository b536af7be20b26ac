"""Adding, listing and removing schedules (rq-scheduler jobs whose data is JSON), and their metrics.

Redis layout (all rq-scheduler's, plus one hash of ours):

* ``rq:job:<schedule id>``: the schedule's rq-scheduler job, JSON-serialized, no TTL:
  ``nodedrop_rq.schedules.firing.fire_schedule(schedule_id, workflow, input)`` (for a stored workflow:
  ``fire_schedule(schedule_id, None, input, workflow_id=<id>)``, and ``nd_workflow_id`` in its meta),
  with the rule in its ``meta`` (``nd_kind`` cron/at/every, ``nd_cron``, ``nd_tz``, ``nd_at``, ``nd_every``,
  ``nd_name``);
* ``rq:scheduler:scheduled_jobs`` (:data:`nodedrop_rq.keys.SCHEDULED_JOBS`): sorted set, schedule id
  scored with its next firing (Unix seconds);
* ``nodedrop:schedule-fires`` (:func:`nodedrop_rq.keys.schedule_fires`): schedule id -> last firing;
* ``rq:scheduler_lock``: the lock of the scheduler firing now (see :mod:`nodedrop_rq.schedules.runner`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from redis import Redis
from rq.job import Job
from rq_scheduler import Scheduler
from rq_scheduler.utils import to_unix

from nodedrop_rq import keys
from nodedrop_rq.connection import SERIALIZER
from nodedrop_rq.schedules.definitions import Schedule
from nodedrop_rq.schedules.firing import FIRE_FUNC
from nodedrop_rq.schedules.rq_json import JSONJob, JSONQueue
from nodedrop_rq.settings import Settings
from nodedrop_rq.submit import check_submission
from nodedrop_rq.workflow import Problem, WorkflowInvalid

__all__ = ["FIRE_FUNC", "ScheduleInfo", "ScheduleMetrics", "ScheduleStore", "schedule_metrics"]


@dataclass(frozen=True)
class ScheduleInfo:
    id: str
    schedule: Schedule
    next_fire: datetime | None
    workflow_name: str
    last_fire: str | None
    queue: str | None = None
    workflow_id: str | None = None

    @property
    def next_fires(self) -> list[datetime]:
        return self.schedule.upcoming(self.next_fire, 3)

    def to_dict(self) -> dict[str, Any]:
        s = self.schedule
        return {"id": self.id, "name": s.name, "kind": s.kind, "cron": s.cron, "tz": s.tz, "every": s.every,
                "at": s.at.isoformat() if s.at else None, "workflowName": self.workflow_name,
                "workflowId": self.workflow_id,
                "nextFire": self.next_fire.isoformat() if self.next_fire else None,
                "nextFires": [t.isoformat() for t in self.next_fires], "lastFire": self.last_fire,
                "queue": self.queue}


def rq_scheduler(connection: Redis, settings: Settings, interval: float = 1.0) -> Scheduler:
    """rq-scheduler's Scheduler with JSON jobs and queues (it pickles by default)."""
    return Scheduler(queue_name=settings.queue, connection=connection, interval=interval, job_class=JSONJob,
                     queue_class=JSONQueue)


class ScheduleStore:
    """What the CLI and the API call: ``add``, ``list``, ``get``, ``remove``."""

    def __init__(self, connection: Redis, settings: Settings) -> None:
        self.connection = connection
        self.settings = settings
        self.scheduler = rq_scheduler(connection, settings)

    def add(self, schedule: Schedule, workflow: Any, input: Any = None,  # noqa: A002
            queue: str | None = None, workflow_id: str | None = None) -> str:
        """Validate the workflow and input as a submission would (WorkflowInvalid lists every problem,
        and nothing is stored), then store the schedule; returns its id. Its firings go to ``queue``
        (default EXECUTION_QUEUE), kept as the job's origin, on that queue's Redis; the schedule itself
        stays here, on REDIS_URL's server, with every other schedule. With ``workflow_id`` (and
        ``workflow`` None) the schedule names a stored workflow: each firing runs its current version."""
        kwargs: dict[str, Any] = {}
        meta = schedule.to_meta()
        if workflow_id is not None:
            from nodedrop_rq.workflows_store import WorkflowStore

            current = WorkflowStore(self.connection, self.settings).current(workflow_id)
            if current is None:
                raise WorkflowInvalid([Problem("workflowId", f"no stored workflow {workflow_id!r}")])
            _, items = check_submission(current[0], input, self.settings)
            document = None
            kwargs = {"workflow_id": workflow_id}
            meta["nd_workflow_id"] = workflow_id
            meta["nd_workflow_name"] = str(current[0].get("name") or "")
        else:
            document, items = check_submission(workflow, input, self.settings)
        schedule_id = uuid.uuid4().hex
        first = schedule.first_fire(datetime.now(timezone.utc))
        job = self.scheduler._create_job(FIRE_FUNC, args=(schedule_id, document, items), kwargs=kwargs,
                                         id=schedule_id, meta=meta, queue_name=queue or self.settings.queue,
                                         description=f"schedule {schedule.name or schedule_id}", commit=False)
        with self.connection.pipeline() as pipe:
            job.save(pipeline=pipe)
            pipe.persist(job.key)
            pipe.zadd(self.scheduler.scheduled_jobs_key, {schedule_id: to_unix(first)})
            pipe.execute()
        return schedule_id

    def remove(self, schedule_id: str) -> bool:
        """Remove a schedule; False if there is none with this id. A firing already under way may still
        submit its execution; no firing starts after this returns."""
        if self._read([schedule_id]) == []:
            return False
        with self.connection.pipeline() as pipe:
            pipe.zrem(self.scheduler.scheduled_jobs_key, schedule_id)
            pipe.delete(JSONJob.key_for(schedule_id))
            pipe.hdel(keys.schedule_fires(), schedule_id)
            removed, _, _ = pipe.execute()
        return bool(removed)

    def get(self, schedule_id: str) -> ScheduleInfo | None:
        found = self._read([schedule_id])
        return found[0] if found else None

    def list(self) -> list[ScheduleInfo]:
        """Every schedule, soonest firing first (in two round trips plus one per 1000 schedules)."""
        ids = [i.decode() for i in self.connection.zrange(self.scheduler.scheduled_jobs_key, 0, -1)]
        out: list[ScheduleInfo] = []
        for start in range(0, len(ids), 1000):
            out.extend(self._read(ids[start:start + 1000]))
        return out

    def _read(self, ids: Sequence[str]) -> list[ScheduleInfo]:
        with self.connection.pipeline(transaction=False) as pipe:
            for schedule_id in ids:
                pipe.zscore(self.scheduler.scheduled_jobs_key, schedule_id)
                pipe.hgetall(JSONJob.key_for(schedule_id))
                pipe.hget(keys.schedule_fires(), schedule_id)
            values = pipe.execute()
        out = []
        for index, schedule_id in enumerate(ids):
            score, raw, last = values[3 * index:3 * index + 3]
            if score is None or not raw:
                continue
            try:
                job = Job(schedule_id, connection=self.connection, serializer=SERIALIZER)
                job.restore(raw)
                if "nd_kind" not in job.meta:
                    continue  # another application's rq-scheduler job
                document = job.args[1] if len(job.args) > 1 else {}
            except Exception:  # noqa: S112 - a job this code cannot read (e.g. pickled) is not a schedule of ours
                continue
            out.append(ScheduleInfo(schedule_id, Schedule.from_meta(job.meta),
                                    datetime.fromtimestamp(float(score), timezone.utc),
                                    str((document or {}).get("name", "") or job.meta.get("nd_workflow_name", "")),
                                    last.decode() if isinstance(last, bytes) else last, job.origin,
                                    job.meta.get("nd_workflow_id")))
        return out


@dataclass(frozen=True)
class ScheduleMetrics:
    schedules: int        # nodedrop_schedules
    lag_seconds: float    # nodedrop_schedule_lag_seconds: now - oldest overdue firing, 0 when none is overdue


def add_schedule_metric_commands(pipe: Any) -> None:
    """Queue the two commands the schedule metrics need on ``pipe`` (ZCARD, ZRANGE 0 0 WITHSCORES)."""
    pipe.zcard(keys.SCHEDULED_JOBS)
    pipe.zrange(keys.SCHEDULED_JOBS, 0, 0, withscores=True)


def schedule_metrics_from(count: int, earliest: Sequence[tuple[Any, float]],
                          now: float | None = None) -> ScheduleMetrics:
    """The metric values from the replies to :func:`add_schedule_metric_commands`."""
    now = time.time() if now is None else now
    lag = max(0.0, now - float(earliest[0][1])) if earliest else 0.0
    return ScheduleMetrics(schedules=int(count), lag_seconds=lag)


def schedule_metrics(connection: Redis, now: float | None = None) -> ScheduleMetrics:
    """``nodedrop_schedules`` and ``nodedrop_schedule_lag_seconds`` in one round trip."""
    with connection.pipeline(transaction=False) as pipe:
        add_schedule_metric_commands(pipe)
        count, earliest = pipe.execute()
    return schedule_metrics_from(count, earliest, now)
