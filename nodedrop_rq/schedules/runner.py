"""``nodedrop-rq scheduler``: rq-scheduler's loop, firing our schedules as executions.

Several may run: rq-scheduler's lock (``rq:scheduler_lock``, held only while due jobs are handled, with a
TTL of interval + 10 s) lets one at a time fire; the others retry every interval, so a scheduler that
dies is replaced within about 11 s. Missed firings (no scheduler ran at the time) fire **once** when a
scheduler returns, and the next firing is computed from then on: no burst of catch-up executions.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from rq.job import Job
from rq_scheduler import Scheduler
from rq_scheduler.utils import to_unix

from nodedrop_rq import keys
from nodedrop_rq.schedules.definitions import Schedule
from nodedrop_rq.schedules.firing import submit_firing
from nodedrop_rq.schedules.rq_json import JSONJob, JSONQueue
from nodedrop_rq.settings import Settings
from nodedrop_rq.workflow import WorkflowInvalid

log = logging.getLogger(__name__)


class ScheduleRunner(Scheduler):
    def __init__(self, connection: object, settings: Settings, interval: float = 1.0) -> None:
        super().__init__(queue_name=settings.queue, connection=connection, interval=interval, job_class=JSONJob,
                         queue_class=JSONQueue)
        self.settings = settings

    def enqueue_job(self, job: Job) -> None:
        if "nd_kind" not in job.meta:
            super().enqueue_job(job)  # not ours: rq-scheduler's own behaviour
            return
        score = self.connection.zscore(self.scheduled_jobs_key, job.id)
        if score is None:
            return  # removed meanwhile
        fire_time = int(score)
        schedule = Schedule.from_meta(job.meta)
        schedule_id, workflow, items = job.args
        try:
            execution_id = submit_firing(self.connection, self.settings, schedule_id, fire_time, workflow, items)
            log.info("schedule %s fired for %s: execution %s", schedule_id, fire_time, execution_id)
        except WorkflowInvalid as exc:
            log.error("schedule %s: workflow no longer valid, not fired: %s", schedule_id, exc)
        now = datetime.now(timezone.utc)
        # The next firing after now, not after the missed one: a scheduler back from downtime fires once.
        after = max(now, datetime.fromtimestamp(fire_time, timezone.utc))
        upcoming = schedule.next_fire(after)
        with self.connection.pipeline() as pipe:
            pipe.hset(keys.schedule_fires(), schedule_id, now.isoformat())
            if upcoming is None:
                pipe.zrem(self.scheduled_jobs_key, job.id)
                pipe.delete(job.key)
                pipe.hdel(keys.schedule_fires(), schedule_id)
            else:
                pipe.zadd(self.scheduled_jobs_key, {job.id: to_unix(upcoming)})
            pipe.execute()
