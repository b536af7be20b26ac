"""Request and response bodies of the HTTP service, as pydantic models.

They are the OpenAPI document's schemas and, for successful responses, the ``response_model`` that
FastAPI serialises through, so the published contract and the service cannot drift apart. Field names
are the JSON names (camelCase, as NodeDrop's API and the execution state use them).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidatorFunctionWrapHandler, WrapValidator

from nodedrop_rq.submit import MAX_IDEMPOTENCY_KEY

ExecutionStatus = Literal["queued", "running", "retrying", "succeeded", "failed", "cancelled"]


# -- requests ------------------------------------------------------------------------------------


def _one_input_problem(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    # A union reports one error per member ("valid dictionary", "valid list"); one sentence says it better.
    try:
        return handler(value)
    except ValidationError:
        raise ValueError("must be a JSON object (one item) or a list of objects (items)") from None


ExecutionInput = Annotated[dict[str, Any] | list[dict[str, Any]] | None, WrapValidator(_one_input_problem)]


class SubmitRequest(BaseModel):
    """Body of ``POST /api/executions``: the service reads the bytes itself (for exact 400/408/413/415
    answers), then validates them with this model (422), which is also the OpenAPI document's schema."""

    model_config = ConfigDict(extra="allow")

    workflow: dict[str, Any] = Field(
        description="A NodeDrop workflow (`{name, nodes, connections, settings}`), or a NodeDrop export "
                    "envelope `{version, workflow: {...}}`. `nodedrop-rq schema` prints its JSON Schema.")
    input: ExecutionInput = Field(
        None, description="Execution input: one object (one item) or a list of objects (items).")
    idempotencyKey: str | None = Field(
        None, min_length=1, max_length=MAX_IDEMPOTENCY_KEY,
        description="Submitting again with the same key returns the first execution while its state exists.")
    queue: str | None = Field(
        None, min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Queue to run it on (default EXECUTION_QUEUE); it lives on its Redis "
                    "(EXECUTION_QUEUE_REDIS_URLS). A group of EXECUTION_QUEUE_SHARDS picks a shard by `shardKey`.")
    shardKey: str | None = Field(
        None, min_length=1, max_length=200,
        description="With a sharded queue: what picks the shard (default: the workflow's id, else its name).")


# -- responses -----------------------------------------------------------------------------------


class ExecutionLinks(BaseModel):
    self: str = Field(description="URL of the execution's state")
    cancel: str = Field(description="POST here to cancel it")


class SubmitResponse(BaseModel):
    id: str = Field(description="Execution id (also the RQ job id)")
    status: ExecutionStatus = Field(
        description="`queued` for a new execution; with a reused idempotency key, the first execution's "
                    "current status")
    links: ExecutionLinks


class ExecutionState(BaseModel):
    """An execution's state as stored in ``nodedrop:execution:<id>`` (see ``nodedrop_rq.state``)."""

    model_config = ConfigDict(extra="allow")

    id: str
    status: ExecutionStatus
    queue: str | None = None
    workflowName: str | None = None
    attempt: int = Field(0, description="Current or last attempt, 1-based (0 before the first)")
    maxAttempts: int | None = None
    createdAt: str | None = None
    startedAt: str | None = None
    finishedAt: str | None = None
    nextRetryAt: str | None = None
    currentNode: str | None = Field(None, description="Id of the node running now")
    nodes: dict[str, dict[str, Any]] | None = Field(
        None, description="Per node: name, type, status, startedAt, finishedAt, durationMs, outputCount, error")
    output: list[Any] | None = Field(None, description="Items of the final node(s), once succeeded")
    error: dict[str, Any] | None = Field(None, description="{nodeId, nodeType, nodeName, message, kind} "
                                                           "of the last failure")
    cancelRequested: bool = False
    idempotencyKey: str | None = None
    requeues: int = 0
    attempts: list[dict[str, Any]] = Field(default_factory=list, description="One record per attempt")
    unreadableFields: dict[str, str] | None = Field(
        None, description="Stored fields that do not have the documented shape, as their JSON text (the rest "
                          "of the state is still answered)")


class FailedExecution(BaseModel):
    id: str
    queue: str
    failedAt: str | None = None
    workflowName: str | None = None
    error: dict[str, Any] | None = None
    attempts: int | None = Field(None, description="Attempts made")
    excString: str | None = Field(None, description="Traceback of the last attempt, as RQ recorded it")


class FailedList(BaseModel):
    total: int = Field(description="Executions in the failed registry of the queue")
    queue: str
    limit: int
    offset: int
    executions: list[FailedExecution] = Field(description="Newest first")


class QueueCounts(BaseModel):
    waiting: int
    active: int
    completed: int
    failed: int


class QueueCountsWithScheduled(QueueCounts):
    scheduled: int = Field(description="Waiting for a retry")


class HealthResponse(BaseModel):
    status: Literal["healthy"]
    queue: QueueCounts = Field(description="Counts of the configured queue (EXECUTION_QUEUE)")
    queues: dict[str, QueueCountsWithScheduled] = Field(description="Counts of every known queue")


class UnhealthyResponse(BaseModel):
    status: Literal["unhealthy"]
    reason: str


class ErrorResponse(BaseModel):
    error: str = Field(description="What went wrong, in a few words")
    detail: str | None = Field(None, description="More about it, when there is more to say")


class Problem(BaseModel):
    path: str = Field(description="Where in the workflow document (or `input`, `idempotencyKey`, "
                                  "`query.<name>`); empty for the whole document")
    message: str
    nodeId: str | None = None


class ProblemsResponse(BaseModel):
    error: str = Field(description="`invalid workflow`, `invalid schedule` or `invalid request` (the body "
                                   "does not match the request model)")
    problems: list[Problem]


class ExecutionSummary(BaseModel):
    """One result of ``GET /api/executions`` (the full state is at ``GET /api/executions/{id}``)."""

    id: str
    status: ExecutionStatus
    queue: str | None = None
    workflowName: str | None = None
    workflowId: str | None = Field(None, description="The workflow document's `id`, when it has one")
    attempt: int = 0
    maxAttempts: int | None = None
    createdAt: str | None = None
    startedAt: str | None = None
    finishedAt: str | None = None
    nextRetryAt: str | None = None
    error: dict[str, Any] | None = None


class ExecutionPage(BaseModel):
    executions: list[ExecutionSummary] = Field(description="Newest first (by `createdAt`)")
    nextCursor: str | None = Field(
        None, description="Pass as `cursor` for the next page (same filters); null on the last page")
