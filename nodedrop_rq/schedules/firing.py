"""One firing of a schedule: a normal execution, submitted once per firing time."""

from __future__ import annotations

from typing import Any

from redis import Redis

from nodedrop_rq.settings import Settings
from nodedrop_rq.submit import submit_execution


def firing_key(schedule_id: str, fire_time: int) -> str:
    """Idempotency key of one firing: two schedulers firing the same time create one execution."""
    return f"schedule:{schedule_id}:{fire_time}"


def submit_firing(connection: Redis, settings: Settings, schedule_id: str, fire_time: int, workflow: Any,
                  input: Any) -> str:  # noqa: A002
    return submit_execution(workflow, input, idempotency_key=firing_key(schedule_id, fire_time),
                            connection=connection, settings=settings)


def fire_schedule(schedule_id: str, workflow: dict[str, Any], input: Any = None) -> str:  # noqa: A002
    """The schedule job's function. The scheduler process fires schedules itself and never queues this;
    it exists so that the stored job names a real function if someone enqueues it by hand."""
    from rq import get_current_job

    from nodedrop_rq.settings import get_settings

    job = get_current_job()
    assert job is not None
    return submit_execution(workflow, input, connection=job.connection, settings=get_settings())
