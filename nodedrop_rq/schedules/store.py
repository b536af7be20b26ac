"""Adding, listing and removing schedules (rq-scheduler jobs whose data is JSON)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from redis import Redis
from rq_scheduler import Scheduler
from rq_scheduler.utils import to_unix

from nodedrop_rq import keys
from nodedrop_rq.schedules.definitions import Schedule
from nodedrop_rq.schedules.rq_json import JSONJob, JSONQueue
from nodedrop_rq.settings import Settings
from nodedrop_rq.submit import check_submission

FIRE_FUNC = "nodedrop_rq.schedules.firing.fire_schedule"


@dataclass(frozen=True)
class ScheduleInfo:
    id: str
    schedule: Schedule
    next_fire: datetime | None
    workflow_name: str
    last_fire: str | None

    def to_dict(self) -> dict[str, Any]:
        s = self.schedule
        return {"id": self.id, "name": s.name, "kind": s.kind, "cron": s.cron, "tz": s.tz, "every": s.every,
                "at": s.at.isoformat() if s.at else None, "workflowName": self.workflow_name,
                "nextFire": self.next_fire.isoformat() if self.next_fire else None, "lastFire": self.last_fire}


def rq_scheduler(connection: Redis, settings: Settings, interval: float = 1.0) -> Scheduler:
    return Scheduler(queue_name=settings.queue, connection=connection, interval=interval, job_class=JSONJob,
                     queue_class=JSONQueue)


class ScheduleStore:
    def __init__(self, connection: Redis, settings: Settings) -> None:
        self.connection = connection
        self.settings = settings
        self.scheduler = rq_scheduler(connection, settings)

    def add(self, schedule: Schedule, workflow: Any, input: Any = None) -> str:  # noqa: A002
        """Validate the workflow and input as a submission would, then store the schedule."""
        document, items = check_submission(workflow, input, self.settings)
        schedule_id = uuid.uuid4().hex
        first = schedule.first_fire(datetime.now(timezone.utc))
        job = self.scheduler._create_job(FIRE_FUNC, args=(schedule_id, document, items), id=schedule_id,
                                         meta=schedule.to_meta(), queue_name=self.settings.queue,
                                         description=f"schedule {schedule.name or schedule_id}", commit=False)
        with self.connection.pipeline() as pipe:
            job.save(pipeline=pipe)
            pipe.persist(job.key)
            pipe.zadd(self.scheduler.scheduled_jobs_key, {schedule_id: to_unix(first)})
            pipe.execute()
        return schedule_id

    def remove(self, schedule_id: str) -> bool:
        with self.connection.pipeline() as pipe:
            pipe.zrem(self.scheduler.scheduled_jobs_key, schedule_id)
            pipe.delete(JSONJob.key_for(schedule_id))
            pipe.hdel(keys.schedule_fires(), schedule_id)
            removed, _, _ = pipe.execute()
        return bool(removed)

    def list(self) -> list[ScheduleInfo]:
        fires = {k.decode(): v.decode() for k, v in self.connection.hgetall(keys.schedule_fires()).items()}
        out = []
        for job, when in self.scheduler.get_jobs(with_times=True):
            if "nd_kind" not in job.meta:
                continue  # another application's rq-scheduler job
            when = when.replace(tzinfo=timezone.utc) if when and when.tzinfo is None else when
            document = job.args[1] if len(job.args) > 1 else {}
            out.append(ScheduleInfo(job.id, Schedule.from_meta(job.meta), when,
                                    str((document or {}).get("name", "")), fires.get(job.id)))
        return out
