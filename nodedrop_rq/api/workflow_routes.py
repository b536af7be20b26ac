"""``/api/workflows``: stored workflows (see :mod:`nodedrop_rq.workflows_store`).

    PUT    /api/workflows/{id}              store a NodeDrop export as the next version  201 / 200
    GET    /api/workflows                   id order, cursor-paged (no documents)
    GET    /api/workflows/{id}              the record and document, webhook secrets redacted
    DELETE /api/workflows/{id}              204; its webhooks stop answering
    POST   /api/workflows/{id}/executions   run the current version                      202 + Location
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field
from redis import Redis

from nodedrop_rq.api.answers import submitted
from nodedrop_rq.api.body import parse_model, read_json_object
from nodedrop_rq.api.errors import ApiError, problems_error
from nodedrop_rq.api.models import ErrorResponse, ExecutionInput, ProblemsResponse, SubmitResponse
from nodedrop_rq.jsontext import readable
from nodedrop_rq.routed import RoutedControl
from nodedrop_rq.settings import Settings
from nodedrop_rq.submit import MAX_IDEMPOTENCY_KEY
from nodedrop_rq.workflow import WorkflowInvalid
from nodedrop_rq.workflows_store import ID_PATTERN, MAX_LIMIT, WebhookTaken, WorkflowNotFound, WorkflowStore

WorkflowId = Annotated[str, Path(pattern=ID_PATTERN, description="1 to 128 letters, digits, '.', '_' or '-'")]


class RunRequest(BaseModel):
    """Body of ``POST /api/workflows/{id}/executions`` (optional: no body runs it without input)."""

    model_config = ConfigDict(extra="allow")

    input: ExecutionInput = Field(None, description="Execution input: one object (one item) or a list of objects")
    idempotencyKey: str | None = Field(  # noqa: N815 - the API's JSON field name
        None, min_length=1, max_length=MAX_IDEMPOTENCY_KEY,
        description="Running again with the same key returns the first execution while its state exists")


class WebhookInfo(BaseModel):
    path: str = Field(description="Answers at /webhook/{path}")
    method: str
    nodeId: str  # noqa: N815
    responseMode: str  # noqa: N815


class StoredWorkflowSummary(BaseModel):
    id: str
    version: int = Field(description="1 for the first PUT, one more for each PUT that changed the document")
    hash: str = Field(description="SHA-256 of the document's canonical JSON")
    name: str
    createdAt: str  # noqa: N815
    updatedAt: str  # noqa: N815
    webhooks: list[WebhookInfo]


class StoredWorkflowInfo(StoredWorkflowSummary):
    workflow: dict[str, Any] | None = Field(
        None, description="The stored (normalized) workflow; webhook secrets are answered as `__redacted__` "
                          "(PUT it back unchanged and the stored secrets are kept)")
    changed: bool | None = Field(None, description="PUT only: false when the document was already stored")


class StoredWorkflowPage(BaseModel):
    workflows: list[StoredWorkflowSummary] = Field(description="In id order, without their documents")
    nextCursor: str | None = Field(None, description="Pass as `cursor` for the next page; null on the last")  # noqa: N815


def _error(description: str, model: type = ErrorResponse) -> dict[str, Any]:
    return {"model": model, "description": description}


BODY_ERRORS = {400: _error("Malformed JSON (or NaN, Infinity, a lone surrogate), or a body that is not an object"),
               408: _error("The body did not arrive in full within NODEDROP_API_BODY_TIMEOUT"),
               413: _error("Body larger than NODEDROP_MAX_BODY_BYTES"),
               415: _error("Content-Type is not application/json")}
NOT_FOUND = {404: _error("No stored workflow with this id")}


def build_workflow_router(connection: Redis, settings: Settings, dependencies: list[Any],
                          responses: dict[int | str, dict[str, Any]], control: RoutedControl) -> APIRouter:
    store = WorkflowStore(connection, settings, router=control.router)
    router = APIRouter(prefix="/api/workflows", tags=["workflows"], dependencies=dependencies, responses=responses)

    @router.put(
        "/{workflow_id}",
        response_model=StoredWorkflowInfo,
        response_model_exclude_none=True,
        summary="Store a workflow (a NodeDrop export, with or without its envelope) as its next version",
        responses={
            200: {"description": "Updated (a new version), or `changed: false` when the document was already "
                                 "stored (the version is kept)"},
            201: {"model": StoredWorkflowInfo, "description": "Created (version 1)"},
            409: _error("A webhook trigger's path and method are another stored workflow's"),
            422: _error("The workflow is invalid (or one of its webhook triggers cannot be served); every "
                        "problem is listed", ProblemsResponse),
            **BODY_ERRORS,
        },
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "description": "A NodeDrop workflow, or an export envelope {version, workflow}. "
                                             "`nodedrop-rq schema` prints its JSON Schema."}}}}},
    )
    async def put(workflow_id: WorkflowId, request: Request, response: Response) -> dict[str, Any]:
        document = await read_json_object(request, settings.max_body_bytes, settings.api_body_timeout)
        try:
            stored = await run_in_threadpool(store.put, workflow_id, document)
        except WorkflowInvalid as exc:
            raise problems_error("invalid workflow", exc.problems) from None
        except WebhookTaken as exc:
            raise ApiError(409, "webhook taken", str(exc), workflowId=exc.owner) from None
        if stored.version == 1 and stored.changed:
            response.status_code = 201
        response.headers["Location"] = f"{request.scope.get('root_path', '')}/api/workflows/{workflow_id}"
        return readable(stored.to_dict() | {"changed": stored.changed})

    @router.get("", response_model=StoredWorkflowPage, summary="Stored workflows in id order, cursor-paged",
                responses={422: _error("Invalid query parameter or cursor", ProblemsResponse)})
    def list_workflows(
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
        cursor: Annotated[str | None, Query(pattern=ID_PATTERN, description="`nextCursor` of the previous page")]
        = None,
    ) -> dict[str, Any]:
        found, next_cursor = store.list(limit, cursor)
        return readable({"workflows": [w.to_dict(with_document=False) for w in found], "nextCursor": next_cursor})

    @router.get("/{workflow_id}", response_model=StoredWorkflowInfo, response_model_exclude_none=True,
                summary="A stored workflow (webhook secrets redacted)", responses=NOT_FOUND)
    def get(workflow_id: WorkflowId) -> dict[str, Any]:
        found = store.get(workflow_id)
        if found is None:
            raise _not_found(workflow_id)
        return readable(found.to_dict())

    @router.delete("/{workflow_id}", status_code=204, summary="Delete a stored workflow and its webhooks",
                   description="Executions already submitted go on (they carry their version).", responses=NOT_FOUND)
    def delete(workflow_id: WorkflowId) -> Response:
        if not store.delete(workflow_id):
            raise _not_found(workflow_id)
        return Response(status_code=204)

    @router.post(
        "/{workflow_id}/executions",
        status_code=202,
        response_model=SubmitResponse,
        summary="Run the stored workflow's current version",
        responses={202: {"description": "Validated and queued; the execution records workflowId and "
                                        "workflowVersion"},
                   422: _error("The body does not match the request model, or the input is invalid",
                               ProblemsResponse),
                   **NOT_FOUND, **BODY_ERRORS},
        openapi_extra={"requestBody": {"required": False, "content": {"application/json": {
            "schema": RunRequest.model_json_schema()}}}},
    )
    async def run(workflow_id: WorkflowId, request: Request, response: Response) -> dict[str, Any]:
        empty = request.headers.get("content-length") in (None, "0") and "transfer-encoding" not in request.headers
        raw = {} if empty else await read_json_object(request, settings.max_body_bytes, settings.api_body_timeout)
        body = parse_model(RunRequest, raw)
        try:
            execution_id = await run_in_threadpool(store.run, workflow_id, body.input,
                                                   idempotency_key=body.idempotencyKey)
        except WorkflowNotFound:
            raise _not_found(workflow_id) from None
        except WorkflowInvalid as exc:
            raise problems_error("invalid workflow", exc.problems) from None
        return await submitted(request, response, control.status_of, execution_id, body.idempotencyKey)

    return router


def _not_found(workflow_id: str) -> ApiError:
    return ApiError(404, "workflow not found", f"no stored workflow {workflow_id!r}", id=workflow_id)

