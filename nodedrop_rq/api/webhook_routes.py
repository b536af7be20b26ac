"""``/webhook/{path}``: the webhook triggers of stored workflows (NodeDrop's ``backend/src/routes/webhook.ts``).

No API token: like NodeDrop's route, a webhook is called by other systems, and the trigger's own
options (authentication, HMAC signature, IP allow-list, origins) decide; see :mod:`nodedrop_rq.webhooks`.

A call costs two Redis reads before the submit (the index ``nodedrop:webhook:<path>``, then the
workflow's current document), whatever the number of stored workflows; the trigger configuration parsed
from a document is kept per content hash, so a document is parsed for its webhooks once per process.
``responseMode: lastNode`` waits on the execution's event log (XREAD BLOCK on the event loop's Redis
client, no thread held) for at most ``NODEDROP_WEBHOOK_WAIT_SECONDS``.

Preflight requests (``OPTIONS`` with ``Access-Control-Request-Method``) are answered ``204`` with the CORS
headers of the trigger of the requested method, or ``403`` for an origin its ``allowedOrigins`` does not
list. (NodeDrop's route answers them ``405``, as any method but the trigger's, so a browser can never
call a webhook with a JSON body there.)
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from redis import Redis
from redis import asyncio as aioredis

from nodedrop_rq import event_log
from nodedrop_rq.api.body import read_body
from nodedrop_rq.api.errors import problems_error
from nodedrop_rq.settings import Settings
from nodedrop_rq.submit import submit_execution
from nodedrop_rq.webhooks import checks, responses
from nodedrop_rq.webhooks.config import MAX_PATH, METHODS, WebhookConfig, normalize_path, webhook_configs
from nodedrop_rq.webhooks.requests import BadBody, header_dict, query_dict, trigger_item
from nodedrop_rq.workflow import WorkflowInvalid
from nodedrop_rq.workflows_store import WorkflowStore

# Parsed trigger configurations kept per process (by document hash).
CACHED_DOCUMENTS = 256
# Seconds one XREAD BLOCK of a waiting lastNode call lasts before the state is read again.
WAIT_BLOCK = 1.0

DESCRIPTION = (
    "Calls the webhook trigger of a stored workflow whose trigger node has this webhook id (`webhookUrl`, "
    "plus `webhookPath`) and method (`httpMethod`). No API token: the trigger's authentication, HMAC "
    "signature, IP allow-list and allowed origins apply. `responseMode: onReceived` answers 200 at once "
    "with `{success, message, executionId, testMode, timestamp}`; `lastNode` waits for the execution "
    "(NODEDROP_WEBHOOK_WAIT_SECONDS) and answers its `responseData`. Errors are "
    "`{success: false, status, error, message, timestamp, webhook_id}`.")


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"type": "object"}}}}


RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Received (onReceived), or the execution's responseData (lastNode)"},
    204: {"description": "A CORS preflight the trigger allows"},
    400: _error("A JSON body that is not JSON"),
    401: _error("The trigger's authentication failed"),
    403: _error("Bad or missing HMAC signature, an IP address or origin the trigger does not allow, "
                "or a bot (ignoreBots)"),
    404: _error("No stored workflow has a webhook at this path"),
    405: _error("The webhook exists for other methods (listed in Allow)"),
    408: _error("The body did not arrive in full within NODEDROP_API_BODY_TIMEOUT"),
    413: _error("Body larger than NODEDROP_MAX_BODY_BYTES"),
    500: _error("lastNode: the execution failed"),
    504: _error("lastNode: the execution did not end within NODEDROP_WEBHOOK_WAIT_SECONDS (it goes on)"),
}


def build_webhook_router(connection: Redis, client: aioredis.Redis, settings: Settings) -> APIRouter:
    store = WorkflowStore(connection, settings)
    parsed: OrderedDict[str, dict[tuple[str, str], WebhookConfig]] = OrderedDict()
    router = APIRouter(tags=["webhooks"])

    def load(workflow_id: str) -> tuple[dict[str, Any], int, dict[tuple[str, str], WebhookConfig]] | None:
        current = store.current(workflow_id)
        if current is None:
            return None
        document, version, digest = current
        configs = parsed.get(digest)
        if configs is None:
            found, _ = webhook_configs(document)
            configs = {(c.path, c.method): c for c in found}
            parsed[digest] = configs
            while len(parsed) > CACHED_DOCUMENTS:
                parsed.popitem(last=False)
        return document, version, configs

    def resolve(path: str, method: str) -> tuple[dict[str, str], Any]:
        owners = store.webhook_owners(path)
        return owners, (load(owners[method]) if method in owners else None)

    async def call(path: str, request: Request) -> Response:
        path = normalize_path(path)
        headers = header_dict(request.scope.get("headers", []))
        method = request.method
        preflight = method == "OPTIONS" and "access-control-request-method" in headers
        wanted = headers.get("access-control-request-method", "").upper() if preflight else method
        # One thread hop for both reads: the index, then the owner's current document.
        owners, loaded = await run_in_threadpool(resolve, path, wanted) if 0 < len(path) <= MAX_PATH else ({}, None)
        if not owners:
            return _send(responses.error(404, "Webhook trigger not found", path))
        owner = owners.get(wanted)
        if owner is None:
            allowed = sorted(owners)
            return _send(responses.error(405, f"The {wanted} method is not supported for this route. Supported "
                                              f"methods: {', '.join(allowed)}.", path, allowed=allowed))
        config = loaded[2].get((path, wanted)) if loaded else None
        if loaded is None or config is None:  # changed since the index was read
            return _send(responses.error(404, "Webhook trigger not found", path))
        document, version, _ = loaded
        origin = headers.get("origin")
        if preflight:
            allowed_origins = config.options.get("allowedOrigins")
            if origin and isinstance(allowed_origins, str) and allowed_origins \
                    and not checks.origin_allowed(allowed_origins, origin):
                return _send(responses.error(403, "Origin not allowed", path))
            return Response(status_code=204, headers=checks.cors_headers(config, origin))
        body = await read_body(request, settings.max_body_bytes, settings.api_body_timeout)
        client_ip = request.client.host if request.client else ""
        query_string = request.scope.get("query_string", b"").decode("latin-1")
        try:
            checks.check(config, headers, query_dict(query_string), body, client_ip)
            item = trigger_item(config, method=method, path=request.url.path, query_string=query_string,
                                headers=headers, body=body, client_ip=client_ip,
                                webhook_url=f"{str(request.base_url).rstrip('/')}/webhook/{path}")
        except checks.Refused as exc:
            return _send(responses.error(exc.status, exc.message, path))
        except BadBody as exc:
            return _send(responses.error(400, f"malformed JSON body: {exc}", path))
        try:
            execution_id = await run_in_threadpool(
                submit_execution, document, [item], connection=connection, settings=settings,
                workflow_id=owner, workflow_version=version)
        except WorkflowInvalid as exc:
            raise problems_error("invalid webhook request", exc.problems) from None
        cors = checks.cors_headers(config, origin)
        if config.response_mode != "lastNode":
            return _send(responses.received(config, execution_id, cors))
        state = await _wait(client, execution_id, settings.webhook_wait_seconds)
        if state is None:
            return _send(responses.timed_out(config, execution_id, settings.webhook_wait_seconds, path, cors))
        return _send(responses.finished(config, state, cors))

    for method in (*METHODS, "OPTIONS"):
        router.add_api_route(
            "/webhook/{path:path}", call, methods=[method], operation_id=f"webhook_{method.lower()}",
            summary="A CORS preflight of a webhook" if method == "OPTIONS" else f"Call a {method} webhook trigger",
            description=DESCRIPTION, response_class=Response, responses=RESPONSES)
    return router


class QueryRedaction(logging.Filter):
    """Drops the query string of ``/webhook/`` requests from uvicorn's access log: a trigger with query
    authentication gets its secret there (``?token=...``), and secrets are never logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and args[2].startswith("/webhook/"):
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        return True


def _send(answer: responses.Answer) -> Response:
    return Response(content=answer.body, status_code=answer.status, media_type=answer.media_type,
                    headers=answer.headers)


async def _wait(client: aioredis.Redis, execution_id: str, seconds: float) -> dict[str, Any] | None:
    """The execution's terminal state, or None when it has not ended within ``seconds``."""
    deadline = time.monotonic() + seconds
    snapshot = await event_log.read_snapshot_async(client, execution_id)
    cursor = snapshot.head
    while not snapshot.terminal:
        left = deadline - time.monotonic()
        if left <= 0 or snapshot.state is None:
            return None
        events = await event_log.read_after_async(client, execution_id, cursor, int(min(left, WAIT_BLOCK) * 1000))
        if events:
            cursor = events[-1].id
        if not events or any(event.terminal for event in events):
            snapshot = await event_log.read_snapshot_async(client, execution_id)
    return snapshot.state
