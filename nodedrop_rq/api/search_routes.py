"""``GET /api/executions``: execution search, newest first, cursor-paged (see :mod:`nodedrop_rq.search`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from redis import Redis

from nodedrop_rq import search
from nodedrop_rq.api.errors import problems_error
from nodedrop_rq.api.models import ExecutionPage, ExecutionStatus, ProblemsResponse
from nodedrop_rq.jsontext import readable
from nodedrop_rq.settings import Settings
from nodedrop_rq.workflow import Problem

TIME_HELP = search.TIME_HELP


def build_search_router(connection: Redis, settings: Settings, dependencies: list[Any],
                        responses: dict[int | str, dict[str, Any]]) -> APIRouter:
    router = APIRouter(prefix="/api/executions", tags=["executions"], dependencies=dependencies,
                       responses=responses)

    @router.get(
        "",
        response_model=ExecutionPage,
        summary="Search executions, newest first",
        description="Executions whose state still exists, filtered by status, workflow id and creation time "
                    "(`since` inclusive, `until` exclusive), newest first. Follow `nextCursor` for the next page: "
                    "executions submitted meanwhile do not shift pages. Each query reads one Redis index: its "
                    "cost grows with the page size, not with the number of stored executions.",
        responses={422: {"model": ProblemsResponse, "description": "Invalid query parameter or cursor"}},
    )
    def list_executions(
        status: Annotated[ExecutionStatus | None, Query()] = None,
        workflow_id: Annotated[str | None, Query(alias="workflowId", min_length=1,
                                                 max_length=search.MAX_WORKFLOW_ID)] = None,
        since: Annotated[str | None, Query(max_length=64, description=TIME_HELP)] = None,
        until: Annotated[str | None, Query(max_length=64, description=TIME_HELP)] = None,
        limit: Annotated[int, Query(ge=1, le=search.MAX_LIMIT)] = 50,
        cursor: Annotated[str | None, Query(min_length=1, max_length=400,
                                            description="`nextCursor` of the previous page")] = None,
    ) -> dict[str, Any]:
        try:
            page = search.search(connection, settings, status=status, workflow_id=workflow_id,
                                 since=search.parse_moment("since", since),
                                 until=search.parse_moment("until", until), limit=limit,
                                 cursor=cursor)
        except search.SearchInvalid as exc:
            raise problems_error("invalid request", [Problem(f"query.{exc.parameter}", exc.message)]) from None
        return readable(page.to_dict())

    return router
