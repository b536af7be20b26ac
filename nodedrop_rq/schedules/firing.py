"""One firing of a schedule: a normal execution, submitted at most once per (schedule, firing time)."""

from __future__ import annotations

import time
from typing import Any

from redis import Redis

from nodedrop_rq.connection import redis_from_settings
from nodedrop_rq.routing import QueueRouter
from nodedrop_rq.settings import Settings, get_settings
from nodedrop_rq.submit import submit_execution

FIRE_FUNC = "nodedrop_rq.schedules.firing.fire_schedule"


def firing_key(schedule_id: str, fire_time: int) -> str:
    """Idempotency key of one firing (``schedule:<id>:<unix seconds of the scheduled time>``): however often
    that firing is attempted (two schedulers, a scheduler killed between submitting and rescheduling),
    it yields one execution."""
    return f"schedule:{schedule_id}:{int(fire_time)}"


def fire_schedule(schedule_id: str, workflow: dict[str, Any] | None, input: Any = None,  # noqa: A002
                  fire_time: int | None = None, *, connection: Redis | None = None,
                  settings: Settings | None = None, queue: str | None = None,
                  router: QueueRouter | None = None, workflow_id: str | None = None) -> str:
    """The function of every schedule's rq-scheduler job (``rq:job:<schedule id>`` holds it with the
    workflow and input as JSON). Submits a normal execution through :func:`submit_execution` (same
    validation, state, retries and metrics as any other) and returns its id.

    ``nodedrop-rq scheduler`` calls it in-process with the scheduled ``fire_time`` (the schedule's score in
    ``rq:scheduler:scheduled_jobs``). Should an RQ worker ever perform the stored job (someone enqueued it
    by hand), the current second stands in for the firing time. Raises WorkflowInvalid like a submission.
    With ``router`` (the scheduler's), the execution goes to the Redis of ``queue`` (default EXECUTION_QUEUE).

    A schedule of a stored workflow has ``workflow`` None and ``workflow_id`` set (the job's keyword
    argument): each firing runs that workflow's version current at the time (WorkflowNotFound once it is
    deleted).
    """
    if connection is None and router is None:
        from rq import get_current_job

        job = get_current_job()
        connection = job.connection if job is not None else None
    if fire_time is None:
        fire_time = int(time.time())
    settings = settings or get_settings()
    if workflow_id is not None:
        from nodedrop_rq.workflows_store import WorkflowStore

        # Stored workflows live on REDIS_URL's server; the execution goes to its queue's.
        home = router.home.client if router is not None else (connection or redis_from_settings(settings))
        return WorkflowStore(home, settings).run(workflow_id, input, idempotency_key=firing_key(schedule_id, fire_time),
                                                 queue=queue, router=router)
    return submit_execution(workflow, input, idempotency_key=firing_key(schedule_id, fire_time),
                            connection=connection, settings=settings, queue=queue,
                            router=router)
