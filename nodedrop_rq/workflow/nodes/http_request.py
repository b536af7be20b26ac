"""``http-request`` (NodeDrop's HTTP Request node), with httpx.

Parameters as in NodeDrop: ``method``, ``url``, ``headers`` (object or JSON text), ``body`` (sent for
POST/PUT/PATCH: text as-is, an object/array as JSON), ``timeout`` (ms, default 30000),
``followRedirects``, ``maxRedirects``, ``responseFormat`` (``dataOnly``: the response body is the
item; ``fullResponse``: ``{status, statusText, headers, data, responseTime, url, ok}``). A JSON
content type is parsed, anything else is text; either is the item's json as it is (an array or a
string too, as in NodeDrop).

One request per node run, with expressions evaluated against the first input item (as NodeDrop).
A non-2xx status fails the node unless the node's ``alwaysOutputData`` setting is on. With the
``continueOnFail`` setting alone, a failure gives NodeDrop's item ``{error: true, errorMessage, errorType,
statusCode, url, method, timestamp, details}``. No retries (NodeDrop retries 3 times in the node; here the
queue retries whole executions). Credentials (``authentication``) are not supported.

Only http/https. Loopback, private, link-local and other non-public addresses are refused unless
``Limits.allow_private_network``, or for the networks in ``Limits.allowed_networks``
(NODEDROP_HTTP_ALLOWED_NETWORKS); cloud metadata endpoints are refused always. The check is made on the
client's transport (``netguard``): each connection, redirect hops included, resolves its host once, checks
every address (embedded IPv4 forms as the IPv4 address) and connects to the checked one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from nodedrop_rq.workflow.limits import Limits
from nodedrop_rq.workflow.netguard import AddressPolicy, AddressRefused, GuardedTransport, ResolutionFailed
from nodedrop_rq.workflow.node_type import Inputs, Item, NodeContext, NodeType, Outputs
from nodedrop_rq.workflow.params import Param, any_value, boolean, number, options

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")


class HttpRequestError(Exception):
    def __init__(self, message: str, *, error_type: str = "REQUEST_ERROR", status: int | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.status = status


def _checked_url(url: Any) -> str:
    if not isinstance(url, str) or not url.strip():
        raise HttpRequestError("URL is required", error_type="VALIDATION_ERROR")
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HttpRequestError(
            f"only http:// and https:// URLs are allowed, got {url!r}", error_type="VALIDATION_ERROR"
        )
    return url


def _headers(value: Any) -> dict[str, str]:
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise HttpRequestError("Invalid headers JSON format", error_type="VALIDATION_ERROR") from None
    if not isinstance(value, dict):
        raise HttpRequestError("headers must be an object", error_type="VALIDATION_ERROR")
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


def _read(response: httpx.Response, limit: int) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise HttpRequestError(f"response body is larger than {limit} bytes", error_type="RESPONSE_TOO_LARGE")
        chunks.append(chunk)
    return b"".join(chunks)


def _decode(response: httpx.Response, body: bytes) -> Any:
    if "application/json" in response.headers.get("content-type", ""):
        try:
            return json.loads(body) if body.strip() else None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise HttpRequestError(f"invalid JSON in the response: {exc}", error_type="PARSE_ERROR") from None
    return body.decode(response.encoding or "utf-8", errors="replace")


class HttpRequestNode(NodeType):
    type = "http-request"
    display_name = "HTTP Request"
    description = "Make an HTTP request."
    pure = True
    params = {
        "method": options(*METHODS),
        "url": Param(("string",), required=True),
        "headers": Param(("object", "string")),
        "body": any_value(),
        "timeout": number(minimum=1),
        "followRedirects": boolean(),
        "maxRedirects": number(minimum=0),
        "responseFormat": options("dataOnly", "fullResponse"),
        "authentication": any_value(),
    }

    def validate(self, parameters: Mapping[str, Any], limits: Limits) -> list[tuple[str, str]]:
        if parameters.get("authentication") not in (None, "", []):
            return [("authentication", "credentials are not supported by this engine; pass headers instead")]
        url = parameters.get("url")
        if isinstance(url, str) and "{{" not in url and urlsplit(url.strip()).scheme not in ("http", "https"):
            return [("url", f"only http:// and https:// URLs are allowed, got {url!r}")]
        return []

    def request(self, ctx: NodeContext) -> Outputs:
        method = str(ctx.parameter("method", "GET")).upper()
        if method not in METHODS:
            raise HttpRequestError(f"unsupported method {method!r}", error_type="VALIDATION_ERROR")
        policy = AddressPolicy.from_limits(ctx.limits.allow_private_network, ctx.limits.allowed_networks)
        url = _checked_url(ctx.parameter("url", ""))
        headers = _headers(ctx.parameter("headers", {}))
        timeout_ms = ctx.parameter("timeout", 30000) or 30000
        follow = ctx.parameter("followRedirects", True) is not False
        max_redirects = int(ctx.parameter("maxRedirects", 5) or 5)
        response_format = ctx.parameter("responseFormat", "dataOnly") or "dataOnly"
        body = ctx.parameter("body", "") if method in ("POST", "PUT", "PATCH") else None
        content: bytes | None = None
        if body not in (None, ""):
            if isinstance(body, str):
                content = body.encode()
            else:
                content = json.dumps(body, ensure_ascii=False).encode()
                if not any(k.lower() == "content-type" for k in headers):
                    headers["Content-Type"] = "application/json"

        started = time.monotonic()
        timeout = httpx.Timeout(float(timeout_ms) / 1000)
        try:
            transport = GuardedTransport(policy)
            with httpx.Client(transport=transport, timeout=timeout, follow_redirects=False, trust_env=False) as client:
                for _hop in range(max_redirects + 1):
                    with client.stream(method, url, headers=headers, content=content) as response:
                        location = response.headers.get("location")
                        if follow and response.is_redirect and location:
                            url = _checked_url(urljoin(url, location))
                            if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
                                method, content = "GET", None
                            continue
                        raw = _read(response, ctx.limits.max_response_bytes)
                        return {"main": [self._item(ctx, response, raw, url, started, response_format)]}
                raise HttpRequestError(f"more than {max_redirects} redirects", error_type="TOO_MANY_REDIRECTS")
        except (AddressRefused, ResolutionFailed) as exc:
            raise HttpRequestError(str(exc), error_type=exc.error_type) from None
        except httpx.TimeoutException:
            raise HttpRequestError(f"request to {url} timed out after {timeout_ms} ms", error_type="TIMEOUT") from None
        except httpx.HTTPError as exc:
            raise HttpRequestError(f"request to {url} failed: {exc}", error_type="NETWORK_ERROR") from None

    def _item(self, ctx: NodeContext, response: httpx.Response, raw: bytes, url: str, started: float, fmt: str) -> Item:
        if not response.is_success and not ctx.node.always_output_data:
            raise HttpRequestError(
                f"HTTP {response.status_code} {response.reason_phrase} from {url}",
                error_type="HTTP_ERROR",
                status=response.status_code,
            )
        data = _decode(response, raw)
        if fmt == "fullResponse":
            return {
                "json": {
                    "status": response.status_code,
                    "statusText": response.reason_phrase,
                    "headers": dict(response.headers),
                    "data": data,
                    "responseTime": round((time.monotonic() - started) * 1000),
                    "url": url,
                    "ok": response.is_success,
                }
            }
        # HttpRequest.node.ts returns `{json: result}` whatever the body is: text and arrays included.
        return {"json": data}

    def execute(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        try:
            return self.request(ctx)
        except Exception as exc:
            # HttpRequest.node.ts reads continueOnFail from its settings itself, alone enough.
            if not ctx.node.continue_on_fail:
                raise
            return {"main": [self.error_item(ctx, exc)]}

    def error_item(self, ctx: NodeContext, error: BaseException) -> Item:
        return {
            "json": {
                "error": True,
                "errorMessage": str(error) or "Request failed",
                "errorType": getattr(error, "error_type", "UNKNOWN_ERROR"),
                "statusCode": getattr(error, "status", None),
                "url": ctx.node.parameters.get("url"),
                "method": ctx.node.parameters.get("method", "GET"),
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "details": {},
            }
        }
