"""The FastAPI application: routes, authentication and error answers.

Routes (all JSON)::

    POST /api/executions                     submit a workflow       202 + Location
    GET  /api/executions                     search, newest first    (search_routes.py)
    GET  /api/executions/failed              failed registry         (manual review)
    GET  /api/executions/{id}                execution state
    POST /api/executions/{id}/cancel         cancel                  200 cancelled, 202 requested
    POST /api/executions/{id}/requeue        run a failed one again  202
    GET  /api/executions/{id}/events         Server-Sent Events      (event_routes.py)
    GET  /api/health                         queue counts; 503 when Redis is unreachable
    PUT|GET|DELETE /api/workflows/{id}, GET /api/workflows, POST /api/workflows/{id}/executions
                                             stored workflows        (workflow_routes.py)
    /webhook/{path}                          webhook triggers        (webhook_routes.py; no token)

With ``NODEDROP_API_TOKEN`` set, every ``/api/...`` route but health needs ``Authorization: Bearer <token>``;
``/webhook/...`` is called by other systems and checks what each trigger configures instead.
``/api/health``, ``/openapi.json`` and ``/docs`` stay public: health is what load balancers and
orchestrators probe (it returns counts only), and the API description holds no data or secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from redis import Redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from nodedrop_rq.api.answers import state_answer, submitted
from nodedrop_rq.api.body import ClientGone, parse_model, read_json_object
from nodedrop_rq.api.errors import ApiError, problems_error, scrub
from nodedrop_rq.api.event_routes import build_event_router
from nodedrop_rq.api.health_routes import build_health_router
from nodedrop_rq.api.models import (
    ErrorResponse,
    ExecutionState,
    FailedList,
    HealthResponse,
    ProblemsResponse,
    SubmitRequest,
    SubmitResponse,
    UnhealthyResponse,
)
from nodedrop_rq.api.schedule_routes import build_schedule_router
from nodedrop_rq.api.search_routes import build_search_router
from nodedrop_rq.api.webhook_routes import build_webhook_router
from nodedrop_rq.api.workflow_routes import build_workflow_router
from nodedrop_rq.connection import async_redis_from_settings, describe_redis_url, redis_url_secrets
from nodedrop_rq.errors import ExecutionNotFound, InvalidOperation
from nodedrop_rq.jsontext import readable
from nodedrop_rq.routed import RoutedControl, fleet_stats
from nodedrop_rq.routing import QueueRouter, RoutedRedisError
from nodedrop_rq.settings import Settings
from nodedrop_rq.submit import submit_execution
from nodedrop_rq.workflow import Problem, WorkflowInvalid

log = logging.getLogger(__name__)

# Seconds: each Redis command of a request; health gets its own, shorter budget so that it answers
# within 2 s even when Redis is a black hole.
COMMAND_TIMEOUT = 5.0
HEALTH_SOCKET_TIMEOUT = 0.8
HEALTH_DEADLINE = 1.5

QUEUE_NAME_PATTERN = r"^[A-Za-z0-9_.:-]+$"


def _error(description: str, model: type = ErrorResponse) -> dict[str, Any]:
    return {"model": model, "description": description}


REDIS_DOWN = {503: _error("Redis is unreachable")}
NOT_FOUND = {404: _error("Unknown id, or its state has expired")}


def create_app(settings: Settings, connection: Redis | None = None,
               health_connection: Redis | None = None) -> FastAPI:
    """The application for ``settings``.

    ``connection`` serves the routes (default: a client for ``settings.redis_url`` with a 5 s command
    timeout); ``health_connection`` serves ``/api/health`` (default: ``connection`` when one is given,
    else a dedicated client with ~1 s timeouts and no retries).
    """
    # One client per Redis server (REDIS_URL and EXECUTION_QUEUE_REDIS_URLS); health has its own.
    # One quick retry survives a dropped connection; more would only delay the 503.
    queue_router = QueueRouter(
        settings, socket_timeout=COMMAND_TIMEOUT, home_client=connection,
        prepare=lambda client: client.set_retry(Retry(ExponentialBackoff(cap=0.5, base=0.1), 1)))
    health_router = QueueRouter(settings, socket_timeout=HEALTH_SOCKET_TIMEOUT,
                                socket_connect_timeout=HEALTH_SOCKET_TIMEOUT,
                                home_client=health_connection or connection,
                                prepare=lambda client: client.set_retry(Retry(NoBackoff(), 0)))
    connection = queue_router.home.client
    health_connection = health_router.home.client
    owned = [queue_router, health_router]
    control = RoutedControl(queue_router, settings)
    # Event streams wait in XREAD BLOCK on the event loop; the read timeout leaves room for the block.
    stream_client = async_redis_from_settings(settings, socket_timeout=settings.sse_heartbeat + COMMAND_TIMEOUT,
                                              max_connections=settings.sse_max_connections + 10)
    redis_where = describe_redis_url(settings.redis_url)
    secrets = _secrets(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        for client in owned:
            client.close()
        await stream_client.aclose()

    app = FastAPI(
        title="nodedrop-rq",
        version=_version(),
        description="Submit NodeDrop workflows to the execution queue, follow and cancel executions, "
                    "review failed ones, and check the queue's health.",
        lifespan=lifespan,
    )
    _install_error_handlers(app, redis_where, secrets)
    app.openapi = _openapi_without_unreachable_422(app)  # type: ignore[method-assign]

    auth: list[Any] = []
    router_responses: dict[int | str, dict[str, Any]] = dict(REDIS_DOWN)
    if settings.api_token:
        auth = [Depends(_BearerTokenCheck(settings.api_token))]
        router_responses[401] = _error("Missing or wrong bearer token (NODEDROP_API_TOKEN)")
    router = APIRouter(prefix="/api/executions", tags=["executions"], dependencies=auth,
                       responses=router_responses)

    @router.post(
        "",
        status_code=202,
        response_model=SubmitResponse,
        summary="Submit a workflow for execution",
        responses={
            202: {"description": "Validated and queued",
                  "headers": {"Location": {"description": "URL of the execution's state",
                                           "schema": {"type": "string"}}}},
            400: _error("Malformed JSON (or NaN, Infinity, a lone surrogate), or a body that is not an object"),
            408: _error("The body did not arrive in full within NODEDROP_API_BODY_TIMEOUT"),
            413: _error("Body larger than NODEDROP_MAX_BODY_BYTES"),
            415: _error("Content-Type is not application/json"),
            422: _error("The body does not match the request model, or the workflow (or input) is invalid; "
                        "every problem is listed", ProblemsResponse),
        },
        openapi_extra={"requestBody": {
            "required": True,
            "content": {"application/json": {"schema": SubmitRequest.model_json_schema()}},
        }},
    )
    async def submit(request: Request, response: Response) -> dict[str, Any]:
        body = parse_model(SubmitRequest, await read_json_object(request, settings.max_body_bytes,
                                                                 settings.api_body_timeout))
        idempotency_key = body.idempotencyKey
        try:
            execution_id = await run_in_threadpool(
                submit_execution, body.workflow, body.input, idempotency_key=idempotency_key,
                router=queue_router, settings=settings, queue=body.queue, shard_key=body.shardKey)
        except WorkflowInvalid as exc:
            raise problems_error("invalid workflow", exc.problems) from None
        return await submitted(request, response, control.status_of, execution_id, idempotency_key)

    # Declared before /{execution_id}, which would otherwise take "failed" for an id.
    @router.get(
        "/failed",
        response_model=FailedList,
        tags=["review"],
        summary="Executions that used up their retries, newest first",
        responses={422: _error("Invalid query parameter", ProblemsResponse)},
    )
    def list_failed(
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        offset: Annotated[int, Query(ge=0, le=2**40)] = 0,  # Redis ranges are 64-bit
        queue: Annotated[str | None, Query(min_length=1, max_length=200, pattern=QUEUE_NAME_PATTERN,
                                           description="Default: EXECUTION_QUEUE")] = None,
    ) -> dict[str, Any]:
        items = control.list_failed(queue, limit=limit, offset=offset)
        return readable({"total": control.failed_count(queue), "queue": queue or settings.queue, "limit": limit,
                         "offset": offset, "executions": [item.to_dict() for item in items]})

    @router.get("/{execution_id}", response_model=ExecutionState, summary="An execution's state",
                responses=NOT_FOUND)
    def get_execution(execution_id: str) -> dict[str, Any]:
        return _complete(control.get(execution_id), execution_id)

    @router.post(
        "/{execution_id}/cancel",
        response_model=ExecutionState,
        summary="Cancel a queued, retrying or running execution",
        responses={
            200: {"description": "Cancelled (it was queued or waiting for a retry)"},
            202: {"model": ExecutionState,
                  "description": "Cancel requested: the running execution stops at its next node boundary"},
            409: _error("The execution already finished"),
            **NOT_FOUND,
        },
    )
    def cancel(execution_id: str, response: Response) -> dict[str, Any]:
        found = _complete(control.cancel(execution_id), execution_id)
        if found["status"] != "cancelled":
            response.status_code = 202
        return found

    @router.post(
        "/{execution_id}/requeue",
        status_code=202,
        response_model=ExecutionState,
        tags=["review"],
        summary="Run a failed execution again, with the full retry schedule",
        responses={409: _error("The execution is not in the failed registry"), **NOT_FOUND},
    )
    def requeue(execution_id: str) -> dict[str, Any]:
        try:
            return _complete(control.requeue(execution_id), execution_id)
        except InvalidOperation:
            if control.stored(execution_id) is None:
                raise ExecutionNotFound(execution_id) from None
            raise

    app.include_router(build_search_router(connection, settings, auth, router_responses))
    app.include_router(router)
    app.include_router(build_event_router(stream_client, settings, auth, router_responses))
    app.include_router(build_schedule_router(connection, settings, auth, router_responses))
    app.include_router(build_workflow_router(connection, settings, auth, router_responses, control))
    app.include_router(build_webhook_router(connection, stream_client, settings))
    app.include_router(build_health_router(health_connection, redis_where, lambda exc: _describe(exc, secrets)))
    multi = queue_router.multi

    @app.get(
        "/api/health",
        response_model=HealthResponse,
        tags=["health"],
        summary="Queue counts; 503 when Redis is unreachable",
        responses={503: {"model": UnhealthyResponse, "description": "Redis is unreachable"}},
    )
    async def health() -> Any:
        try:
            # The event loop's own executor, not the request thread pool: health is not queued behind
            # busy requests, and on timeout the thread is abandoned (it ends at its socket timeout).
            loop = asyncio.get_running_loop()
            found = await asyncio.wait_for(loop.run_in_executor(None, fleet_stats, health_router), HEALTH_DEADLINE)
        except asyncio.TimeoutError:
            where = redis_where if not multi else ", ".join(describe_redis_url(url) for url in queue_router.urls)
            return _unhealthy(f"Redis at {where} did not answer within {HEALTH_DEADLINE:g} s")
        except RedisError as exc:
            return _unhealthy(f"cannot reach Redis at {redis_where}: {_describe(exc, secrets)}")
        if found.unreachable:
            return _unhealthy("; ".join(scrub(str(exc), *secrets) for exc in found.unreachable))
        by_name = {row.queue: row for row in found.rows}
        rows = found.rows
        return {
            "status": "healthy",
            "queue": by_name[settings.queue].as_health(),
            "queues": {row.queue: row.as_health() | {"scheduled": row.scheduled} for row in rows},
        }

    return app


# -- helpers -------------------------------------------------------------------------------------


def _unhealthy(reason: str) -> JSONResponse:
    return JSONResponse({"status": "unhealthy", "reason": reason}, status_code=503)


def _complete(found: dict[str, Any], execution_id: str) -> dict[str, Any]:
    # A hash without a status is a leftover (e.g. a flag written just as the state expired).
    if not found.get("status") or not found.get("id"):
        raise ExecutionNotFound(execution_id)
    return state_answer(found)


def _secrets(settings: Settings) -> tuple[str, ...]:
    urls = [settings.redis_url, *(url for _, url in settings.queue_redis_urls)]
    found = [settings.api_token or "", *(secret for url in urls for secret in redis_url_secrets(url))]
    return tuple(s for s in found if s)


def _describe(exc: BaseException, secrets: tuple[str, ...]) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return scrub(text, *secrets)


def _version() -> str:
    try:
        return version("nodedrop-rq")
    except PackageNotFoundError:
        return "0"


# Module level: FastAPI resolves the (string) annotations below against this module's globals.
_BEARER = HTTPBearer(auto_error=False, description="NODEDROP_API_TOKEN")


class _BearerTokenCheck:
    """Dependency of every protected route: 401 unless ``Authorization: Bearer <token>`` matches."""

    def __init__(self, token: str) -> None:
        # Digests of equal length: compare_digest then leaks neither content nor length of the token.
        self._expected = hashlib.sha256(token.encode("utf-8")).digest()

    def __call__(self, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]) -> None:
        # Starlette decodes headers as latin-1; encoding back gives the bytes the client sent.
        supplied = credentials.credentials.encode("latin-1") if credentials else b""
        if not hmac.compare_digest(hashlib.sha256(supplied).digest(), self._expected):
            raise ApiError(401, "unauthorized", "send Authorization: Bearer <NODEDROP_API_TOKEN>",
                           headers={"WWW-Authenticate": "Bearer"})


def _install_error_handlers(app: FastAPI, redis_where: str, secrets: tuple[str, ...]) -> None:
    async def api_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        error = {404: "not found", 405: "method not allowed"}.get(exc.status_code, str(exc.detail).lower())
        return JSONResponse({"error": error}, status_code=exc.status_code, headers=exc.headers)

    async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = [Problem(".".join(str(part) for part in error.get("loc", ())), error.get("msg", "invalid"))
                    for error in exc.errors()]
        return problems_error("invalid request", problems).response()

    async def not_found(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ExecutionNotFound)
        return ApiError(404, "execution not found", str(exc), id=exc.execution_id).response()

    async def conflict(_request: Request, exc: Exception) -> JSONResponse:
        return ApiError(409, "conflict", str(exc)).response()

    async def redis_down(_request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, RoutedRedisError):  # one of several servers: name it and the queues it serves
            detail = scrub(str(exc), *secrets)
            log.warning("answering 503: %s", detail)
            return ApiError(503, "redis unavailable", detail, queues=list(exc.queues)).response()
        detail = f"cannot reach Redis at {redis_where}: {_describe(exc, secrets)}"
        log.warning("answering 503: %s", detail)
        return ApiError(503, "redis unavailable", detail).response()

    async def client_gone(_request: Request, _exc: Exception) -> JSONResponse:
        # Nobody reads this answer; it only keeps the disconnect out of the unhandled-error log.
        log.debug("client disconnected before its request body arrived")
        return JSONResponse({"error": "client disconnected"}, status_code=400)

    async def internal(_request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled %s while answering a request", type(exc).__name__)
        return JSONResponse({"error": "internal error"}, status_code=500)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(ExecutionNotFound, not_found)
    app.add_exception_handler(InvalidOperation, conflict)
    app.add_exception_handler(RedisError, redis_down)
    app.add_exception_handler(ClientGone, client_gone)
    app.add_exception_handler(ClientDisconnect, client_gone)
    app.add_exception_handler(Exception, internal)


def _openapi_without_unreachable_422(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """FastAPI documents a 422 ``HTTPValidationError`` on every route with a parameter; ours answer
    422 only where declared (with :class:`ProblemsResponse`), so drop the generated ones."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = FastAPI.openapi(app)
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                responses = operation.get("responses", {})
                ref = (responses.get("422", {}).get("content", {}).get("application/json", {})
                       .get("schema", {}).get("$ref", ""))
                if ref.endswith("/HTTPValidationError"):
                    del responses["422"]
        components = schema.get("components", {}).get("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        app.openapi_schema = schema
        return schema

    return openapi
