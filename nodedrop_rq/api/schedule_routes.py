"""``/api/schedules``: add, list and remove scheduled executions (see :mod:`nodedrop_rq.schedules`)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field
from redis import Redis

from nodedrop_rq.api.body import parse_model, read_json_object
from nodedrop_rq.api.errors import ApiError, problems_error
from nodedrop_rq.api.models import ErrorResponse, ExecutionInput, ProblemsResponse
from nodedrop_rq.jsontext import readable
from nodedrop_rq.schedules import ScheduleInvalid, ScheduleStore
from nodedrop_rq.schedules.definitions import Schedule, at_schedule, cron_schedule, in_schedule
from nodedrop_rq.settings import Settings
from nodedrop_rq.workflow import Problem, WorkflowInvalid


class ScheduleRequest(BaseModel):
    """Body of ``POST /api/schedules``: validated with this model, which is also its OpenAPI schema."""

    model_config = ConfigDict(populate_by_name=True)

    workflow: dict[str, Any] | None = Field(None, description="A NodeDrop workflow (bare or export envelope); "
                                                              "or give `workflowId`")
    workflowId: str | None = Field(None, min_length=1, max_length=128,  # noqa: N815 - the API's JSON name
                                   description="A stored workflow: each firing runs its current version")
    input: ExecutionInput = None
    cron: str | None = Field(None, max_length=200, description='Cron expression, e.g. "*/5 * * * *"')
    tz: str = Field("UTC", max_length=100, description="IANA time zone of `cron`")
    at: str | None = Field(None, max_length=64, description="Run once at this ISO 8601 time (with a UTC offset)")
    delay: str | None = Field(None, alias="in", max_length=64, description="Run once after this delay, e.g. 30s, 5m")
    name: str | None = Field(None, max_length=200)
    queue: str | None = Field(None, min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$",
                              description="Queue its executions go to (default EXECUTION_QUEUE)")


class ScheduleInfo(BaseModel):
    id: str
    name: str | None
    kind: str
    cron: str | None
    tz: str
    every: float | None
    at: str | None
    workflowName: str  # noqa: N815 - the API's JSON field name
    workflowId: str | None = None  # noqa: N815
    nextFire: str | None  # noqa: N815
    lastFire: str | None  # noqa: N815
    queue: str | None = None


def _error(description: str, model: type = ErrorResponse) -> dict[str, Any]:
    return {"model": model, "description": description}


def build_schedule_router(connection: Redis, settings: Settings, dependencies: list[Any],
                          responses: dict[int | str, dict[str, Any]]) -> APIRouter:
    store = ScheduleStore(connection, settings)
    router = APIRouter(prefix="/api/schedules", tags=["schedules"], dependencies=dependencies,
                       responses=responses)

    @router.post("", status_code=201, response_model=ScheduleInfo, summary="Add a schedule",
                 responses={400: _error("Malformed JSON (or NaN, Infinity, a lone surrogate), or not an object"),
                            408: _error("The body did not arrive in full within NODEDROP_API_BODY_TIMEOUT"),
                            413: _error("Body larger than NODEDROP_MAX_BODY_BYTES"),
                            415: _error("Content-Type is not application/json"),
                            422: _error("The body does not match the request model, or the schedule or "
                                        "workflow is invalid; every problem is listed", ProblemsResponse)},
                 openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                     "schema": ScheduleRequest.model_json_schema(by_alias=True)}}}})
    async def add(request: Request) -> dict[str, Any]:
        body = parse_model(ScheduleRequest, await read_json_object(request, settings.max_body_bytes,
                                                                   settings.api_body_timeout))
        if (body.workflow is None) == (body.workflowId is None):
            raise problems_error("invalid schedule", [Problem("", 'give exactly one of "workflow" or "workflowId"')])
        plan = _plan(body)
        try:
            schedule_id = await run_in_threadpool(store.add, plan, body.workflow, body.input, body.queue,
                                                  body.workflowId)
        except WorkflowInvalid as exc:
            raise problems_error("invalid workflow", exc.problems) from None
        infos = await run_in_threadpool(store.list)
        return readable(next(i.to_dict() for i in infos if i.id == schedule_id))

    @router.get("", response_model=list[ScheduleInfo], summary="Schedules with their next run times")
    def list_schedules() -> list[dict[str, Any]]:
        return readable([info.to_dict() for info in store.list()])

    @router.delete("/{schedule_id}", status_code=204, summary="Remove a schedule",
                   responses={404: _error("No such schedule")})
    def remove(schedule_id: str) -> Response:
        if not store.remove(schedule_id):
            raise ApiError(404, "not found", f"no schedule {schedule_id!r}")
        return Response(status_code=204)

    return router


def _plan(body: ScheduleRequest) -> Schedule:
    given = {"cron": body.cron, "at": body.at, "in": body.delay}
    chosen = [field for field, value in given.items() if value]
    if len(chosen) != 1:
        raise problems_error("invalid schedule", [Problem("", 'give exactly one of "cron", "at" or "in"')])
    now = datetime.now(timezone.utc)
    try:
        if body.cron:
            return cron_schedule(body.cron, body.tz or "UTC", body.name)
        if body.at:
            return at_schedule(body.at, now, body.name)
        return in_schedule(body.delay or "", now, body.name)
    except ScheduleInvalid as exc:
        raise problems_error("invalid schedule", [Problem(chosen[0], str(exc))]) from None
