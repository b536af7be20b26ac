"""The answers of a webhook call, as webhook.ts (sendWebhookResponse, sendErrorResponse) and
TriggerService.handleWebhookTrigger build them.

* ``responseMode: onReceived``: ``200`` with NodeDrop's standard body ``{success, message, executionId,
  testMode, timestamp}`` as soon as the execution is queued.
* ``responseMode: lastNode``: once the execution has ended, ``responseData`` of its final output:
  ``firstEntryJson`` the first item's JSON, ``allEntries`` every item's JSON as a list, ``firstEntryBinary``
  the first item's first binary property as bytes with its ``mimeType``, ``noData`` an empty ``200``. A first
  item that is an HTTP response (``_httpResponse: true`` with ``statusCode``, ``headers``, ``body``, as
  NodeDrop's HTTP Response node writes it) is answered as that response. An execution that failed (or was
  cancelled) is ``500`` ``{success: false, error, nodeId, executionId, timestamp}``; with no output at all,
  the standard body. Unlike NodeDrop (which only ever reads the first entry), all four options apply.
* An execution still running after ``NODEDROP_WEBHOOK_WAIT_SECONDS``: ``504`` with its ``executionId`` (it
  goes on; NodeDrop answers ``400`` "Execution timeout").
* Options of every answer: ``responseContentType`` / ``customContentType``, ``responseHeaders``,
  ``propertyName`` (``data.result``, ``items[0]``: the value at that path, or all when it is missing) and
  ``noResponseBody``.
* Errors: ``{success: false, status, error: <title>, message, timestamp, webhook_id}``; a ``405`` also has
  ``allowed_methods`` and an ``Allow`` header.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from nodedrop_rq.jsontext import readable
from nodedrop_rq.webhooks.config import WebhookConfig

RECEIVED_MESSAGE = "Webhook received and workflow triggered"
TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
          408: "Request Timeout", 413: "Payload Too Large", 415: "Unsupported Media Type",
          422: "Unprocessable Entity", 500: "Internal Server Error", 503: "Service Unavailable",
          504: "Gateway Timeout"}
_INDEXED = re.compile(r"^(\w+)\[(\d+)\]$")
_MISSING = object()


@dataclass
class Answer:
    status: int
    body: bytes = b""
    media_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json(value: Any) -> bytes:
    return json.dumps(readable(value), separators=(",", ":"), allow_nan=False).encode()


def error(status: int, message: str, webhook_id: str, allowed: list[str] | None = None,
          headers: dict[str, str] | None = None) -> Answer:
    body: dict[str, Any] = {"success": False, "status": status, "error": TITLES.get(status, "Error"),
                            "message": message, "timestamp": now_iso()}
    out = dict(headers or {})
    if allowed:
        body["allowed_methods"] = allowed
        out["Allow"] = ", ".join(allowed)
    body["webhook_id"] = webhook_id
    return Answer(status, _json(body), headers=out)


def content_type(config: WebhookConfig) -> str:
    chosen = config.options.get("responseContentType")
    if chosen == "custom":
        custom = config.options.get("customContentType")
        return custom if isinstance(custom, str) and custom else "application/json"
    return chosen if isinstance(chosen, str) and chosen else "application/json"


def extract_property(value: Any, path: str) -> Any:
    """webhook.ts extractProperty: ``a.b``, ``items[0]``; the whole value when the path is not there."""
    if not path or value is None:
        return value
    found = value
    for key in path.split("."):
        match = _INDEXED.match(key)
        found = _member(_member(found, match.group(1)), int(match.group(2))) if match else _member(found, key)
        if found is _MISSING:
            return value
    return found


def _member(value: Any, key: str | int) -> Any:
    if isinstance(value, dict) and isinstance(key, str):
        return value.get(key, _MISSING)
    if isinstance(value, list) and isinstance(key, int):
        return value[key] if 0 <= key < len(value) else _MISSING
    return _MISSING


def _finish(config: WebhookConfig, status: int, body: Any, headers: dict[str, str], media_type: str) -> Answer:
    out = dict(headers)
    entries = (config.options.get("responseHeaders") or {}).get("entries") or []
    for entry in entries:
        if entry.get("name") and entry.get("value"):
            out[entry["name"]] = entry["value"]
    if config.options.get("noResponseBody") is True:
        return Answer(status, b"", media_type, out)
    if isinstance(body, bytes):
        return Answer(status, body, media_type, out)
    prop = config.options.get("propertyName")
    if isinstance(prop, str) and prop:
        body = extract_property(body, prop)
    if body is None:
        raw = b""
    elif isinstance(body, str) and "json" not in media_type:
        raw = body.encode()
    else:
        raw = _json(body)
    return Answer(status, raw, media_type, out)


def received(config: WebhookConfig, execution_id: str, cors: dict[str, str]) -> Answer:
    body = {"success": True, "message": RECEIVED_MESSAGE, "executionId": execution_id, "testMode": False,
            "timestamp": now_iso()}
    return _finish(config, 200, body, cors, content_type(config))


def timed_out(config: WebhookConfig, execution_id: str, seconds: float, webhook_id: str,
              cors: dict[str, str]) -> Answer:
    answer = error(504, f"the execution did not end within {seconds:g} s (NODEDROP_WEBHOOK_WAIT_SECONDS); "
                        "it goes on", webhook_id, headers=cors)
    body = json.loads(answer.body)
    body["executionId"] = execution_id
    answer.body = _json(body)
    return answer


def finished(config: WebhookConfig, state: dict[str, Any], cors: dict[str, str]) -> Answer:
    """The answer of a ``lastNode`` webhook from its execution's terminal state."""
    execution_id = str(state.get("id", ""))
    media_type = content_type(config)
    if state.get("status") != "succeeded":
        failure = state.get("error") if isinstance(state.get("error"), dict) else {}
        body: dict[str, Any] = {"success": False,
                                "error": failure.get("message") or f"Workflow execution {state.get('status')}"}
        if failure.get("nodeId"):
            body["nodeId"] = failure["nodeId"]
        body.update(executionId=execution_id, timestamp=now_iso())
        return _finish(config, 500, body, cors, "application/json")
    output = [item for item in state.get("output") or [] if isinstance(item, dict)]
    if not output:
        return received(config, execution_id, cors)
    first = output[0].get("json")
    if isinstance(first, dict) and first.get("_httpResponse") is True:
        headers = {str(k): str(v) for k, v in (first.get("headers") or {}).items()} \
            if isinstance(first.get("headers"), dict) else {}
        has_type = any(k.lower() == "content-type" for k in headers)
        status = first.get("statusCode") if isinstance(first.get("statusCode"), int) else 200
        media = next((v for k, v in headers.items() if k.lower() == "content-type"), media_type)
        headers = {k: v for k, v in headers.items() if k.lower() != "content-type"} if has_type else headers
        return _finish(config, status if 100 <= status <= 599 else 200, first.get("body"), {**cors, **headers}, media)
    mode = config.response_data
    if mode == "noData":
        return Answer(200, b"", media_type, dict(cors))
    if mode == "allEntries":
        return _finish(config, 200, [item.get("json") for item in output], cors, media_type)
    if mode == "firstEntryBinary":
        return _binary(config, output[0], cors)
    return _finish(config, 200, first, cors, media_type)


def _binary(config: WebhookConfig, item: dict[str, Any], cors: dict[str, str]) -> Answer:
    binary = item.get("binary")
    entry = next(iter(binary.values()), None) if isinstance(binary, dict) and binary else None
    if isinstance(entry, dict) and isinstance(entry.get("data"), str):
        try:
            data = base64.b64decode(entry["data"], validate=True)
        except (binascii.Error, ValueError):
            data = entry["data"].encode()
        mime = entry.get("mimeType") if isinstance(entry.get("mimeType"), str) else "application/octet-stream"
        return _finish(config, 200, data, cors, mime or "application/octet-stream")
    return Answer(200, b"", "application/octet-stream", dict(cors))
