"""A webhook request as the trigger's input item, in the shape NodeDrop gives it.

webhook.ts buildWebhookRequest and TriggerService.handleWebhookTrigger hand the trigger ``{method,
headers, query, body, params, ip, userAgent, webhookUrl}`` (plus ``rawBody``): ``headers`` with lower-case
names, ``path`` the URL as requested (with its query string, Express's ``originalUrl``), ``body`` the
parsed JSON or form body (``{}`` for other types, as Express leaves it). Our ``webhook-trigger`` node
(``workflow/nodes/triggers.py``) reads exactly these fields from the execution input's first item.

Differences: a repeated query parameter or form field becomes a list, but ``a[b]=1`` stays the key
``a[b]`` (Express's ``qs`` would nest it); ``rawBody`` (with the trigger's ``rawBody`` option) is the
body as text for any content type (NodeDrop keeps it for JSON bodies only); multipart uploads are not
parsed into ``binary`` (the body is then ``{}``). The credentials that authenticated the request (the
``Authorization`` header of basic authentication, the header or query parameter of header or query
authentication) are removed from the item, so that no execution state, output or event holds them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from nodedrop_rq import jsontext
from nodedrop_rq.webhooks.config import WebhookConfig


class BadBody(ValueError):
    """A body that says it is JSON and is not (Express's json parser answers 400 too)."""


def query_dict(query_string: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in parse_qsl(query_string, keep_blank_values=True):
        if name in out:
            out[name] = [*out[name], value] if isinstance(out[name], list) else [out[name], value]
        else:
            out[name] = value
    return out


def header_dict(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Node's ``req.headers``: lower-case names, repeated headers joined with ``, ``."""
    out: dict[str, str] = {}
    for name, value in raw:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        out[key] = f"{out[key]}, {text}" if key in out else text
    return out


def parse_body(body: bytes, content_type: str) -> Any:
    media_type = content_type.split(";", 1)[0].strip().lower()
    if not body:
        return {}
    if media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json")):
        try:
            return jsontext.loads(body)
        except jsontext.JsonTextError as exc:
            raise BadBody(str(exc)) from None
    if media_type == "application/x-www-form-urlencoded":
        return query_dict(body.decode("utf-8", "replace"))
    return {}


def trigger_item(config: WebhookConfig, *, method: str, path: str, query_string: str, headers: dict[str, str],
                 body: bytes, client_ip: str, webhook_url: str) -> dict[str, Any]:
    """The execution input (one item) for a request that passed the checks."""
    query = query_dict(query_string)
    headers = dict(headers)
    if config.auth is not None:
        if config.auth.type == "basic":
            headers.pop("authorization", None)
        elif config.auth.type == "header":
            headers.pop(config.auth.name.lower(), None)
        else:
            query.pop(config.auth.name, None)
    request: dict[str, Any] = {
        "method": method,
        "path": path + (f"?{query_string}" if query_string else ""),
        "headers": headers,
        "query": query,
        "body": parse_body(body, headers.get("content-type", "")),
        "params": {},
        "ip": client_ip,
        "webhookUrl": webhook_url,
    }
    if "user-agent" in headers:
        request["userAgent"] = headers["user-agent"]
    if config.options.get("rawBody") is True and body:
        request["rawBody"] = body.decode("utf-8", "replace")
    return {"json": request}
