"""``/api/schedules``: add, list and remove scheduled executions (see :mod:`nodedrop_rq.schedules`)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from redis import Redis

from nodedrop_rq.api.body import read_json_object
from nodedrop_rq.api.errors import ApiError, problems_error
from nodedrop_rq.schedules import ScheduleInvalid, ScheduleStore
from nodedrop_rq.schedules.definitions import Schedule, at_schedule, cron_schedule, parse_delay
from nodedrop_rq.settings import Settings
from nodedrop_rq.workflow import Problem, WorkflowInvalid


class ScheduleRequest(BaseModel):
    workflow: dict[str, Any] = Field(description="A NodeDrop workflow (bare or export envelope)")
    input: dict[str, Any] | list[dict[str, Any]] | None = None
    cron: str | None = Field(None, description='Cron expression, e.g. "*/5 * * * *"')
    tz: str = Field("UTC", description="IANA time zone of `cron`")
    at: str | None = Field(None, description="Run once at this ISO 8601 time (with a UTC offset)")
    delay: str | None = Field(None, alias="in", description="Run once after this delay, e.g. 30s, 5m")
    name: str | None = None


class ScheduleInfo(BaseModel):
    id: str
    name: str | None
    kind: str
    cron: str | None
    tz: str
    every: float | None
    at: str | None
    workflowName: str  # noqa: N815 - the API's JSON field name
    nextFire: str | None  # noqa: N815
    lastFire: str | None  # noqa: N815


def build_schedule_router(connection: Redis, settings: Settings, dependencies: list[Any],
                          responses: dict[int | str, dict[str, Any]]) -> APIRouter:
    store = ScheduleStore(connection, settings)
    router = APIRouter(prefix="/api/schedules", tags=["schedules"], dependencies=dependencies,
                       responses=responses)

    @router.post("", status_code=201, response_model=ScheduleInfo, summary="Add a schedule",
                 responses={400: {"description": "Malformed JSON or not an object"},
                            413: {"description": "Body larger than NODEDROP_MAX_BODY_BYTES"},
                            415: {"description": "Content-Type is not application/json"},
                            422: {"description": "Invalid schedule or workflow; every problem is listed"}},
                 openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                     "schema": ScheduleRequest.model_json_schema(by_alias=True)}}}})
    async def add(request: Request) -> dict[str, Any]:
        body = await read_json_object(request, settings.max_body_bytes)
        if not isinstance(body.get("workflow"), dict):
            raise ApiError(400, "invalid request body", 'the body lacks a "workflow" object')
        plan = _plan(body)
        try:
            schedule_id = await run_in_threadpool(store.add, plan, body["workflow"], body.get("input"))
        except WorkflowInvalid as exc:
            raise problems_error("invalid workflow", exc.problems) from None
        infos = await run_in_threadpool(store.list)
        return next(i.to_dict() for i in infos if i.id == schedule_id)

    @router.get("", response_model=list[ScheduleInfo], summary="Schedules with their next run times")
    def list_schedules() -> list[dict[str, Any]]:
        return [info.to_dict() for info in store.list()]

    @router.delete("/{schedule_id}", status_code=204, summary="Remove a schedule",
                   responses={404: {"description": "No such schedule"}})
    def remove(schedule_id: str) -> Response:
        if not store.remove(schedule_id):
            raise ApiError(404, "not found", f"no schedule {schedule_id!r}")
        return Response(status_code=204)

    return router


def _plan(body: dict[str, Any]) -> Schedule:
    chosen = [k for k in ("cron", "at", "in") if body.get(k)]
    if len(chosen) != 1:
        raise problems_error("invalid schedule", [Problem("", 'give exactly one of "cron", "at" or "in"')])
    now = datetime.now(timezone.utc)
    name = body.get("name")
    try:
        for field in ("cron", "at", "in", "tz", "name"):
            if body.get(field) is not None and not isinstance(body[field], str):
                raise ScheduleInvalid(f"{field} must be a string")
        if body.get("cron"):
            return cron_schedule(body["cron"], body.get("tz") or "UTC", name)
        if body.get("at"):
            return at_schedule(body["at"], now, name)
        return at_schedule(now + timedelta(seconds=parse_delay(body["in"])), now, name)
    except ScheduleInvalid as exc:
        raise problems_error("invalid schedule", [Problem(chosen[0], str(exc))]) from None
