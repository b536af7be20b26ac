"""Reading a JSON request body with a hard size limit and exact status codes.

FastAPI's own body parsing would read the whole body before any check and answer every problem with
422; here the declared ``Content-Length`` is checked before a byte is read, the bytes actually read
are counted (a client may lie, or send chunked), and each kind of bad body gets its own status:
413 too large, 415 not JSON, 400 not parseable.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from nodedrop_rq.api.errors import ApiError

JSON_MEDIA_TYPES = ("application/json",)


def is_json_content_type(header: str | None) -> bool:
    """``application/json`` or ``application/<anything>+json``, with any parameters (charset=...)."""
    if not header:
        return False
    media_type = header.split(";", 1)[0].strip().lower()
    return media_type in JSON_MEDIA_TYPES or (media_type.startswith("application/") and media_type.endswith("+json"))


def too_large(limit: int) -> ApiError:
    return ApiError(413, "request body too large", f"the limit is {limit} bytes (NODEDROP_MAX_BODY_BYTES)",
                    limit=limit)


def check_declared_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is None:
        return
    if not declared.strip().isdigit():
        raise ApiError(400, "invalid Content-Length header")
    if int(declared) > limit:
        raise too_large(limit)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing with 413 as soon as more than ``limit`` bytes have arrived."""
    check_declared_length(request, limit)
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > limit:
            raise too_large(limit)
    return bytes(received)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(raw: bytes) -> Any:
    if not raw.strip():
        raise ApiError(400, "malformed JSON", "the request body is empty")
    try:
        # NaN and Infinity are not JSON: other readers of the stored job could not parse them.
        return json.loads(raw, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise ApiError(400, "malformed JSON", f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except UnicodeDecodeError:
        raise ApiError(400, "malformed JSON", "the body is not UTF-8 text") from None
    except RecursionError:
        raise ApiError(400, "malformed JSON", "nested too deeply") from None
    except ValueError as exc:
        raise ApiError(400, "malformed JSON", str(exc)) from None


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object: 413 too large, 415 not declared JSON, 400 unparseable or not an object."""
    check_declared_length(request, limit)
    if not is_json_content_type(request.headers.get("content-type")):
        raise ApiError(415, "unsupported media type", "send the body as Content-Type: application/json")
    document = parse_json(await read_body(request, limit))
    if not isinstance(document, dict):
        raise ApiError(400, "invalid request body", "the body must be a JSON object")
    return document
